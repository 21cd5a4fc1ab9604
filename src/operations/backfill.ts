import { randomUUID } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore, describeStorageError, isWriteConflict } from '../sink/blobExportStore';
import type { Exporter } from './exporter';
import { CHECKPOINT_BLOB, EXPORT_PREFIX, readBlobMetadata } from '../export/blobLayout';
import { exportedUntil } from '../export/checkpoint';
import { tenantMismatch } from '../export/tenant';
import { floorMs, formatTicks, parseTimestamp, TICKS_PER_MS } from '../export/timestamp';
import { ExportError } from '../errors';
import type { Logger } from '../logger';
import { BACKFILL_RUN_PREFIX } from './exportStatus';
import { cutEvenly, type TimeRange } from './timeRange';

export interface BackfillOptions {
  /** The history to fill in, [from, to); cut where the live export began. */
  readonly range: TimeRange;
  readonly logger: Logger;
  readonly abortSignal?: AbortSignal;
  /** Called after each run (one time budget's chunk). */
  readonly onRun?: (run: { runs: number; incidents: number; watermark: string }) => void;
  /**
   * Slices exported at once, each its own chain with its own checkpoint (default
   * {@link DEFAULT_BACKFILL_CONCURRENCY}). The shared pacer of the exporter keeps their requests together at what
   * the API accepts.
   */
  readonly concurrency?: number;
  /** A slice with less than twice this much history left is not split for an idle one. Default 1 minute. */
  readonly minSplitSpanInMs?: number;
}

/**
 * Slices at once by default: `npm run bench` measured 4 near the best at 300 and at 120 requests a minute with
 * 1 s pages (README, "Performance"); more only waits on the pacer.
 */
export const DEFAULT_BACKFILL_CONCURRENCY = 4;
/** `--concurrency` at most: the pacer's own ceiling on requests at once. */
export const MAX_BACKFILL_CONCURRENCY = 16;

export type BackfillOutcome = 'complete' | 'nothing-to-do' | 'interrupted' | 'concurrent';

/** A part of the range with its own checkpoint blob, named after it: a rerun of the same part resumes from it. */
export interface BackfillSegment {
  readonly from: string;
  /** Its end; a split (another slice took the rest) moves it earlier, recorded in the claims log. */
  to: string;
  readonly checkpointBlob: string;
  /** `done` before this backfill (an earlier one covered it), `exported` now, or not reached. */
  status: 'done' | 'exported' | 'pending';
  watermark: string;
}

export interface BackfillSummary {
  outcome: BackfillOutcome;
  from: string;
  /** The end of the backfill: the end asked for, or where the live export began if that is earlier. */
  to: string;
  liveStart: string;
  /** The range in parts: gaps between earlier backfills are exported, their ranges resumed or left alone. */
  segments: BackfillSegment[];
  runs: number;
  incidents: number;
  blobs: number;
  /** Slices split during this backfill so that idle ones took over the rest of their range. */
  splits: number;
  /** Requests to the incidents API over all runs, and the 429 answers among them. */
  requests: number;
  throttles: number;
  reason?: string;
}

const STATE_PREFIX = 'state/backfill-';
const SEGMENT_NAME = /^state\/backfill-(\d{8}T\d{13}Z)-(\d{8}T\d{13}Z)\.json$/;

/**
 * A one-off export of history into the live export's container: the window [from, min(to, live start)),
 * through the exporter itself, run after run (each within EXPORT_MAX_RUN_DURATION) until it is done. The live
 * checkpoint is only read, and the backfill ends exactly where the live export began, so it never writes a
 * version the live export wrote. Each part of the range keeps its own checkpoint blob named after it; parts
 * that earlier backfills took are resumed or skipped, never exported again, so overlapping or interrupted
 * backfills write no version twice.
 */
