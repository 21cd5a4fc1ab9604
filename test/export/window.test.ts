import { BlobCheckpointStore } from '../../src/sink/blobExportStore';
import { formatTicks, parseTimestamp, timestampFromMs } from '../../src/export/timestamp';
import { duplicates, World } from '../support/world';

const HOUR = 3_600_000;

function ticksOf(text: string): bigint {
  return parseTimestamp(text)!.ticks;
}

describe('export window bounds (initialWatermark, windowEnd)', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
  });
  afterEach(async () => {
    await world.close();
  });

  it('exports exactly [initialWatermark, windowEnd) into its own checkpoint, across midnights', async () => {
    const now = Date.now();
    const start = timestampFromMs(now - 80 * HOUR).text;
    const end = timestampFromMs(now - 20 * HOUR).text;
    world.tenant.store.generate(150, { from: new Date(now - 90 * HOUR), to: new Date(now - HOUR) });
    world.tenant.store.add({ lastUpdateTime: start }); // included: the start is inclusive
    world.tenant.store.add({ lastUpdateTime: end }); // excluded: the end is exclusive
    world.tenant.store.add({ lastUpdateTime: formatTicks(ticksOf(end) - 1n) }); // included, 100 ns before

    const summary = await world.exporter.run({
      checkpointBlob: 'state/window-test.json',
      initialWatermark: start,
      windowEnd: end,
    });
    expect(summary.outcome).toBe('succeeded');
    expect(summary.windowUntil).toBe(end);

    const expected = world.tenant.store
      .all()
      .filter((i) => ticksOf(i.lastUpdateTime) >= ticksOf(start) && ticksOf(i.lastUpdateTime) < ticksOf(end))
      .map((i) => `${i.id}@${ticksOf(i.lastUpdateTime)}`)
      .sort();
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported.map((v) => `${v.id}@${ticksOf(v.lastUpdate)}`).sort()).toEqual(expected);
    expect(new Set(exported.map((v) => v.blob.slice(0, 20))).size).toBeGreaterThan(1); // several day folders

    // The live checkpoint was not touched; the run's own one records where it began.
    expect(await world.checkpoint()).toBeUndefined();
    const own = await new BlobCheckpointStore(world.container, 'state/window-test.json').read();
    expect(own!.document.exportStart).toBe(start);
    expect(ticksOf(own!.document.checkpoint.watermark)).toBeLessThanOrEqual(ticksOf(end));
  });

  it('does not follow the chain past windowEnd into blobs another export wrote', async () => {
    const now = Date.now();
    world.tenant.store.generate(60, { from: new Date(now - 40 * HOUR), to: new Date(now - HOUR) });
    // The "live" export starts at the bound; the bounded run ends exactly where it began.
    const live = await world.run();
    const liveStart = (await world.checkpoint())!.document.exportStart as string;
    expect(liveStart).toBe(live.windowFrom);
    expect(ticksOf(liveStart)).toBeLessThan(ticksOf(timestampFromMs(now - 47 * HOUR).text));

    const liveStartMs = Number(ticksOf(liveStart) / 10_000n);
    world.tenant.store.generate(30, { from: new Date(now - 70 * HOUR), to: new Date(liveStartMs - 1) });
    const options = {
      checkpointBlob: 'state/window-test.json',
      initialWatermark: timestampFromMs(now - 72 * HOUR).text,
      windowEnd: liveStart,
    };
    const first = await world.exporter.run(options);
    expect(first).toMatchObject({ outcome: 'succeeded', incidents: 30 });
    const again = await world.exporter.run(options);
    expect(again).toMatchObject({ outcome: 'succeeded', incidents: 0, recoveredBlobs: 0 });
    const own = await new BlobCheckpointStore(world.container, 'state/window-test.json').read();
    expect(ticksOf(own!.document.checkpoint.watermark)).toBeLessThanOrEqual(ticksOf(liveStart));
    expect(duplicates(await world.exported())).toEqual([]);
    expect(await world.exported()).toHaveLength(90);
  });

  it('keeps exportStart in the live checkpoint across runs', async () => {
    const now = Date.now();
    world.tenant.store.generate(20, { from: new Date(now - 10 * HOUR), to: new Date(now - HOUR) });
    const first = await world.run();
    world.tenant.store.touchRandom(3);
    world.advance(1100);
    await world.run();
    expect((await world.checkpoint())!.document.exportStart).toBe(first.windowFrom);
  });
});
