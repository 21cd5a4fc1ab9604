import type { CompositionOptions } from '../../src/composition/compositionRoot';
import { createExporter } from '../../src/composition/compositionRoot';
import type { CheckpointStore } from '../../src/export/ports';
import { parseTimestamp } from '../../src/export/timestamp';
import { runBackfill, type BackfillSummary } from '../../src/operations/backfill';
import { parseTimeRange } from '../../src/operations/timeRange';
import { duplicates, World } from '../support/world';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ticks = (text: string): bigint => parseTimestamp(text)!.ticks;

/** Concurrent time slices: skewed history, splits recorded durably, kills at checkpoint writes, throttling. */
describe('backfill in concurrent time slices', () => {
  let world: World | undefined;
  afterEach(async () => {
    await world?.close();
    world = undefined;
  });

  /** A world whose live export has run once, with a history of `even` incidents over 8 days before it. */
  async function liveWorld(
    tenantOptions: Parameters<typeof World.start>[0] = {},
  ): Promise<{ w: World; liveStart: string; now: number }> {
    const w = await World.start({
      settings: { EXPORT_INCLUDE_ALERTS: 'false' },
      ...tenantOptions,
    });
    world = w;
    const now = w.clock.now();
    w.tenant.store.generate(120, { from: new Date(now - 8 * DAY), to: new Date(now - HOUR) });
    expect((await w.run()).outcome).toBe('succeeded');
    const liveStart = (await w.checkpoint())!.document.exportStart as string;
    return { w, liveStart, now };
  }

  function expected(w: World, fromMs: number, liveStart: string): string[] {
    return w.tenant.store
      .all()
      .filter(
        (i) =>
          ticks(i.lastUpdateTime) >= BigInt(fromMs) * 10_000n && ticks(i.lastUpdateTime) < ticks(liveStart),
      )
      .map((i) => `${i.id}@${ticks(i.lastUpdateTime)}`)
      .sort();
  }

  function backfillOf(
    w: World,
    fromMs: number,
    concurrency: number,
    composition: Partial<CompositionOptions> = {},
  ): Promise<BackfillSummary> {
    const exporter = createExporter(
      w.config,
      w.composition({ composition: { pageSize: 10, ...composition } }),
    );
    return runBackfill(exporter, {
      range: parseTimeRange(new Date(fromMs).toISOString(), undefined, w.clock.now()),
      logger: w.logs,
      concurrency,
      minSplitSpanInMs: 1_000,
    });
  }

  it('splits the slice that holds a crowd for the idle ones, records the splits, and a rerun finds all done', async () => {
    const { w, liveStart, now } = await liveWorld();
    // Skewed: most of the history in the last hours before the live start, in the last slice.
    const liveMs = Number(ticks(liveStart) / 10_000n);
    w.tenant.store.generate(500, { from: new Date(liveMs - 5 * HOUR), to: new Date(liveMs - 1_000) });
    const fromMs = Date.parse(new Date(now - 8 * DAY).toISOString().slice(0, 10));
    const want = expected(w, fromMs, liveStart);

    const summary = await backfillOf(w, fromMs, 4);
    expect(summary.outcome).toBe('complete');
    expect(summary.splits).toBeGreaterThan(0);
    expect(summary.segments.length).toBe(4 + summary.splits);
    expect(await w.backfilledVersions()).toEqual(want);
    expect(duplicates(await w.exported())).toEqual([]);
    // The segments tile the range, each done.
    const sorted = [...summary.segments].sort((a, b) => (ticks(a.from) < ticks(b.from) ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.from).toBe(sorted[i - 1]!.to);

    const again = await backfillOf(w, fromMs, 4);
    expect(again).toMatchObject({ outcome: 'complete', runs: 0, splits: 0 });
    expect(again.segments.map((s) => [s.from, s.to, s.status])).toEqual(
      sorted.map((s) => [s.from, s.to, 'done']),
    );
  });

  it.each([4, 13])(
    'holds every invariant when killed at checkpoint write %d under a Graph rate limit (429 + Retry-After)',
    async (killAt) => {
      const { w, liveStart, now } = await liveWorld({
        tenantOptions: { graphLimit: { perWindow: 12, windowInMs: 60_000 } },
      });
      const liveMs = Number(ticks(liveStart) / 10_000n);
      w.tenant.store.generate(300, { from: new Date(liveMs - 3 * HOUR), to: new Date(liveMs - 1_000) });
      const fromMs = Date.parse(new Date(now - 8 * DAY).toISOString().slice(0, 10));
      const want = expected(w, fromMs, liveStart);
      let writes = 0;
      const killing = (store: CheckpointStore): CheckpointStore => ({
        read: (o) => store.read(o),
        write: async (document, etag, o) => {
          if (++writes === killAt) throw new Error('killed');
          return store.write(document, etag, o);
        },
      });
      await expect(backfillOf(w, fromMs, 4, { wrapCheckpoints: killing })).rejects.toThrow('killed');

      const resumed = await backfillOf(w, fromMs, 4);
      expect(resumed.outcome).toBe('complete');
      expect(await w.backfilledVersions()).toEqual(want);
      expect(duplicates(await w.exported())).toEqual([]);
      expect(w.tenant.graphThrottled).toBeGreaterThan(0);
    },
  );
});