export async function runBackfill(exporter: Exporter, options: BackfillOptions): Promise<BackfillSummary> {
  const { container, stateContainer, config } = exporter;
  const live = await new BlobCheckpointStore(stateContainer).read();
  if (!live) {
    throw new ExportError(
      `No live checkpoint (${CHECKPOINT_BLOB}) in container '${stateContainer.containerName}': the live export has not run yet. ` +
        "Let it run once (or run 'defender-export run'), then backfill the history before where it began.",
    );
  }
  const mismatch = tenantMismatch(live.document.tenantId, config.tenantId);
  if (mismatch !== undefined) {
    throw new ExportError(
      `The live checkpoint in container '${stateContainer.containerName}' ${mismatch} ` +
        'Backfill with the settings of the export that writes this container.',
    );
  }
  const liveStart =
    live.document.exportStart ?? (await findLiveStart(container, live.document.checkpoint.watermark));
  const liveStartTicks = parseTimestamp(liveStart)?.ticks;
  if (liveStartTicks === undefined)
    throw new ExportError(`The live export's start '${liveStart}' is not a timestamp.`);

  const fromTicks = options.range.fromTicks;
  const endTicks = options.range.toTicks < liveStartTicks ? options.range.toTicks : liveStartTicks;
  const summary: BackfillSummary = {
    outcome: 'complete',
    from: formatTicks(fromTicks),
    to: formatTicks(endTicks),
    liveStart,
    segments: [],
    runs: 0,
    incidents: 0,
    blobs: 0,
    splits: 0,
    requests: 0,
    throttles: 0,
  };
  if (fromTicks >= endTicks) {
    summary.outcome = 'nothing-to-do';
    summary.reason = `the live export covers everything from ${liveStart}, which is not after ${summary.from}`;
    return summary;
  }
  if (options.range.toTicks > liveStartTicks) {
    options.logger.info(
      `The live export began at ${liveStart}: the backfill ends there, so it writes no version the live export wrote.`,
    );
  }
  // Backfill checkpoints live beside the live one (EXPORT_STATE_CONTAINER), never in a WORM export container.
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_BACKFILL_CONCURRENCY));
  const plan = await claimSegments(stateContainer, fromTicks, endTicks, concurrency, options.logger);
  if (!plan) {
    summary.outcome = 'concurrent';
    summary.reason =
      'other backfills kept claiming parts of this range at the same time: the parts they took are taken by another backfill; run again to resume';
    return summary;
  }
  summary.segments = plan.segments;
  const outcome = await new SlicePool(exporter, plan, concurrency, options, summary).run();
  if (outcome.interrupted) {
    summary.outcome = 'interrupted';
    summary.reason = 'interrupted; run the same command again to resume from the backfill checkpoints';
    return summary;
  }
  if (outcome.taken.length > 0) {
    const taken = outcome.taken;
    summary.outcome = 'concurrent';
    summary.reason = `taken by another backfill: ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} being written by another backfill; run again to resume`;
  }
  return summary;
}

/** A segment as the pool exports it. */
interface Slice {
  readonly segment: BackfillSegment;
  /** Claimed by this backfill (not resumed from another). */
  readonly isOwn: boolean;
  isRunning: boolean;
  /** Stops the slice's current run cleanly, for a split. */
  stop?: AbortController;
  /** An idle slice's request for the rest of this one's range. */
  split?: (rest: Slice | undefined) => void;
  isUnsplittable: boolean;
}

/**
 * Exports the pending segments of a plan `concurrency` at a time, each by its own chain of runs with its own
 * checkpoint. A worker with nothing left to start splits the running slice with the most history left: that
 * slice's run stops cleanly at its next page (checkpoint moved there), the slice appends the cut to the claims
 * log (create-only, so the log stays totally ordered) and goes on to the cut, and the worker exports the rest
 * as a new segment of its own. A crash at any point leaves every checkpoint and the log consistent: before the
 * cut is in the log, the slice still owns its whole range; after, the rest is a claimed segment of its own that
 * a rerun resumes. A failure in one slice stops the others (as a crash would) and is thrown once all stopped.
 */
