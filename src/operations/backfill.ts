import { randomUUID } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore, describeStorageError, isWriteConflict } from '../sink/blobExportStore';
import type { Exporter } from './exporter';
import { CHECKPOINT_BLOB, EXPORT_PREFIX, readBlobMetadata } from '../export/blobLayout';
import { exportedUntil } from '../export/checkpoint';
import { tenantMismatch } from '../export/tenant';
import { formatTicks, parseTimestamp } from '../export/timestamp';
import { ExportError } from '../errors';
import type { Logger } from '../logger';
import { BACKFILL_RUN_PREFIX } from './exportStatus';
import type { TimeRange } from './timeRange';

export interface BackfillOptions {
  /** The history to fill in, [from, to); cut where the live export began. */
  readonly range: TimeRange;
  readonly logger: Logger;
  readonly abortSignal?: AbortSignal;
  /** Called after each run (one time budget's chunk). */
  readonly onRun?: (run: { runs: number; incidents: number; watermark: string }) => void;
}

export type BackfillOutcome = 'complete' | 'nothing-to-do' | 'interrupted' | 'concurrent';

/** A part of the range with its own checkpoint blob, named after it: a rerun of the same part resumes from it. */
export interface BackfillSegment {
  readonly from: string;
  readonly to: string;
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
  const plan = await claimSegments(stateContainer, fromTicks, endTicks, options.logger);
  if (!plan) {
    summary.outcome = 'concurrent';
    summary.reason =
      'other backfills kept claiming parts of this range at the same time: the parts they took are taken by another backfill; run again to resume';
    return summary;
  }
  summary.segments = plan.segments;
  // Our own new segments first: a segment another backfill claimed may still be being written by it.
  const order = [
    ...plan.segments.filter((s) => plan.fresh.has(s.checkpointBlob)),
    ...plan.segments.filter((s) => !plan.fresh.has(s.checkpointBlob)),
  ];
  const taken: string[] = [];
  for (const segment of order) {
    if (segment.status === 'done') continue;
    const outcome = await exportSegment(exporter, segment, options, summary);
    if (outcome === 'interrupted') {
      summary.outcome = outcome;
      summary.reason = 'interrupted; run the same command again to resume from the backfill checkpoint';
      return summary;
    }
    if (outcome === 'concurrent') {
      taken.push(segment.checkpointBlob);
      continue;
    }
    segment.status = 'exported';
  }
  if (taken.length > 0) {
    summary.outcome = 'concurrent';
    summary.reason = `taken by another backfill: ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} being written by another backfill; run again to resume`;
  }
  return summary;
}

/** Runs the exporter on one segment until it reaches its end; 'complete', 'interrupted' or 'concurrent'. */
async function exportSegment(
  exporter: Exporter,
  segment: BackfillSegment,
  options: BackfillOptions,
  summary: BackfillSummary,
): Promise<BackfillOutcome> {
  for (;;) {
    if (options.abortSignal?.aborted) return 'interrupted';
    const before = segment.watermark;
    let run;
    try {
      run = await exporter.run({
        runId: `${BACKFILL_RUN_PREFIX}${randomUUID()}`,
        checkpointBlob: segment.checkpointBlob,
        initialWatermark: segment.from,
        windowEnd: segment.to,
        logger: options.logger,
        ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
      });
    } catch (thrown) {
      if (!options.abortSignal?.aborted) throw thrown;
      return 'interrupted';
    }
    summary.runs++;
    summary.incidents += run.incidents;
    summary.blobs += run.blobs;
    segment.watermark = run.watermark;
    options.onRun?.({ runs: summary.runs, incidents: summary.incidents, watermark: run.watermark });
    if (run.outcome === 'succeeded') return 'complete';
    if (run.outcome === 'concurrent') return 'concurrent';
    if (run.incidents === 0 && run.watermark === before) {
      throw new ExportError(
        `A backfill run made no progress from ${before} within EXPORT_MAX_RUN_DURATION; raise it and run again (the backfill resumes).`,
      );
    }
  }
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
  logger: Logger,
): Promise<{ segments: BackfillSegment[]; fresh: Set<string> } | undefined> {
  for (let attempt = 1; attempt <= MAX_CLAIM_ATTEMPTS; attempt++) {
    const claims = await readClaims(container);
    const plan = await planSegments(container, fromTicks, endTicks, claims.ranges);
    const fresh = plan.filter((s) => s.isNew);
    const segments = plan.map(({ isNew: _isNew, ...segment }) => segment);
    const names = new Set(fresh.map((s) => s.checkpointBlob));
    if (fresh.length === 0 || (await appendClaim(container, claims.next, fresh)))
      return { segments, fresh: names };
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
    ranges.push(...claimed);
  }
  return { ranges, next };
}

function parseClaim(body: unknown): ClaimedRange[] | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { schemaVersion, segments } = body as Record<string, unknown>;
  if (schemaVersion !== 1 || !Array.isArray(segments)) return undefined;
  const out: ClaimedRange[] = [];
  for (const segment of segments as unknown[]) {
    if (typeof segment !== 'object' || segment === null) return undefined;
    const { from, to } = segment as Record<string, unknown>;
    const fromTicks = typeof from === 'string' ? parseTimestamp(from)?.ticks : undefined;
    const toTicks = typeof to === 'string' ? parseTimestamp(to)?.ticks : undefined;
    if (fromTicks === undefined || toTicks === undefined || fromTicks >= toTicks) return undefined;
    out.push({ from: fromTicks, to: toTicks, name: segmentName(fromTicks, toTicks) });
  }
  return out;
}

/** Writes claim `index` create-only; false when another backfill created it first. */
async function appendClaim(
  container: ContainerClient,
  index: number,
  segments: readonly BackfillSegment[],
): Promise<boolean> {
  const name = claimName(index);
  const body = Buffer.from(
    `${JSON.stringify(
      {
        schemaVersion: 1,
        claimedAt: new Date().toISOString(),
        segments: segments.map((s) => ({ from: s.from, to: s.to, checkpointBlob: s.checkpointBlob })),
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
  let cursor = fromTicks;
  for (const range of earlier) {
    if (range.from > cursor) await add(cursor, range.from);
    if (range.to > cursor) await add(range.from, range.to, range.name);
    if (range.to > cursor) cursor = range.to;
  }
  if (cursor < endTicks) await add(cursor, endTicks);
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
