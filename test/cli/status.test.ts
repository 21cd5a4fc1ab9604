import { parseTimestamp } from '../../src/export/timestamp';
import { createStatusCommand } from '../../src/cli/statusCommand';
import { runCli, settingsFile, type CliResult } from '../support/cli';
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
  /** `defender-export status <args>`, ageing on the world's clock. */
  const statusCli = (args: string[]): Promise<CliResult> =>
    runCli(args, { command: createStatusCommand(world.clock) });

  it('exits 1 when the export has never run', async () => {
    await world.container.create();
    const result = await statusCli(['--settings', settings]);
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
    world.advance(1100);
    const second = await world.run();
    expect(second.incidents).toBe(4);

    const fresh = await statusCli(['--max-age', 'PT1H', '--json', '--settings', settings]);
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

    const human = await statusCli(['--settings', settings]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Container: +test-/m);
    expect(human.stdout).toMatch(/STARTED +KIND +OUTCOME +INCIDENTS +BLOBS +DURATION/);
    expect(human.stdout).toMatch(/ live +succeeded +4 +1 /);
    expect(human.stdout).toMatch(/^OK: the export is .* behind, within 2h\.$/m);

    world.advance(1_100);
    const stale = await statusCli(['--max-age', 'PT1S', '--settings', settings]);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^STALE: the export is .* behind, more than the allowed 1s\.$/m);
  });

  it('shows a failed run, and counts only how far the data has come', async () => {
    const now = Date.now();
    world.tenant.store.generate(10, { from: new Date(now - 5 * HOUR), to: new Date(now - 2 * HOUR) });
    await world.run();
    world.tenant.intercept = ({ api }) => (api === 'graph' ? { status: 500 } : undefined);
    world.tenant.store.touchRandom(2);
    world.advance(1100);
    await expect(world.run()).rejects.toThrow(/HTTP 500/);
    const result = await statusCli(['--json', '--settings', settings]);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.runs[0]).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/HTTP 500/) });
    expect(status.runs[1]).toMatchObject({ outcome: 'succeeded' });
  });

  it('lists a malformed run manifest as unreadable and prints no control sequences from storage', async () => {
    const now = Date.now();
    world.tenant.store.generate(5, { from: new Date(now - 5 * HOUR), to: new Date(now - 2 * HOUR) });
    const good = await world.run();
    const day = new Date(now).toISOString().slice(0, 10).replace(/-/g, '/');
    const put = async (name: string, value: unknown): Promise<void> => {
      const body = JSON.stringify(value);
      await world.container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body));
    };
    const badName = `runs/${day}/235959998-bad-types.json`;
    await put(badName, { runId: 'x', startedAt: new Date(now).toISOString(), outcome: 5, incidents: 'many' });
    await put(`runs/${day}/235959999-escapes.json`, {
      runId: 'evil\u001b]0;owned\u0007',
      startedAt: new Date(now).toISOString(),
      outcome: 'failed',
      incidents: 0,
      blobs: 0,
      durationInMs: 1,
      reason: 'boom \u001b[2J\u001b[31mred\u009b31m\u0000 end',
    });
    // The checkpoint's free-text fields come from storage too.
    const checkpoint = (await world.checkpoint())!.document;
    const body = JSON.stringify({ ...checkpoint, runId: 'run\u001b[1m', updatedAt: 'now\u0085' });
    await world.container.getBlockBlobClient('state/checkpoint.json').upload(body, Buffer.byteLength(body));

    // eslint-disable-next-line no-control-regex
    const controls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
    const human = await statusCli(['--settings', settings]);
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(`unreadable manifest ${badName}`);
    expect(human.stdout).toMatch(/ live +failed .*boom .*red.* end/);
    expect(human.stdout).toMatch(new RegExp(` live +succeeded `));
    expect(human.stdout).not.toMatch(controls);

    const json = await statusCli(['--json', '--settings', settings]);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toMatch(controls);
    const status = JSON.parse(json.stdout);
    expect(JSON.stringify(status)).not.toMatch(controls);
    expect(status.runs.map((r: { outcome: string }) => r.outcome)).toEqual([
      'failed',
      'unreadable',
      'succeeded',
    ]);
    expect(status.runs[1].reason).toMatch(`unreadable manifest ${badName}: 'outcome'`);
    expect(status.runs[2].runId).toBe(good.runId);
    expect(status.checkpoint.runId).toMatch(/^run.*\[1m$/);
  });

  it('rejects a bad --max-age as a usage error', async () => {
    const result = await statusCli(['--max-age', '2 hours', '--settings', settings]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--max-age is '2 hours': expected an ISO-8601 duration/);
  });
});