class SlicePool {
  private readonly slices: Slice[] = [];
  private readonly queue: Slice[] = [];
  private readonly inner = new AbortController();
  private readonly signal: AbortSignal;
  private readonly minSplitTicks: bigint;
  private failure: { error: unknown } | undefined;
  private isInterrupted = false;
  private readonly taken: string[] = [];
  private wake: (() => void)[] = [];
  /** The indices of the claims this backfill appended: its plan's and its cuts'. */
  private readonly ownClaims = new Set<number>();
  private readonly claimIndex: number;
  private isSplittingOff = false;

  constructor(
    private readonly exporter: Exporter,
    plan: ClaimedPlan,
    private readonly concurrency: number,
    private readonly options: BackfillOptions,
    private readonly summary: BackfillSummary,
  ) {
    this.signal = options.abortSignal
      ? AbortSignal.any([options.abortSignal, this.inner.signal])
      : this.inner.signal;
    this.minSplitTicks = BigInt(options.minSplitSpanInMs ?? 60_000) * TICKS_PER_MS;
    this.claimIndex = plan.claimIndex ?? -1;
    if (plan.claimIndex !== undefined) this.ownClaims.add(plan.claimIndex);
    for (const segment of plan.segments) {
      const slice = this.sliceOf(segment, plan.fresh.has(segment.checkpointBlob));
      if (segment.status !== 'done') this.queue.push(slice);
    }
    // Our own new segments first: a segment another backfill claimed may still be being written by it.
    this.queue.sort((a, b) => Number(b.isOwn) - Number(a.isOwn));
  }

  async run(): Promise<{ interrupted: boolean; taken: string[] }> {
    await Promise.all(Array.from({ length: this.concurrency }, () => this.worker()));
    if (this.failure) throw this.failure.error;
    return {
      interrupted: this.isInterrupted || Boolean(this.options.abortSignal?.aborted),
      taken: this.taken,
    };
  }

  private sliceOf(segment: BackfillSegment, isOwn: boolean): Slice {
    const slice: Slice = { segment, isOwn, isRunning: false, isUnsplittable: false };
    this.slices.push(slice);
    return slice;
  }

  private async worker(): Promise<void> {
    while (!this.signal.aborted) {
      const next = this.queue.shift();
      if (next) {
        await this.guarded(() => this.exportSlice(next));
        continue;
      }
      const victim = this.victim();
      if (!victim) {
        if (!this.slices.some((s) => s.isRunning)) return;
        await new Promise<void>((resolve) => this.wake.push(resolve));
        continue;
      }
      const rest = await new Promise<Slice | undefined>((resolve) => {
        victim.split = resolve;
        victim.stop?.abort();
      });
      if (rest) this.queue.push(rest);
      this.notify();
    }
  }

  /** The running slice with the most history left, if it is worth splitting and not being split already. */
  private victim(): Slice | undefined {
    let best: { slice: Slice; left: bigint } | undefined;
    for (const slice of this.slices) {
      if (this.isSplittingOff) return undefined;
      // Only this backfill's own segments: another's may be run by it at the same time.
      if (!slice.isOwn || !slice.isRunning || slice.split || slice.isUnsplittable) continue;
      const left = ticksOf(slice.segment.to) - ticksOf(slice.segment.watermark);
      if (left >= 2n * this.minSplitTicks && (!best || left > best.left)) best = { slice, left };
    }
    return best?.slice;
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }

  /** Runs one slice's work; a failure stops every slice (aborting their runs) and is kept to be thrown. */
  private async guarded(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (thrown) {
      this.failure ??= { error: thrown };
      this.inner.abort(new ExportError('another slice of the backfill failed'));
    } finally {
      this.notify();
    }
  }

