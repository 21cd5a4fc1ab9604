import type { DefenderApi, ExportCompression, ExportFormat } from '../config';
import { ConcurrentRunError, ExportError, toError } from '../errors';
import type { Logger } from '../logger';
import { exportBlobName, manifestBlobName, quarantineBlobName } from './blobNaming';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  exportedUntil,
  watermarkOf,
  type Checkpoint,
} from './checkpoint';
import type {
  CheckpointDocument,
  CheckpointStore,
  Clock,
  ExportBlobWriter,
  ExportSink,
  IncidentSource,
  RejectedRecord,
} from './ports';
import { RecordEncoder } from './recordEncoder';
import { readAhead } from './readAhead';
import { tenantMismatch } from './tenant';
import { formatTicks, nextUtcMidnight, parseTimestamp, ticksToMs, timestampFromMs } from './timestamp';

export interface ExportRunOptions {
  readonly source: IncidentSource;
  readonly checkpoints: CheckpointStore;
  readonly sink: ExportSink;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly tenantId: string;
  readonly format: ExportFormat;
  readonly compression: ExportCompression;
  readonly initialLookbackInMs: number;
  readonly settleDelayInMs: number;
  readonly maxRunDurationInMs: number;
  readonly runId: string;
  /** A blob is cut at the next resumable page once it holds this many bytes. Default 32 MiB. */
  readonly maxBlobBytes?: number;
  /** Cut a blob only where the tie set fits comfortably in blob metadata. */
  readonly maxIdsInBlobMetadata?: number;
  /**
   * Where the export starts when there is no checkpoint yet, an exact timestamp; default now minus
   * `initialLookbackInMs`. A backfill starts its own checkpoint at the beginning of the history it fills in.
   */
  readonly initialWatermark?: string;
  /**
   * Exclusive end the export never passes, an exact timestamp; default none (only now minus the settle delay).
   * A backfill ends where the live export began, so it never writes a version the live export wrote.
   */
  readonly windowEnd?: string;
  readonly abortSignal?: AbortSignal;
}

export type RunOutcome = 'succeeded' | 'partial' | 'concurrent' | 'failed';

/** What one run did: logged as one structured line and stored as the run manifest. */
export interface RunSummary {
  outcome: RunOutcome;
  runId: string;
  api: DefenderApi;
  startedAt: string;
  windowFrom: string;
  windowUntil: string;
  watermark: string;
  watermarkAgeInMs: number;
  pages: number;
  incidents: number;
  blobs: number;
  blobNames: string[];
  bytes: number;
  requests: number;
  throttles: number;
  retries: number;
  recoveredBlobs: number;
  /** Items that were not placeable incidents, kept under quarantine/. */
  quarantined: number;
  durationInMs: number;
  reason?: string;
}

const DEFAULT_MAX_BLOB_BYTES = 32 * 1024 * 1024;

/**
 * One export cycle: read the checkpoint, recover a predecessor's committed blob, list the incidents updated
 * since the checkpoint up to now minus the settle delay, write them into create-only blobs, and move the
 * checkpoint after each blob is durably committed, never before.
 *
 * The window is cut at UTC midnights so that every blob holds the versions of one day and sits in that
 * day's folder. The run stops cleanly at the time budget; the next run resumes from the checkpoint.
 * Errors propagate (the Functions host records the failure) after the manifest and summary are written.
 */
export async function runExport(options: ExportRunOptions): Promise<RunSummary> {
  const run = new ExportRun(options);
  return run.execute();
}

class ExportRun {
  private readonly startedAtMs: number;
  private readonly deadlineMs: number;
  private readonly summary: RunSummary;
  private etag: string | undefined;
  private persisted!: Checkpoint;
  private lastSuccessfulRunAt: string | undefined;
  private scannedUntil: string | undefined;
  private exportStart: string | undefined;
  private readonly windowEndTicks: bigint | undefined;
  private readonly maxBlobBytes: number;
  private readonly maxIds: number;

  constructor(private readonly o: ExportRunOptions) {
    this.startedAtMs = o.clock.now();
    this.deadlineMs = this.startedAtMs + o.maxRunDurationInMs;
    this.maxBlobBytes = o.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.maxIds = o.maxIdsInBlobMetadata ?? 100;
    this.windowEndTicks = o.windowEnd === undefined ? undefined : exactTicks('windowEnd', o.windowEnd);
    this.summary = {
      outcome: 'succeeded',
      runId: o.runId,
      api: o.source.api,
      startedAt: new Date(this.startedAtMs).toISOString(),
      windowFrom: '',
      windowUntil: '',
      watermark: '',
      watermarkAgeInMs: 0,
      pages: 0,
      incidents: 0,
      blobs: 0,
      blobNames: [],
      bytes: 0,
      requests: 0,
      throttles: 0,
      retries: 0,
      recoveredBlobs: 0,
      quarantined: 0,
      durationInMs: 0,
    };
  }

