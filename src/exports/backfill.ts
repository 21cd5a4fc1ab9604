import { randomUUID } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore, describeStorageError } from '../azure/blobExportStore';
import type { Exporter } from '../compositionRoot';
import { CHECKPOINT_BLOB, EXPORT_PREFIX } from '../core/blobNaming';
import { exportedUntil } from '../core/checkpoint';
import { tenantMismatch } from '../core/tenant';
import { formatTicks, parseTimestamp } from '../core/timestamp';
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
  summary.segments = await planSegments(stateContainer, fromTicks, endTicks);
  for (const segment of summary.segments) {
    if (segment.status === 'done') continue;
    const outcome = await exportSegment(exporter, segment, options, summary);
    if (outcome !== 'complete') {
      summary.outcome = outcome;
      summary.reason =
        outcome === 'interrupted'
          ? 'interrupted; run the same command again to resume from the backfill checkpoint'
          : `another backfill is writing ${segment.checkpointBlob}`;
      return summary;
    }
    segment.status = 'exported';
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

/**
 * The parts of [from, end): the ranges of earlier backfills that meet it (by their checkpoint names, which they
 * keep for good), done or to resume, and the gaps between them, new.
 */
async function planSegments(
  container: ContainerClient,
  fromTicks: bigint,
  endTicks: bigint,
): Promise<BackfillSegment[]> {
  const earlier: { from: bigint; to: bigint; name: string }[] = [];
  try {
    for await (const blob of container.listBlobsFlat({ prefix: STATE_PREFIX })) {
      const m = SEGMENT_NAME.exec(blob.name);
      const from = m && parseTimestamp(expand(m[1]!))?.ticks;
      const to = m && parseTimestamp(expand(m[2]!))?.ticks;
      if (from != null && to != null && from < endTicks && to > fromTicks)
        earlier.push({ from, to, name: blob.name });
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${STATE_PREFIX}'`);
  }
  earlier.sort((a, b) => (a.from < b.from ? -1 : 1));

  const segments: BackfillSegment[] = [];
  const add = async (from: bigint, to: bigint, name?: string): Promise<void> => {
    const checkpointBlob =
      name ?? `${STATE_PREFIX}${compact(formatTicks(from))}-${compact(formatTicks(to))}.json`;
    const stored = name ? await new BlobCheckpointStore(container, name).read() : undefined;
    const done = stored && exportedUntil(stored.document.checkpoint, stored.document.scannedUntil) >= to;
    segments.push({
      from: formatTicks(from),
      to: formatTicks(to),
      checkpointBlob,
      status: done ? 'done' : 'pending',
      watermark: stored?.document.checkpoint.watermark ?? formatTicks(from),
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
      const runId = blob.metadata?.runid ?? '';
      const start = blob.metadata?.windowfrom;
      if (!runId.startsWith(BACKFILL_RUN_PREFIX) && start && parseTimestamp(start)) return start;
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