  /** Runs the exporter on one slice until it reaches its end (which a split may move earlier). */
  private async exportSlice(slice: Slice): Promise<void> {
    const { segment } = slice;
    slice.isRunning = true;
    try {
      for (;;) {
        if (this.signal.aborted) {
          this.isInterrupted = true;
          return;
        }
        const before = segment.watermark;
        const stop = new AbortController();
        slice.stop = stop;
        if (slice.split) stop.abort();
        let run;
        try {
          run = await this.exporter.run({
            runId: `${BACKFILL_RUN_PREFIX}${randomUUID()}`,
            checkpointBlob: segment.checkpointBlob,
            initialWatermark: segment.from,
            windowEnd: segment.to,
            logger: this.options.logger,
            abortSignal: this.signal,
            stopSignal: stop.signal,
          });
        } catch (thrown) {
          if (!this.signal.aborted) throw thrown;
          this.isInterrupted = true;
          return;
        } finally {
          slice.stop = undefined;
        }
        this.summary.runs++;
        this.summary.incidents += run.incidents;
        this.summary.blobs += run.blobs;
        this.summary.requests += run.requests;
        this.summary.throttles += run.throttles;
        segment.watermark = run.watermark;
        this.options.onRun?.({
          runs: this.summary.runs,
          incidents: this.summary.incidents,
          watermark: run.watermark,
        });
        if (run.outcome === 'concurrent') {
          this.taken.push(segment.checkpointBlob);
          return;
        }
        const isDone = run.outcome === 'succeeded';
        if (slice.split) {
          const answer = slice.split;
          slice.split = undefined;
          answer(isDone ? undefined : await this.cut(slice));
        }
        if (isDone) {
          segment.status = 'exported';
          return;
        }
        if (!stop.signal.aborted && run.incidents === 0 && run.watermark === before) {
          throw new ExportError(
            `A backfill run made no progress from ${before} within EXPORT_MAX_RUN_DURATION; raise it and run again (the backfill resumes).`,
          );
        }
      }
    } finally {
      slice.isRunning = false;
      // A split asked for while the slice was ending gets no rest.
      const pending = slice.split;
      slice.split = undefined;
      pending?.(undefined);
    }
  }

  /**
   * Cuts a stopped slice halfway between its durable position and its end: the cut and the new segment for the
   * rest go into the claims log first (create-only), and only then does the slice's end move.
   */
  private async cut(slice: Slice): Promise<Slice | undefined> {
    const { segment } = slice;
    const position = ticksOf(segment.watermark);
    const end = ticksOf(segment.to);
    if (end - position < 2n * this.minSplitTicks) {
      slice.isUnsplittable = true;
      return undefined;
    }
    const at = floorMs(position + (end - position) / 2n);
    const rest: BackfillSegment = {
      from: formatTicks(at),
      to: segment.to,
      checkpointBlob: segmentName(at, end),
      status: 'pending',
      watermark: formatTicks(at),
    };
    const container = this.exporter.stateContainer;
    for (let attempt = 1; attempt <= MAX_CLAIM_ATTEMPTS; attempt++) {
      const claims = await claimIndices(container);
      // Another backfill claimed after this one planned: it may run this one's segments by their claimed ends, so
      // a cut now could let both export the rest. From here on this backfill splits nothing. A backfill that
      // plans after a cut reads it, and runs the cut segment to its new end.
      if (claims.some((i) => i > this.claimIndex && !this.ownClaims.has(i))) {
        this.isSplittingOff = true;
        this.options.logger.info(
          'Backfill: another backfill claimed part of the history since this one started; slices are no longer split.',
        );
        return undefined;
      }
      const next = claims.reduce((n, i) => Math.max(n, i + 1), 0);
      if (
        await appendClaim(
          container,
          next,
          [rest],
          [{ checkpointBlob: segment.checkpointBlob, to: rest.from }],
        )
      ) {
        this.ownClaims.add(next);
        segment.to = rest.from;
        this.summary.splits++;
        this.summary.segments.push(rest);
        this.options.logger.info(
          `Backfill: split ${segment.checkpointBlob} at ${rest.from}; another slice exports ${rest.from} .. ${rest.to} (${rest.checkpointBlob}).`,
        );
        return this.sliceOf(rest, true);
      }
    }
    slice.isUnsplittable = true;
    return undefined;
  }
}

function ticksOf(text: string): bigint {
  const parsed = parseTimestamp(text);
  if (!parsed) throw new ExportError(`Invalid backfill position '${text}'.`);
  return parsed.ticks;
}

/** The segments of a backfill, those it claimed new, and the index of its claim in the log. */
interface ClaimedPlan {
  readonly segments: BackfillSegment[];
  readonly fresh: Set<string>;
  readonly claimIndex: number | undefined;
}