  async execute(): Promise<RunSummary> {
    let failure: Error | undefined;
    try {
      await this.loadCheckpoint();
      await this.recoverCommittedBlobs();
      await this.exportWindows();
    } catch (thrown) {
      if (thrown instanceof ConcurrentRunError) {
        this.summary.outcome = 'concurrent';
        this.summary.reason = thrown.message;
      } else {
        failure = toError(thrown);
        this.summary.outcome = 'failed';
        this.summary.reason = failure.message;
      }
    }
    this.finishSummary();
    await this.writeManifest();
    const line = `export summary ${JSON.stringify(this.summary, (k, v: unknown) => (k === 'blobNames' ? undefined : v))}`;
    if (this.summary.outcome === 'succeeded') this.o.logger.info(line);
    else this.o.logger.warn(line);
    if (failure) throw failure;
    return this.summary;
  }

  private async loadCheckpoint(): Promise<void> {
    const stored = await this.o.checkpoints.read();
    if (stored) {
      const mismatch = tenantMismatch(stored.document.tenantId, this.o.tenantId);
      if (mismatch !== undefined) {
        throw new ExportError(
          `The checkpoint in ${'state/'} ${mismatch} Each tenant needs its own EXPORT_CONTAINER.`,
        );
      }
      this.etag = stored.etag;
      this.persisted = stored.document.checkpoint;
      this.lastSuccessfulRunAt = stored.document.lastSuccessfulRunAt;
      this.scannedUntil = stored.document.scannedUntil;
      this.exportStart = stored.document.exportStart;
      watermarkOf(this.persisted);
    } else {
      const start: Checkpoint = {
        watermark:
          this.o.initialWatermark === undefined
            ? timestampFromMs(this.startedAtMs - this.o.initialLookbackInMs).text
            : formatTicks(exactTicks('initialWatermark', this.o.initialWatermark)),
        idsAtWatermark: [],
      };
      this.exportStart = start.watermark;
      this.o.logger.info(
        `No checkpoint yet: the first run starts at ${start.watermark}${this.o.initialWatermark === undefined ? ' (EXPORT_INITIAL_LOOKBACK)' : ''}.`,
      );
      // Written create-only before anything else, so of two first runs at once only one gets past this line.
      await this.saveCheckpoint(start, undefined);
    }
    this.summary.windowFrom = this.persisted.watermark;
  }

  /**
   * A run that committed a blob and stopped before moving the checkpoint left that blob under the name derived
   * from the checkpoint; its metadata says where it ends. Adopt it instead of exporting those versions again.
   */
  private async recoverCommittedBlobs(): Promise<void> {
    for (;;) {
      // At the window end the next blob in the chain is not ours to adopt (a backfill meets the live export there).
      if (this.windowEndTicks !== undefined && watermarkOf(this.persisted).ticks >= this.windowEndTicks)
        return;
      const name = exportBlobName(this.persisted, this.o.format, this.o.compression);
      const metadata = await this.o.sink.committedMetadata(name);
      if (!metadata) return;
      const end = decodeCheckpoint(metadata.endcheckpoint);
      if (!end) {
        throw new ExportError(
          `Export blob '${name}' has no valid 'endcheckpoint' metadata; it was not written by this exporter. Move it away and run again.`,
        );
      }
      this.o.logger.info(
        `Found blob ${name} committed by an earlier run that stopped before its checkpoint write; adopting it.`,
      );
      await this.saveCheckpoint(end, name);
      this.summary.recoveredBlobs++;
    }
  }

  /**
   * Walks the day windows from the checkpoint. The position moves ONLY by committing the blob named after it
   * (create-only, so at most one successor can ever exist for a position), then writing the checkpoint: a window
   * without incidents leaves the position where it is, except at midnight, where an empty blob carries it into
   * the next day so that every blob sits in the folder of the day it holds. Two runs, or a stale run that wakes
   * up late, therefore cannot fork the chain of blobs, and no version lands in two blobs.
   */
  private async exportWindows(): Promise<void> {
    const settledTicks = timestampFromMs(this.o.clock.now() - this.o.settleDelayInMs).ticks;
    const untilTicks =
      this.windowEndTicks !== undefined && this.windowEndTicks < settledTicks
        ? this.windowEndTicks
        : settledTicks;
    this.summary.windowUntil = formatTicks(untilTicks);
    while (watermarkOf(this.persisted).ticks < untilTicks) {
      const dayEnd = nextUtcMidnight(watermarkOf(this.persisted).ticks);
      const isLastWindow = dayEnd >= untilTicks;
      const complete = await this.exportWindow(
        formatTicks(isLastWindow ? untilTicks : dayEnd),
        !isLastWindow,
      );
      if (!complete) {
        this.summary.outcome = 'partial';
        this.summary.reason ??=
          'time budget (EXPORT_MAX_RUN_DURATION) reached; the next run resumes from the checkpoint';
        return;
      }
      if (isLastWindow) break;
    }
    this.lastSuccessfulRunAt = new Date(this.o.clock.now()).toISOString();
    this.scannedUntil = this.summary.windowUntil;
    await this.saveCheckpoint(this.persisted, undefined);
  }

