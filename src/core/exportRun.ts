import type { DefenderApi, ExportCompression, ExportFormat } from '../config';
import { ConcurrentRunError, ExportError, toError } from '../errors';
import type { Logger } from '../logger';
import { exportBlobName, manifestBlobName, quarantineBlobName } from './blobNaming';
import { decodeCheckpoint, encodeCheckpoint, watermarkOf, type Checkpoint } from './checkpoint';
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
import { formatTicks, nextUtcMidnight, ticksToMs, timestampFromMs } from './timestamp';

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
  private readonly maxBlobBytes: number;
  private readonly maxIds: number;

  constructor(private readonly o: ExportRunOptions) {
    this.startedAtMs = o.clock.now();
    this.deadlineMs = this.startedAtMs + o.maxRunDurationInMs;
    this.maxBlobBytes = o.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.maxIds = o.maxIdsInBlobMetadata ?? 100;
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
      if (stored.document.tenantId !== this.o.tenantId) {
        throw new ExportError(
          `The checkpoint in ${'state/'} belongs to tenant '${stored.document.tenantId}', not DEFENDER_TENANT_ID '${this.o.tenantId}'. ` +
            'Use a separate EXPORT_CONTAINER for each tenant.',
        );
      }
      this.etag = stored.etag;
      this.persisted = stored.document.checkpoint;
      this.lastSuccessfulRunAt = stored.document.lastSuccessfulRunAt;
      watermarkOf(this.persisted);
    } else {
      const start: Checkpoint = {
        watermark: timestampFromMs(this.startedAtMs - this.o.initialLookbackInMs).text,
        idsAtWatermark: [],
      };
      this.o.logger.info(
        `No checkpoint yet: the first run starts at ${start.watermark} (EXPORT_INITIAL_LOOKBACK).`,
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

  private async exportWindows(): Promise<void> {
    const untilTicks = timestampFromMs(this.o.clock.now() - this.o.settleDelayInMs).ticks;
    this.summary.windowUntil = formatTicks(untilTicks);
    let position = this.persisted;
    while (watermarkOf(position).ticks < untilTicks) {
      const dayEnd = nextUtcMidnight(watermarkOf(position).ticks);
      const windowEnd = dayEnd < untilTicks ? dayEnd : untilTicks;
      const result = await this.exportWindow(position, formatTicks(windowEnd));
      position = result.position;
      if (!result.complete) {
        this.summary.outcome = 'partial';
        this.summary.reason ??=
          'time budget (EXPORT_MAX_RUN_DURATION) reached; the next run resumes from the checkpoint';
        break;
      }
    }
    if (this.summary.outcome === 'succeeded')
      this.lastSuccessfulRunAt = new Date(this.o.clock.now()).toISOString();
    if (!sameCheckpoint(position, this.persisted) || this.summary.outcome === 'succeeded') {
      await this.saveCheckpoint(position, undefined);
    }
  }

  /** Exports one window [from, until) of at most one UTC day. */
  private async exportWindow(
    from: Checkpoint,
    until: string,
  ): Promise<{ position: Checkpoint; complete: boolean }> {
    let blobStart = from;
    let blob: OpenBlob | undefined;
    let afterLastPage: Checkpoint | undefined = from;
    const seen = new Set<string>();
    const controller = new AbortController();
    const signals = [
      controller.signal,
      AbortSignal.timeout(Math.max(1, this.deadlineMs - this.o.clock.now())),
    ];
    if (this.o.abortSignal) signals.push(this.o.abortSignal);
    const abortSignal = AbortSignal.any(signals);

    const commit = async (end: Checkpoint): Promise<void> => {
      if (!blob) return;
      await blob.commit(blobStart, end, until);
      this.summary.blobs++;
      this.summary.blobNames.push(blob.name);
      this.summary.bytes += blob.bytes;
      await this.saveCheckpoint(end, blob.name);
      blob = undefined;
      blobStart = end;
    };

    try {
      for await (const page of this.o.source.listPages({ from, until }, { abortSignal })) {
        this.summary.pages++;
        if (page.rejected?.length) await this.quarantine(blobStart, page.rejected);
        if (page.records.length > 0) {
          for (const r of page.records) {
            const key = `${r.id}\u0000${r.lastUpdate.ticks}`;
            if (seen.has(key))
              throw new ExportError(
                `The incident source listed incident '${r.id}' at ${r.lastUpdate.text} twice in one window.`,
              );
            seen.add(key);
          }
          if (!blob) {
            // The blob's name must be derived from a checkpoint that is persisted, or a crash after its commit
            // could not be recovered.
            if (!sameCheckpoint(blobStart, this.persisted)) await this.saveCheckpoint(blobStart, undefined);
            blob = new OpenBlob(this.o, exportBlobName(blobStart, this.o.format, this.o.compression));
          }
          await blob.append(page.records);
          this.summary.incidents += page.records.length;
        }
        afterLastPage = page.resumeFrom;
        if (
          afterLastPage &&
          blob &&
          afterLastPage.idsAtWatermark.length <= this.maxIds &&
          blob.bytes >= this.maxBlobBytes
        ) {
          await commit(afterLastPage);
        } else if (afterLastPage && !blob) {
          blobStart = afterLastPage;
        }
        if (this.budgetExhausted()) {
          if (afterLastPage && afterLastPage.idsAtWatermark.length <= this.maxIds)
            await commit(afterLastPage);
          return { position: blob ? blobStart : (afterLastPage ?? blobStart), complete: false };
        }
      }
    } catch (thrown) {
      if (abortSignal.aborted && !this.o.abortSignal?.aborted && this.budgetExhausted()) {
        return { position: blobStart, complete: false };
      }
      throw thrown;
    } finally {
      controller.abort();
    }
    const end: Checkpoint = { watermark: until, idsAtWatermark: [] };
    await commit(end);
    return { position: end, complete: true };
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
      ...(this.lastSuccessfulRunAt ? { lastSuccessfulRunAt: this.lastSuccessfulRunAt } : {}),
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
    this.summary.watermarkAgeInMs = this.persisted
      ? Math.max(0, now - ticksToMs(watermarkOf(this.persisted).ticks))
      : 0;
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
class OpenBlob {
  readonly encoder: RecordEncoder;
  readonly writer: ExportBlobWriter;
  bytes = 0;

  constructor(
    private readonly o: ExportRunOptions,
    readonly name: string,
  ) {
    this.encoder = new RecordEncoder(o.format, o.compression);
    this.writer = o.sink.openBlob(name, this.encoder.content);
  }

  async append(records: Parameters<RecordEncoder['encode']>[0]): Promise<void> {
    const block = this.encoder.encode(records);
    this.bytes += block.length;
    await this.writer.stage(block);
  }

  async commit(from: Checkpoint, end: Checkpoint, windowUntil: string): Promise<void> {
    const tail = this.encoder.finish();
    if (tail) {
      this.bytes += tail.length;
      await this.writer.stage(tail);
    }
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
}

function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return (
    watermarkOf(a).ticks === watermarkOf(b).ticks &&
    a.idsAtWatermark.length === b.idsAtWatermark.length &&
    a.idsAtWatermark.every((id) => b.idsAtWatermark.includes(id))
  );
}