/** A range of history that a backfill segment (its checkpoint blob) exports. */
interface ClaimedRange {
  readonly from: bigint;
  readonly to: bigint;
  readonly name: string;
}

/**
 * Claims, in one create-only step, the parts of [from, end) that no backfill has taken yet, and returns the plan
 * (undefined when other backfills kept winning the race).
 *
 * Backfills append their claims to one log, `state/backfill-claims/<index>.json`, each written create-only
 * under the next free index after those it read. Storage lets exactly one writer create an index, so the
 * claims are totally ordered: of two backfills that planned the same part of history at once, one creates the
 * index and keeps the part; the other gets 409 BlobAlreadyExists, reads the log again and plans around the
 * winner's claim (which it resumes or leaves to it). Two backfills can therefore neither both keep a part nor
 * both cut it away. Checkpoint blobs of earlier versions (`state/backfill-<from>-<to>.json`, no claim) are
 * taken ranges as well.
 */
async function claimSegments(
  container: ContainerClient,
  fromTicks: bigint,
  endTicks: bigint,
  concurrency: number,
  logger: Logger,
): Promise<ClaimedPlan | undefined> {
  for (let attempt = 1; attempt <= MAX_CLAIM_ATTEMPTS; attempt++) {
    const claims = await readClaims(container);
    const plan = await planSegments(container, fromTicks, endTicks, claims.ranges, concurrency);
    const fresh = plan.filter((s) => s.isNew);
    const segments = plan.map(({ isNew: _isNew, ...segment }) => segment);
    const names = new Set(fresh.map((s) => s.checkpointBlob));
    // A backfill with work to do always appends its claim, even without new segments (it resumes others'): its
    // place in the log tells every backfill that planned before it to stop splitting (see SlicePool.cut).
    if (!segments.some((s) => s.status !== 'done')) return { segments, fresh: names, claimIndex: undefined };
    if (await appendClaim(container, claims.next, fresh))
      return { segments, fresh: names, claimIndex: claims.next };
    logger.info(
      `Another backfill claimed part of the history at the same time (${claimName(claims.next)}); planning again around its claim.`,
    );
  }
  return undefined;
}

const CLAIM_PREFIX = 'state/backfill-claims/';
const CLAIM_NAME = /^state\/backfill-claims\/(\d{10})\.json$/;
const MAX_CLAIM_ATTEMPTS = 20;

function claimName(index: number): string {
  return `${CLAIM_PREFIX}${String(index).padStart(10, '0')}.json`;
}

function segmentName(from: bigint, to: bigint): string {
  return `${STATE_PREFIX}${compact(formatTicks(from))}-${compact(formatTicks(to))}.json`;
}