  /**
   * Exports one window [checkpoint, until) of at most one UTC day; true when the whole window was read.
   * `endsAtMidnight`: the window is a whole day's remainder, and the position may move to its end even when empty.
   */
  private async exportWindow(until: string, endsAtMidnight: boolean): Promise<boolean> {
    let blob: OpenBlob | undefined;
    let afterLastPage: Checkpoint | undefined;
    const seen = new Set<string>();
    const controller = new AbortController();
    const signals = [
      controller.signal,
      AbortSignal.timeout(Math.max(1, this.deadlineMs - this.o.clock.now())),
    ];
    if (this.o.abortSignal) signals.push(this.o.abortSignal);
    const abortSignal = AbortSignal.any(signals);

    /** Commits the open blob (or an empty one) as the successor of the persisted position, then moves there. */
    const commit = async (end: Checkpoint): Promise<void> => {
      const committing =
        blob ?? new OpenBlob(this.o, exportBlobName(this.persisted, this.o.format, this.o.compression));
      blob = undefined;
      await committing.commit(this.persisted, end, until);
      if (committing.records > 0) {
        this.summary.blobs++;
        this.summary.blobNames.push(committing.name);
        this.summary.bytes += committing.bytes;
      }
      await this.saveCheckpoint(end, committing.name);
    };
    const canCutAt = (c: Checkpoint | undefined): c is Checkpoint =>
      c !== undefined && c.idsAtWatermark.length <= this.maxIds;

    try {
      // One page ahead: the next request is on the wire while this page is encoded and uploaded.
      const pages = readAhead(this.o.source.listPages({ from: this.persisted, until }, { abortSignal }));
      for await (const page of pages) {
        this.summary.pages++;
        if (page.rejected?.length) await this.quarantine(this.persisted, page.rejected);
        if (page.records.length > 0) {
          for (const r of page.records) {
            const key = `${r.id}\u0000${r.lastUpdate.ticks}`;
            if (seen.has(key)) {
              throw new ExportError(
                `The incident source listed incident '${r.id}' at ${r.lastUpdate.text} twice in one window.`,
              );
            }
            seen.add(key);
          }
          blob ??= new OpenBlob(this.o, exportBlobName(this.persisted, this.o.format, this.o.compression));
          await blob.append(page.records);
          this.summary.incidents += page.records.length;
        }
        afterLastPage = page.resumeFrom;
        if (blob && canCutAt(afterLastPage) && blob.bytes >= this.maxBlobBytes) await commit(afterLastPage);
        if (this.budgetExhausted()) {
          if (blob && canCutAt(afterLastPage)) await commit(afterLastPage);
          return false;
        }
      }
    } catch (thrown) {
      if (abortSignal.aborted && !this.o.abortSignal?.aborted && this.budgetExhausted()) return false;
      throw thrown;
    } finally {
      controller.abort();
    }
    if (blob || endsAtMidnight) await commit({ watermark: until, idsAtWatermark: [] });
    return true;
  }

  /** Keeps unplaceable items (written before the checkpoint can move past them), and says so. */
  private async quarantine(windowStart: Checkpoint, rejected: readonly RejectedRecord[]): Promise<void> {
    for (const item of rejected) {
      const name = quarantineBlobName(windowStart, item.raw);
      const isNew = await this.o.sink.writeJson(name, {
        reason: item.reason,
        api: this.o.source.api,
        runId: this.o.runId,
        record: item.raw,
      });
      if (isNew) {
        this.summary.quarantined++;
        this.o.logger.warn(`Quarantined a malformed item in ${name}: ${item.reason}.`);
      }
    }
  }

  private budgetExhausted(): boolean {
    const marginMs = Math.min(60_000, this.o.maxRunDurationInMs * 0.05);
    return this.o.clock.now() >= this.deadlineMs - marginMs;
  }

