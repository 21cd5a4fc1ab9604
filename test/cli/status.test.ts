import { parseTimestamp } from '../../src/core/timestamp';
import { runCli, settingsFile } from '../support/cli';
import { World } from '../support/world';

const HOUR = 3_600_000;
const ticks = (text: string): bigint => parseTimestamp(text)!.ticks;

describe('defender-export status', () => {
  let world: World;
  let settings: string;
  beforeEach(async () => {
    world = await World.start();
    settings = settingsFile({
      EXPORT_STORAGE_CONNECTION_STRING: world.settings.EXPORT_STORAGE_CONNECTION_STRING!,
      EXPORT_CONTAINER: world.container.containerName,
    });
  });
  afterEach(async () => {
    await world.close();
  });

  it('exits 1 when the export has never run', async () => {
    await world.container.create();
    const result = await runCli(['status', '--settings', settings]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      new RegExp(`STALE: no state/checkpoint.json in container '${world.container.containerName}'`),
    );
  });

  it('reports the checkpoint, the newest update and the last runs, and exits 0 while fresh, 1 once stale', async () => {
    const now = Date.now();
    world.tenant.store.generate(40, { from: new Date(now - 30 * HOUR), to: new Date(now - 2 * HOUR) });
    const first = await world.run();
    const changed = world.tenant.store.touchRandom(4);
    await new Promise((r) => setTimeout(r, 1100));
    const second = await world.run();
    expect(second.incidents).toBe(4);

    const fresh = await runCli(['status', '--max-age', 'PT1H', '--json', '--settings', settings]);
    expect(fresh.stderr).toBe('');
    expect(fresh.code).toBe(0);
    const status = JSON.parse(fresh.stdout);
    const checkpoint = (await world.checkpoint())!.document as { checkpoint: { watermark: string } };
    expect(status.checkpoint).toMatchObject({
      watermark: checkpoint.checkpoint.watermark,
      api: 'graph',
      exportStart: first.windowFrom,
    });
    expect(status.exportedUntil).toBe(second.windowUntil);
    expect(status.exportedUntilAgeInMs).toBeLessThan(60_000);
    // The newest update is the newest version the exports hold.
    const newest = changed.map((i) => i.lastUpdateTime).sort((a, b) => (ticks(a) < ticks(b) ? 1 : -1))[0]!;
    expect(ticks(status.newestUpdate.at)).toBe(ticks(newest));
    expect(status.runs.map((r: { runId: string }) => r.runId)).toEqual([second.runId, first.runId]);
    expect(status.runs[0]).toMatchObject({ kind: 'live', outcome: 'succeeded', incidents: 4, blobs: 1 });
    expect(status.isStale).toBe(false);

    const human = await runCli(['status', '--settings', settings]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Container: +test-/m);
    expect(human.stdout).toMatch(/STARTED +KIND +OUTCOME +INCIDENTS +BLOBS +DURATION/);
    expect(human.stdout).toMatch(/ live +succeeded +4 +1 /);
    expect(human.stdout).toMatch(/^OK: the export is .* behind, within 2h\.$/m);

    await new Promise((r) => setTimeout(r, 600));
    const stale = await runCli(['status', '--max-age', 'PT1S', '--settings', settings]);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^STALE: the export is .* behind, more than the allowed 1s\.$/m);
  });

  it('shows a failed run, and counts only how far the data has come', async () => {
    const now = Date.now();
    world.tenant.store.generate(10, { from: new Date(now - 5 * HOUR), to: new Date(now - 2 * HOUR) });
    await world.run();
    world.tenant.intercept = ({ api }) => (api === 'graph' ? { status: 500 } : undefined);
    world.tenant.store.touchRandom(2);
    await new Promise((r) => setTimeout(r, 1100));
    await expect(world.run()).rejects.toThrow(/HTTP 500/);
    const result = await runCli(['status', '--json', '--settings', settings]);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.runs[0]).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/HTTP 500/) });
    expect(status.runs[1]).toMatchObject({ outcome: 'succeeded' });
  });

  it('rejects a bad --max-age as a usage error', async () => {
    const result = await runCli(['status', '--max-age', '2 hours', '--settings', settings]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--max-age is '2 hours': expected an ISO-8601 duration/);
  });
});