/** Every range claimed in the log, and the index of the next claim. */
async function readClaims(container: ContainerClient): Promise<{ ranges: ClaimedRange[]; next: number }> {
  const ranges: ClaimedRange[] = [];
  const cuts: Cut[] = [];
  let next = 0;
  const names: { name: string; index: number }[] = [];
  try {
    for await (const blob of container.listBlobsFlat({ prefix: CLAIM_PREFIX })) {
      const m = CLAIM_NAME.exec(blob.name);
      if (m) names.push({ name: blob.name, index: Number(m[1]) });
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${CLAIM_PREFIX}'`);
  }
  names.sort((a, b) => a.index - b.index);
  for (const { name, index } of names) {
    next = Math.max(next, index + 1);
    let body: unknown;
    try {
      body = JSON.parse((await container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8'));
    } catch (thrown) {
      if (thrown instanceof SyntaxError) body = undefined;
      else throw describeStorageError(thrown, container.containerName, `read '${name}'`, name);
    }
    const claimed = parseClaim(body);
    if (!claimed) {
      throw new ExportError(
        `'${name}' in container '${container.containerName}' is not a backfill claim of this tool. Restore it from a ` +
          'soft-deleted version; deleting it lets a later backfill export its range again.',
      );
    }
    ranges.push(...claimed.ranges);
    cuts.push(...claimed.cuts);
  }
  // A cut (a split) moves the end of a claimed segment earlier; the rest is a segment of the same claim.
  for (const cut of cuts) {
    const at = ranges.findIndex((r) => r.name === cut.checkpointBlob);
    const range = ranges[at];
    if (range && cut.to > range.from && cut.to < range.to) ranges[at] = { ...range, to: cut.to };
  }
  return { ranges, next };
}

/** The indices of the claims in the log, from their names alone. */
async function claimIndices(container: ContainerClient): Promise<number[]> {
  const indices: number[] = [];
  try {
    for await (const blob of container.listBlobsFlat({ prefix: CLAIM_PREFIX })) {
      const m = CLAIM_NAME.exec(blob.name);
      if (m) indices.push(Number(m[1]));
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${CLAIM_PREFIX}'`);
  }
  return indices;
}

/** A split: the segment of `checkpointBlob` ends at `to` now (the rest is a segment of the same claim). */
interface Cut {
  readonly checkpointBlob: string;
  readonly to: bigint;
}

/**
 * A claim of the log: schema 1 lists new segments; schema 2 (a split) also lists `cuts`. A backfill of an
 * older version refuses schema 2 as not its own, rather than export the rest of a split segment twice.
 */
function parseClaim(body: unknown): { ranges: ClaimedRange[]; cuts: Cut[] } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { schemaVersion, segments, cuts } = body as Record<string, unknown>;
  if ((schemaVersion !== 1 && schemaVersion !== 2) || !Array.isArray(segments)) return undefined;
  const ranges: ClaimedRange[] = [];
  for (const segment of segments as unknown[]) {
    if (typeof segment !== 'object' || segment === null) return undefined;
    const { from, to } = segment as Record<string, unknown>;
    const fromTicks = typeof from === 'string' ? parseTimestamp(from)?.ticks : undefined;
    const toTicks = typeof to === 'string' ? parseTimestamp(to)?.ticks : undefined;
    if (fromTicks === undefined || toTicks === undefined || fromTicks >= toTicks) return undefined;
    ranges.push({ from: fromTicks, to: toTicks, name: segmentName(fromTicks, toTicks) });
  }
  const parsedCuts: Cut[] = [];
  if (schemaVersion === 2) {
    if (!Array.isArray(cuts)) return undefined;
    for (const cut of cuts as unknown[]) {
      if (typeof cut !== 'object' || cut === null) return undefined;
      const { checkpointBlob, to } = cut as Record<string, unknown>;
      const toTicks = typeof to === 'string' ? parseTimestamp(to)?.ticks : undefined;
      if (typeof checkpointBlob !== 'string' || !SEGMENT_NAME.test(checkpointBlob) || toTicks === undefined)
        return undefined;
      parsedCuts.push({ checkpointBlob, to: toTicks });
    }
  }
  return { ranges, cuts: parsedCuts };
}

/** Writes claim `index` create-only; false when another backfill created it first. */
async function appendClaim(
  container: ContainerClient,
  index: number,
  segments: readonly BackfillSegment[],
  cuts: readonly { checkpointBlob: string; to: string }[] = [],
): Promise<boolean> {
  const name = claimName(index);
  const body = Buffer.from(
    `${JSON.stringify(
      {
        schemaVersion: cuts.length > 0 ? 2 : 1,
        claimedAt: new Date().toISOString(),
        segments: segments.map((s) => ({ from: s.from, to: s.to, checkpointBlob: s.checkpointBlob })),
        ...(cuts.length > 0 ? { cuts } : {}),
      },
      null,
      2,
    )}\n`,
    'utf8',
  );
  try {
    await container.getBlockBlobClient(name).upload(body, body.length, {
      conditions: { ifNoneMatch: '*' },
      blobHTTPHeaders: { blobContentType: 'application/json; charset=utf-8' },
    });
    return true;
  } catch (thrown) {
    if (isWriteConflict(thrown)) return false;
    throw describeStorageError(thrown, container.containerName, `write '${name}'`, name);
  }
}

/**
 * The parts of [from, end): the ranges of earlier backfills that meet it (by their checkpoint names, which they
 * keep for good, and by their claims), done or to resume, and the gaps between them, new (`isNew`).
 */
async function planSegments(
  container: ContainerClient,
  fromTicks: bigint,
  endTicks: bigint,
  claimed: readonly ClaimedRange[],
  concurrency: number,
): Promise<(BackfillSegment & { isNew: boolean })[]> {
  const byName = new Map<string, ClaimedRange>();
  try {
    for await (const blob of container.listBlobsFlat({ prefix: STATE_PREFIX })) {
      const m = SEGMENT_NAME.exec(blob.name);
      const from = m && parseTimestamp(expand(m[1]!))?.ticks;
      const to = m && parseTimestamp(expand(m[2]!))?.ticks;
      if (from != null && to != null) byName.set(blob.name, { from, to, name: blob.name });
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${STATE_PREFIX}'`);
  }
  for (const range of claimed) byName.set(range.name, range);
  const earlier = [...byName.values()]
    .filter((r) => r.from < endTicks && r.to > fromTicks)
    .sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));

  const segments: (BackfillSegment & { isNew: boolean })[] = [];
  const add = async (from: bigint, to: bigint, name?: string): Promise<void> => {
    const checkpointBlob = name ?? segmentName(from, to);
    const stored = name ? await new BlobCheckpointStore(container, name).read() : undefined;
    const done = stored && exportedUntil(stored.document.checkpoint, stored.document.scannedUntil) >= to;
    segments.push({
      from: formatTicks(from),
      to: formatTicks(to),
      checkpointBlob,
      status: done ? 'done' : 'pending',
      watermark: stored?.document.checkpoint.watermark ?? formatTicks(from),
      isNew: name === undefined,
    });
  };
  // The gaps, each cut into slices of about 1/concurrency of their total span, one chain each.
  const gaps: [bigint, bigint][] = [];
  let cursor = fromTicks;
  for (const range of earlier)
    if (range.from > cursor) {
      gaps.push([cursor, range.from]);
      cursor = range.to > cursor ? range.to : cursor;
    } else if (range.to > cursor) cursor = range.to;
  if (cursor < endTicks) gaps.push([cursor, endTicks]);
  const total = gaps.reduce((sum, [a, b]) => sum + (b - a), 0n);
  const slices = gaps.flatMap(([a, b]) =>
    cutEvenly(a, b, total === 0n ? 1 : Number((BigInt(concurrency) * (b - a) + total - 1n) / total)),
  );
  cursor = fromTicks;
  for (const range of earlier) {
    while (slices[0] && slices[0][0] < range.from) {
      const [a, b] = slices.shift()!;
      await add(a, b);
    }
    if (range.to > cursor) await add(range.from, range.to, range.name);
    if (range.to > cursor) cursor = range.to;
  }
  for (const [a, b] of slices) await add(a, b);
  return segments;
}

/**
 * Where the live export began, for checkpoints written before they recorded it (`exportStart`): the start of
 * the first export blob that no backfill wrote, found in name order (the backfill blobs come first), or the
 * checkpoint's own position when the live export has written no blob yet.
 */
async function findLiveStart(container: ContainerClient, position: string): Promise<string> {
  try {
    for await (const blob of container.listBlobsFlat({ prefix: EXPORT_PREFIX, includeMetadata: true })) {
      const metadata = readBlobMetadata(blob.metadata ?? {});
      if (typeof metadata !== 'string' && !metadata.runId.startsWith(BACKFILL_RUN_PREFIX))
        return metadata.windowFrom.text;
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${EXPORT_PREFIX}'`);
  }
  return position;
}

/** `2026-01-01T00:00:00.0000000Z` as `20260101T0000000000000Z`, for a blob name. */
function compact(timestamp: string): string {
  return timestamp.replace(/[-:.]/g, '');
}

/** The inverse of {@link compact}. */
function expand(text: string): string {
  return `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 8)}T${text.slice(9, 11)}:${text.slice(11, 13)}:${text.slice(13, 15)}.${text.slice(15, 22)}Z`;
}
