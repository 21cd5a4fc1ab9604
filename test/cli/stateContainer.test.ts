import { createBackfillCommand } from '../../src/cli/backfillCommand';
import { CHECKPOINT_BLOB } from '../../src/export/blobLayout';
import { runCli, settingsFile } from '../support/cli';
import { duplicates, freshContainer, World } from '../support/world';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// The deployment keeps the checkpoint apart from the (possibly immutable) export container.
describe('the CLI with EXPORT_STATE_CONTAINER set apart', () => {
  const state = freshContainer('state');
  let world: World;
  beforeEach(async () => {
    world = await World.start({
      settings: { EXPORT_STATE_CONTAINER: state.containerName, EXPORT_INCLUDE_ALERTS: 'false' },
    });
    world.tenant.store.generate(60, {
      from: new Date(Date.now() - 5 * DAY),
      to: new Date(Date.now() - HOUR),
    });
    expect((await world.run()).outcome).toBe('succeeded');
  });
  afterEach(async () => {
    await world.close();
    await state.deleteIfExists();
  });

  it('status reads the checkpoint from the state container', async () => {
    const result = await runCli(['status', '--json', '--settings', settingsFile(world.settings)]);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    const stored = JSON.parse(
      (await state.getBlockBlobClient(CHECKPOINT_BLOB).downloadToBuffer()).toString('utf8'),
    );
    expect(status.checkpoint.watermark).toBe(stored.checkpoint.watermark);
    expect(status.isStale).toBe(false);
  });

  it('backfill keeps its checkpoints in the state container and writes no state into the export container', async () => {
    const from = new Date(Date.now() - 5 * DAY).toISOString().slice(0, 10);
    const command = createBackfillCommand(world.composition());
    const result = await runCli(['--from', from, '--json', '--settings', settingsFile(world.settings)], {
      command,
    });
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.outcome).toBe('complete');
    expect(summary.incidents).toBeGreaterThan(0);
    expect(await state.getBlockBlobClient(summary.segments[0].checkpointBlob).exists()).toBe(true);
    expect(await world.blobNames('state/')).toEqual([]);
    expect(duplicates(await world.exported())).toEqual([]);
  });
});