  private async saveCheckpoint(checkpoint: Checkpoint, lastBlob: string | undefined): Promise<void> {
    const document: CheckpointDocument = {
      schemaVersion: 1,
      tenantId: this.o.tenantId,
      api: this.o.source.api,
      checkpoint,
      updatedAt: new Date(this.o.clock.now()).toISOString(),
      runId: this.o.runId,
      ...(lastBlob ? { lastBlob } : {}),
      ...(this.exportStart ? { exportStart: this.exportStart } : {}),
      ...(this.lastSuccessfulRunAt ? { lastSuccessfulRunAt: this.lastSuccessfulRunAt } : {}),
      ...(this.scannedUntil ? { scannedUntil: this.scannedUntil } : {}),
    };
    this.etag = await this.o.checkpoints.write(document, this.etag);
    const moved = !this.persisted || !sameCheckpoint(this.persisted, checkpoint);
    this.persisted = checkpoint;
    if (moved)
      this.o.logger.info(
        `Checkpoint moved to ${checkpoint.watermark}${lastBlob ? ` after ${lastBlob}` : ''}.`,
      );
  }

  private finishSummary(): void {
    const stats = this.o.source.stats;
    this.summary.requests = stats.requests;
    this.summary.throttles = stats.throttles;
    this.summary.retries = stats.retries;
    this.summary.watermark = this.persisted?.watermark ?? '';
    const now = this.o.clock.now();
    this.summary.durationInMs = now - this.startedAtMs;
    const until = this.persisted ? exportedUntil(this.persisted, this.scannedUntil) : undefined;
    this.summary.watermarkAgeInMs = until === undefined ? 0 : Math.max(0, now - ticksToMs(until));
  }

  private async writeManifest(): Promise<void> {
    try {
      await this.o.sink.writeJson(manifestBlobName(this.startedAtMs, this.o.runId), this.summary);
    } catch (thrown) {
      this.o.logger.warn(`Could not write the run manifest: ${toError(thrown).message}`);
    }
  }
}

/** A blob being built from pages; committed with the checkpoint it ends at in its metadata. */
const MAX_STAGES_IN_FLIGHT = 4;

/**
 * The blob being filled. Blocks upload in the background, at most {@link MAX_STAGES_IN_FLIGHT} at a time, so
 * that fetching the next page overlaps uploading the previous ones; the commit waits for all of them, and a
 * failed upload fails the next append or the commit, so a blob is never committed without all its blocks.
 */
class OpenBlob {
  readonly encoder: RecordEncoder;
  readonly writer: ExportBlobWriter;
  bytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly o: ExportRunOptions,
    readonly name: string,
  ) {
    this.encoder = new RecordEncoder(o.format, o.compression);
    this.writer = o.sink.openBlob(name, this.encoder.content);
  }

  get records(): number {
    return this.encoder.records;
  }

  async append(records: Parameters<RecordEncoder['encode']>[0]): Promise<void> {
    this.throwIfFailed();
    const block = this.encoder.encode(records);
    this.bytes += block.length;
    this.startStage(block);
    while (this.inFlight.size >= MAX_STAGES_IN_FLIGHT) await Promise.race(this.inFlight);
    this.throwIfFailed();
  }

  async commit(from: Checkpoint, end: Checkpoint, windowUntil: string): Promise<void> {
    const tail = this.encoder.finish();
    if (tail) {
      this.bytes += tail.length;
      this.startStage(tail);
    }
    await Promise.all(this.inFlight);
    this.throwIfFailed();
    await this.writer.commit({
      schemaversion: '1',
      api: this.o.source.api,
      format: this.o.format,
      compression: this.o.compression,
      recordcount: String(this.encoder.records),
      windowfrom: from.watermark,
      windowto: end.watermark,
      windowuntil: windowUntil,
      runid: this.o.runId.replace(/[^A-Za-z0-9-]/g, '').slice(0, 64),
      endcheckpoint: encodeCheckpoint(end),
    });
  }

  private startStage(block: Buffer): void {
    const staging: Promise<void> = this.writer
      .stage(block)
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight.delete(staging));
    this.inFlight.add(staging);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}

function exactTicks(option: string, text: string): bigint {
  const ts = parseTimestamp(text);
  if (!ts) throw new ExportError(`The ${option} option '${text}' is not an exact timestamp.`);
  return ts.ticks;
}

function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return (
    watermarkOf(a).ticks === watermarkOf(b).ticks &&
    a.idsAtWatermark.length === b.idsAtWatermark.length &&
    a.idsAtWatermark.every((id) => b.idsAtWatermark.includes(id))
  );
}
