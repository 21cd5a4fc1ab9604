import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { DefenderApi, ExportCompression, ExportFormat, PagingStrategy } from './ports';
import {
  classifyFailure,
  ConcurrentRunError,
  ExportError,
  StorageError,
  toError,
  type FailureKind,
} from '../errors';
import type { Logger } from '../logger';
import {
  BACKFILL_RUN_PREFIX,
  encodeBlobMetadata,
  EXPORT_PREFIX,
  exportBlobFormat,
  exportBlobName,
  exportBlobStem,
  isExportBlobName,
  manifestBlobName,
  quarantineBlobName,
  readBlobMetadata,
} from './blobLayout';
import { isCheckpoint, exportedUntil, watermarkOf, type Checkpoint, type IncidentRecord } from './checkpoint';
import type {
  CheckpointDocument,
  CheckpointStore,
  Clock,
  CommittedBlob,
  CommittedContent,
  ExportBlobWriter,
  ExportSink,
  IncidentSource,
  RecentVersionsDocument,
  RejectedRecord,
  StorageCallOptions,
} from './ports';
import { RecordEncoder } from './recordEncoder';
import { readAhead } from './readAhead';
import { sameTenant, tenantMismatch } from './tenant';
import {
  formatTicks,
  nextUtcMidnight,
  parseTimestamp,
  TICKS_PER_MS,
  ticksToMs,
  timestampFromMs,
  type Timestamp,
} from './timestamp';

export interface ExportRunOptions {
  readonly source: IncidentSource;
  readonly checkpoints: CheckpointStore;
  readonly sink: ExportSink;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly tenantId: string;
  /** The tenant's name in DEFENDER_TENANTS, carried in the summary (logs, manifest, alerts). */
  readonly tenantName?: string;
  /** The queue message that started this run (the fan-out of DEFENDER_TENANTS), carried in the summary. */
  readonly delivery?: QueueDelivery;
  /** The export container's name, for messages. */
  readonly containerName?: string;
  readonly format: ExportFormat;
  readonly compression: ExportCompression;
  readonly initialLookbackInMs: number;
  readonly settleDelayInMs: number;
  /** How far before its position each run re-reads for versions the API indexed late; 0 turns it off. */
  readonly rereadWindowInMs?: number;
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
  /**
   * A request to stop early but cleanly: at the next page the run commits what it holds and moves the checkpoint
   * there, as at the end of its time budget, and ends 'partial'. A concurrent backfill stops a slice this way to
   * hand the rest of its range to another.
   */
  readonly stopSignal?: AbortSignal;
}

export type RunOutcome = 'succeeded' | 'partial' | 'concurrent' | 'failed';

/** Which try of a queue message a run is: after the last one failed, the host moves the message to `poisonQueue`. */
export interface QueueDelivery {
  readonly queue: string;
  /** The message's dequeue count: 1 on the first try. */
  readonly attempt: number;
  /** host.json `extensions.queues.maxDequeueCount`. */
  readonly maxAttempts: number;
}

/** An export blob a run committed, as its manifest lists it. */
export interface ManifestBlob {
  readonly name: string;
  /** Incident versions in it (its `recordcount` metadata). */
  readonly records: number;
  /** Size of the stored bytes (compressed, for gzip blobs). */
  readonly bytes: number;
  /** SHA-256 of the stored bytes, lower-case hex. */
  readonly sha256: string;
}

/** What one run did: logged as one structured line and stored as the run manifest. */
export interface RunSummary {
  outcome: RunOutcome;
  runId: string;
  /** The tenant exported: every summary line and manifest names it, so alerts can say which tenant. */
  tenantId: string;
  tenantName?: string;
  /**
   * The queue message's try (DEFENDER_TENANTS fan-out); `next` says what follows a failure: the host delivers the
   * message again after its visibility timeout, or moves it to the poison queue after the last try.
   */
  delivery?: QueueDelivery & { next?: 'retry' | 'poison' };
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
  /**
   * Every export blob this run committed, the empty ones too, with the size and SHA-256 of the bytes the writer
   * staged (the blob's Content-MD5 hashes the same bytes): what `download` checks a blob against. In the
   * manifest, not in the log line.
   */
  committedBlobs: ManifestBlob[];
  bytes: number;
  requests: number;
  throttles: number;
  retries: number;
  recoveredBlobs: number;
  /** Items that were not placeable incidents, kept under quarantine/. */
  quarantined: number;
  /** Versions found by the re-read of EXPORT_REREAD_WINDOW: indexed after the position had passed them. */
  lateVersions: number;
  /** Incidents exported without their alerts, because the API would not give them (see the warning). */
  alertsUnavailable: number;
  /** How the source listed the windows ('timeSlices': order-independent, no `$orderby`). */
  paging?: PagingStrategy;
  /** The API's clock minus the host's, when they disagree by more than a minute (the window follows the API's). */
  apiClockSkewInMs?: number;
  durationInMs: number;
  reason?: string;
  /** Where a `failed` or `concurrent` run stopped: the class of its error (see src/errors.ts). */
  failureKind?: FailureKind;
  /**
   * With {@link failureKind}: true when a later run gets past it by itself (network, 5xx, throttling, timeouts,
   * Storage unavailable, another run), false when an operator must act (a 403, a missing secret, bad settings,
   * a malformed blob). Alert on `transient == false` at once, on transient failures only when they repeat.
   */
  transient?: boolean;
}

const DEFAULT_MAX_BLOB_BYTES = 32 * 1024 * 1024;

/**
 * How long the run manifest may take after the time budget ran out. Without it, the manifest of a run whose last
 * Storage call hung up to the deadline could not be written, and that is the run an operator most needs to see;
 * bounded, so that the Function still ends well before host.json's functionTimeout (EXPORT_MAX_RUN_DURATION
 * stays at least 5 minutes below it).
 */
const MANIFEST_GRACE_IN_MS = 15_000;

/** One Storage call of the run, given the options that carry the run's abort signal. */
type StorageCall = <T>(action: string, call: (options: StorageCallOptions) => Promise<T>) => Promise<T>;

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
  /** The name of the blob that follows `persisted`, once fixed (see {@link CheckpointDocument.successor}). */
  private successor: string | undefined;
  private lastSuccessfulRunAt: string | undefined;
  private scannedUntil: string | undefined;
  private exportStart: string | undefined;
  private recent: RecentVersions | undefined;
  private readonly windowEndTicks: bigint | undefined;
  private readonly maxBlobBytes: number;
  private readonly maxIds: number;
  private readonly rereadTicks: bigint;
  /** The host's time when the windows were first bounded; they end at it minus the settle delay. */
  private windowStartMs: number | undefined;
  /** The re-read stopped at its share of the budget: the span it did not reach was not read again. */
  private isRereadCut = false;
  /** The re-read went on from where an earlier run's stopped: the part before was read at that run's time. */
  private isRereadResumed = false;
  /** When the chain found without a checkpoint was last read (see {@link RecentVersions.readAt}). */
  private chainReadAt: bigint | undefined;
  /** The API's time at {@link windowStartMs}, by its `Date` header, once it has answered. */
  private apiStartMs: number | undefined;
  /**
   * Ends every Storage call of the run at its time budget (real time: a hung call makes no clock move) and on
   * the caller's abort; see {@link storage}.
   */
  private readonly storageStop = new AbortController();
  private readonly storageSignal: AbortSignal;
  private storageTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the time budget ends, on the monotonic clock ({@link performance.now}). */
  private readonly budgetEndsAt: number;
  /** Why {@link storageSignal} fired. */
  private storageStoppedBy: 'budget' | 'caller' | undefined;

  constructor(private readonly o: ExportRunOptions) {
    this.startedAtMs = o.clock.now();
    this.deadlineMs = this.startedAtMs + o.maxRunDurationInMs;
    const budgetLeftInMs = Math.max(0, this.deadlineMs - o.clock.now());
    this.budgetEndsAt = performance.now() + budgetLeftInMs;
    this.storageSignal = o.abortSignal
      ? AbortSignal.any([this.storageStop.signal, o.abortSignal])
      : this.storageStop.signal;
    // Every Storage call in flight (stages overlap, the SDK listens at several layers) listens to this one signal.
    setMaxListeners(100, this.storageSignal);
    this.maxBlobBytes = o.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.maxIds = o.maxIdsInBlobMetadata ?? 100;
    this.windowEndTicks = o.windowEnd === undefined ? undefined : exactTicks('windowEnd', o.windowEnd);
    // A backfill reads settled history up to where the live export began: nothing there is indexed late.
    this.rereadTicks = o.windowEnd === undefined ? BigInt(o.rereadWindowInMs ?? 0) * TICKS_PER_MS : 0n;
    this.summary = {
      outcome: 'succeeded',
      runId: o.runId,
      tenantId: o.tenantId,
      ...(o.tenantName !== undefined ? { tenantName: o.tenantName } : {}),
      ...(o.delivery ? { delivery: { ...o.delivery } } : {}),
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
      committedBlobs: [],
      bytes: 0,
      requests: 0,
      throttles: 0,
      retries: 0,
      recoveredBlobs: 0,
      quarantined: 0,
      lateVersions: 0,
      alertsUnavailable: 0,
      durationInMs: 0,
    };
  }

  async execute(): Promise<RunSummary> {
    let failure: Error | undefined;
    this.storageTimer = setTimeout(
      () => {
        this.storageStoppedBy ??= 'budget';
        this.storageStop.abort();
      },
      Math.ceil(Math.max(0, this.budgetEndsAt - performance.now())),
    );
    this.storageTimer.unref?.();
    const onCallerAbort = (): void => {
      this.storageStoppedBy ??= 'caller';
    };
    this.o.abortSignal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      await this.loadCheckpoint();
      await this.recoverCommittedBlobs();
      await this.exportWindows();
    } catch (thrown) {
      const { kind, transient } = classifyFailure(thrown);
      this.summary.failureKind = kind;
      this.summary.transient = transient;
      if (thrown instanceof ConcurrentRunError) {
        this.summary.outcome = 'concurrent';
        this.summary.reason = thrown.message;
      } else {
        failure = toError(thrown);
        this.summary.outcome = 'failed';
        this.summary.reason = failure.message;
        if (this.summary.delivery) {
          const d = this.summary.delivery;
          d.next = d.attempt >= d.maxAttempts ? 'poison' : 'retry';
        }
      }
    } finally {
      clearTimeout(this.storageTimer);
      this.o.abortSignal?.removeEventListener('abort', onCallerAbort);
    }
    this.finishSummary();
    await this.writeManifest();
    const line = `export summary ${JSON.stringify(this.summary, (k, v: unknown) => (k === 'blobNames' || k === 'committedBlobs' ? undefined : v))}`;
    if (this.summary.outcome === 'succeeded') this.o.logger.info(line);
    else this.o.logger.warn(line);
    if (failure) throw failure;
    return this.summary;
  }

  private async loadCheckpoint(): Promise<void> {
    const stored = await this.storage('read the checkpoint', (options) => this.o.checkpoints.read(options));
    if (stored) {
      const document = stored.document;
      const mismatch = tenantMismatch(document.tenantId, this.o.tenantId);
      if (mismatch !== undefined) {
        throw new ExportError(
          `The checkpoint in ${'state/'} ${mismatch} Each tenant needs its own EXPORT_CONTAINER.`,
        );
      }
      this.etag = stored.etag;
      this.persisted = document.checkpoint;
      this.lastSuccessfulRunAt = document.lastSuccessfulRunAt;
      this.scannedUntil = document.scannedUntil;
      this.exportStart = document.exportStart;
      const position = watermarkOf(this.persisted);
      if (
        document.successor !== undefined &&
        isSuccessorOf(document.successor, this.persisted, this.o.tenantId)
      )
        this.successor = document.successor;
      this.recent = RecentVersions.load(document.recent, position.ticks);
    } else {
      const found =
        this.o.initialWatermark === undefined && this.windowEndTicks === undefined
          ? await this.findChainEnd()
          : undefined;
      let start: Checkpoint;
      if (found) {
        start = found.end;
        this.exportStart = found.start;
        this.o.logger.warn(
          `No checkpoint in the state container, but EXPORT_CONTAINER holds this tenant's exports up to ${found.end.watermark} ` +
            `(${found.blob}): continuing that chain from there, so nothing is skipped or written twice. To start over instead, use an empty EXPORT_CONTAINER.`,
        );
      } else {
        start = {
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
      }
      const startTicks = watermarkOf(start).ticks;
      const exportStartTicks = exactTicks('exportStart', this.exportStart ?? start.watermark);
      const since = startTicks - this.rereadTicks;
      this.recent = RecentVersions.load(
        undefined,
        found ? (since > exportStartTicks ? since : exportStartTicks) : startTicks,
      );
      // The re-read's memory went with the checkpoint: rebuild it from the blobs of its span. The chain's last
      // window was read no earlier than its end (`windowuntil`), which bounds when the span was last read.
      if (this.recent && this.chainReadAt !== undefined) this.recent.readAt = this.chainReadAt;
      for (const name of found?.recent ?? []) this.rememberAdopted(await this.readRecords(name));
      this.successor = found ? undefined : this.nameAfter(start);
      // Written create-only before anything else, so of two first runs at once only one gets past this line.
      await this.saveCheckpoint(start, undefined);
    }
    this.summary.windowFrom = this.persisted.watermark;
  }

  /**
   * The end of this tenant's live chain in the export container: the furthest end checkpoint of the blobs that
   * no backfill wrote. Used only when the checkpoint is missing (deleted, or EXPORT_STATE_CONTAINER set apart
   * after the export had run), so that the run continues the chain instead of restarting at the lookback.
   */
  private async findChainEnd(): Promise<
    { end: Checkpoint; start: string; blob: string; recent: string[] } | undefined
  > {
    let best: { end: Checkpoint; ticks: bigint; blob: string } | undefined;
    let startTicks: bigint | undefined;
    const ends: { name: string; ticks: bigint }[] = [];
    let bestUntil: Timestamp | undefined;
    for await (const blob of this.listCommitted(EXPORT_PREFIX)) {
      const m = readBlobMetadata(blob.metadata);
      if (typeof m === 'string') continue;
      if (m.runId.startsWith(BACKFILL_RUN_PREFIX)) continue;
      if (m.tenantId !== undefined && !sameTenant(m.tenantId, this.o.tenantId)) continue;
      const end = m.endCheckpoint;
      const ticks = watermarkOf(end).ticks;
      if (m.recordCount > 0) ends.push({ name: blob.name, ticks });
      if (
        !best ||
        ticks > best.ticks ||
        (ticks === best.ticks && end.idsAtWatermark.length > best.end.idsAtWatermark.length)
      ) {
        best = { end, ticks, blob: blob.name };
        bestUntil = m.windowUntil;
      }
      if (startTicks === undefined || m.windowFrom.ticks < startTicks) startTicks = m.windowFrom.ticks;
    }
    if (!best || startTicks === undefined) return undefined;
    this.chainReadAt = bestUntil?.ticks;
    // Every version exported in the re-read's span sits in a blob that ends in it or after it.
    const since = best.ticks - this.rereadTicks;
    const recent = this.rereadTicks > 0n ? ends.filter((b) => b.ticks >= since).map((b) => b.name) : [];
    return { end: best.end, start: formatTicks(startTicks), blob: best.blob, recent };
  }

  /**
   * A run that committed a blob and stopped before moving the checkpoint left that blob under the successor name
   * of the checkpoint; its metadata says where it ends. Adopt it instead of exporting those versions again.
   */
  private async recoverCommittedBlobs(): Promise<void> {
    for (;;) {
      // At the window end the next blob in the chain is not ours to adopt (a backfill meets the live export there).
      if (this.windowEndTicks !== undefined && watermarkOf(this.persisted).ticks >= this.windowEndTicks)
        return;
      const found = await this.committedSuccessor();
      if (!found) break;
      const { name } = found;
      const metadata = readBlobMetadata(found.metadata);
      if (typeof metadata === 'string') {
        throw new ExportError(
          `Export blob '${name}' ${metadata}; it was not written by this exporter. Move it away and run again.`,
        );
      }
      const end = metadata.endCheckpoint;
      if (metadata.tenantId !== undefined && !sameTenant(metadata.tenantId, this.o.tenantId)) {
        throw new ExportError(
          `Export blob '${name}' was written for another tenant ('${metadata.tenantId}'), not DEFENDER_TENANT_ID '${this.o.tenantId}'; it is not adopted. Give each tenant its own EXPORT_CONTAINER.`,
        );
      }
      if (!isStrictlyAfter(end, this.persisted)) {
        throw new ExportError(
          `Export blob '${name}' ends at ${end.watermark}, which is not after the checkpoint ${this.persisted.watermark} it starts from; ` +
            'it was not written by this exporter (or was altered). Move it away and run again; the checkpoint was not moved.',
        );
      }
      this.o.logger.info(
        `Found blob ${name} committed by an earlier run that stopped before its checkpoint write; adopting it.`,
      );
      if (this.rereadTicks > 0n) this.rememberAdopted(await this.readRecords(name));
      await this.saveCheckpoint(end, name);
      this.summary.recoveredBlobs++;
    }
    if (this.successor === undefined) {
      // A checkpoint of an older version names no successor: fix it now (ETag-guarded), before anything is written.
      this.successor = this.nameAfter(this.persisted);
      await this.saveCheckpoint(this.persisted, undefined);
    }
  }

  /** The committed successor of the position: by its fixed name, or, for older checkpoints, by its stem. */
  private async committedSuccessor(): Promise<
    { name: string; metadata: Record<string, string> } | undefined
  > {
    if (this.successor !== undefined) {
      const successor = this.successor;
      const metadata = await this.storage(`read '${successor}'`, (options) =>
        this.o.sink.committedMetadata(successor, options),
      );
      return metadata ? { name: this.successor, metadata } : undefined;
    }
    const stem = exportBlobStem(this.persisted);
    const found: { name: string; metadata: Record<string, string> }[] = [];
    for await (const blob of this.listCommitted(`${stem}.`)) {
      if (isExportBlobName(blob.name)) found.push(blob);
    }
    if (found.length > 1) {
      this.o.logger.warn(
        `Found ${found.length} export blobs that start at ${this.persisted.watermark} (${found.map((b) => b.name).join(', ')}), ` +
          `written by an older version with different EXPORT_FORMAT settings; adopting ${found[0]!.name}. The others may repeat its versions.`,
      );
    }
    return found[0];
  }

  private nameAfter(checkpoint: Checkpoint): string {
    return exportBlobName(checkpoint, this.o.format, this.o.compression, this.o.tenantId);
  }

  /**
   * Walks the day windows from the checkpoint. The position moves ONLY by committing the blob named after it
   * (create-only, so at most one successor can ever exist for a position), then writing the checkpoint: a window
   * without incidents leaves the position where it is, except at midnight, where an empty blob carries it into
   * the next day so that every blob sits in the folder of the day it holds. Two runs, or a stale run that wakes
   * up late, therefore cannot fork the chain of blobs, and no version lands in two blobs.
   */
  private async exportWindows(): Promise<void> {
    let untilTicks = this.windowUntil();
    let late: IncidentRecord[] | undefined;
    while (watermarkOf(this.persisted).ticks < untilTicks) {
      // Late versions go into the next blob, so they are looked for only when the position can move, and only
      // while the span before the position was last read less than EXPORT_REREAD_WINDOW after its time: a run
      // catching up on a backlog read those versions long after their time, when they were visible already.
      late ??= this.recent?.needsReread(watermarkOf(this.persisted).ticks, this.rereadTicks)
        ? await this.rereadLate()
        : [];
      untilTicks = this.windowUntil(); // the re-read's answers may have told the API's clock
      if (watermarkOf(this.persisted).ticks >= untilTicks) break;
      const dayEnd = nextUtcMidnight(watermarkOf(this.persisted).ticks);
      const isLastWindow = dayEnd >= untilTicks;
      const result = await this.exportWindow(
        formatTicks(isLastWindow ? untilTicks : dayEnd),
        !isLastWindow,
        late,
      );
      if (result === 'behindApiClock') continue; // nothing was written; the window ends earlier now
      late = [];
      if (result === 'partial') {
        this.summary.windowUntil = formatTicks(untilTicks);
        this.summary.outcome = 'partial';
        this.summary.reason ??= this.o.stopSignal?.aborted
          ? 'stopped on request; the next run resumes from the checkpoint'
          : 'time budget (EXPORT_MAX_RUN_DURATION) reached; the next run resumes from the checkpoint';
        return;
      }
      if (isLastWindow) break;
    }
    this.summary.windowUntil = formatTicks(untilTicks);
    this.scannedUntil = this.summary.windowUntil;
    if (this.isRereadCut || this.isRereadResumed) {
      // The window is read, but late versions may still wait in the part of the re-read it did not reach, or in
      // the part an earlier run read before they became visible (the next run reads that again).
      this.summary.outcome = 'partial';
      this.summary.reason = this.isRereadCut
        ? 'the re-read of EXPORT_REREAD_WINDOW took half the time budget; the next run resumes it where it stopped'
        : 'the re-read of EXPORT_REREAD_WINDOW was completed from where an earlier run stopped; the next run reads the rest again';
    } else {
      this.lastSuccessfulRunAt = new Date(this.o.clock.now()).toISOString();
    }
    await this.saveCheckpoint(this.persisted, undefined);
  }

  /** The earliest this run can have read anything, on the API's clock (the earlier of the two clocks). */
  private readStartTicks(): bigint {
    const start = this.windowStartMs ?? this.o.clock.now();
    return timestampFromMs(this.apiStartMs !== undefined && this.apiStartMs < start ? this.apiStartMs : start)
      .ticks;
  }

  /**
   * The end of this run's windows: the run's start minus the settle delay, by the earlier of the host's clock and
   * the API's (its `Date` header, known from the first answer on). A host clock ahead of the API's would otherwise
   * move the position into the API's future, past updates the API then stamps before it.
   */
  private windowUntil(): bigint {
    this.windowStartMs ??= this.o.clock.now();
    if (this.apiStartMs === undefined) {
      const apiNow = this.o.source.apiNow();
      if (apiNow !== undefined) {
        // The API's time when it was first heard from in this run, held fixed: the window must not shrink later.
        const hostNow = this.o.clock.now();
        this.apiStartMs = apiNow - (hostNow - this.windowStartMs);
        const offset = apiNow - hostNow;
        if (Math.abs(offset) > CLOCK_SKEW_WARNING_MS) {
          this.summary.apiClockSkewInMs = Math.round(offset);
          this.o.logger.warn(
            `The host's clock is ${Math.round(Math.abs(offset) / 1000)} s ${offset < 0 ? 'ahead of' : 'behind'} the incidents API's clock (its Date header); ` +
              `windows end by the ${offset < 0 ? "API's" : "host's"} clock. Check the host's time synchronisation.`,
          );
        }
      }
    }
    const now =
      this.apiStartMs !== undefined && this.apiStartMs < this.windowStartMs
        ? this.apiStartMs
        : this.windowStartMs;
    const settledTicks = timestampFromMs(now - this.o.settleDelayInMs).ticks;
    return this.windowEndTicks !== undefined && this.windowEndTicks < settledTicks
      ? this.windowEndTicks
      : settledTicks;
  }

  /**
   * Re-reads [position − EXPORT_REREAD_WINDOW, position) and returns the versions in it that no blob holds yet:
   * updates the API made visible after the position had passed their time (indexing lag beyond the settle delay).
   * The checkpoint keeps every version exported in that span ({@link RecentVersions}), so none is written twice.
   */
  private async rereadLate(): Promise<IncidentRecord[]> {
    if (this.rereadTicks === 0n || !this.recent) return [];
    const position = watermarkOf(this.persisted).ticks;
    // What was stamped more than the window before the span was last read was visible then, and was read then.
    const readAt = this.recent.readAt;
    const fromTicks =
      readAt !== undefined && readAt - this.rereadTicks > this.recent.from
        ? readAt - this.rereadTicks
        : this.recent.from;
    // A re-read that an earlier run had to cut resumes where it stopped.
    const cursor = this.recent.cursor;
    // (Never below what the memory still covers: there, exported versions would look late.)
    const start: Checkpoint =
      cursor && watermarkOf(cursor).ticks >= this.recent.from
        ? cursor
        : { watermark: formatTicks(fromTicks), idsAtWatermark: [] };
    if (watermarkOf(start).ticks >= position) {
      this.recent.finishCursor();
      return [];
    }
    this.isRereadResumed = start === cursor;
    // The re-read may take half the budget at most: the window after the position must always get its share.
    const rereadDeadlineMs = this.startedAtMs + this.o.maxRunDurationInMs / 2;
    const late: IncidentRecord[] = [];
    const window = this.windowSignal();
    let reached: Checkpoint = start;
    try {
      const pages = this.o.source.listPages(
        { from: start, until: this.persisted.watermark },
        { abortSignal: window.signal },
      );
      for await (const page of pages) {
        this.summary.pages++;
        if (page.rejected?.length) await this.quarantine(this.persisted, page.rejected);
        for (const r of page.records) if (!this.recent.has(r.id, r.lastUpdate.ticks)) late.push(r);
        if (page.resumeFrom) reached = page.resumeFrom;
        if (this.o.clock.now() >= rereadDeadlineMs) {
          this.isRereadCut = true;
          this.recent.cutAt(reached, this.readStartTicks());
          this.o.logger.warn(
            `The re-read of ${start.watermark}..${this.persisted.watermark} (EXPORT_REREAD_WINDOW) took half the time budget and stopped; ` +
              'the export goes on. If this repeats, shorten EXPORT_REREAD_WINDOW or raise EXPORT_MAX_RUN_DURATION.',
          );
          break;
        }
      }
    } catch (thrown) {
      if (
        window.signal.aborted &&
        !this.o.abortSignal?.aborted &&
        this.budgetExhausted() &&
        !(thrown instanceof StorageError)
      )
        return [];
      throw thrown;
    } finally {
      window.dispose();
    }
    if (!this.isRereadCut) this.recent.finishCursor();
    if (late.length > 0) {
      this.summary.lateVersions += late.length;
      this.o.logger.warn(
        `The re-read of ${start.watermark}..${this.persisted.watermark} (EXPORT_REREAD_WINDOW) found ${late.length} version(s) ` +
          'the API indexed after the settle delay; they go into the next blob. Consider a longer EXPORT_SETTLE_DELAY.',
      );
    }
    return late;
  }

  /** The signal of one window's requests: the run's time budget and the caller's abort. */
  private windowSignal(): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    const signals = [
      controller.signal,
      AbortSignal.timeout(Math.max(1, this.deadlineMs - this.o.clock.now())),
    ];
    if (this.o.abortSignal) signals.push(this.o.abortSignal);
    return { signal: AbortSignal.any(signals), dispose: () => controller.abort() };
  }

  /**
   * Exports one window [checkpoint, until) of at most one UTC day; true when the whole window was read.
   * `endsAtMidnight`: the window is a whole day's remainder, and the position may move to its end even when empty.
   * `late`: versions before the position found by the re-read; they go into the first blob of the window.
   */
  private async exportWindow(
    until: string,
    endsAtMidnight: boolean,
    late: readonly IncidentRecord[],
  ): Promise<'complete' | 'partial' | 'behindApiClock'> {
    let blob: OpenBlob | undefined;
    let afterLastPage: Checkpoint | undefined;
    const seen = new Set<string>();
    const window = this.windowSignal();
    const abortSignal = window.signal;
    const open = (): OpenBlob =>
      new OpenBlob(this.o, this.successor ?? this.nameAfter(this.persisted), (action, call) =>
        this.storage(action, call),
      );

    /** Commits the open blob (or an empty one) as the successor of the persisted position, then moves there. */
    const commit = async (end: Checkpoint): Promise<void> => {
      const committing = blob ?? open();
      blob = undefined;
      const content = await committing.commit(this.persisted, end, until);
      this.summary.committedBlobs.push({
        name: committing.name,
        records: committing.records,
        bytes: content.bytes,
        sha256: content.sha256,
      });
      if (committing.records > 0) {
        this.summary.blobs++;
        this.summary.blobNames.push(committing.name);
        this.summary.bytes += committing.bytes;
      }
      this.recent?.add(committing.versions);
      await this.saveCheckpoint(end, committing.name);
    };
    // A blob ends strictly after it starts (late versions alone do not move the position).
    const canCutAt = (c: Checkpoint | undefined): c is Checkpoint =>
      c !== undefined && c.idsAtWatermark.length <= this.maxIds && isStrictlyAfter(c, this.persisted);

    let lateAppended = late.length === 0;
    const appendLate = async (): Promise<void> => {
      if (lateAppended) return;
      lateAppended = true;
      blob = open();
      await blob.append(late, { late: true });
      this.summary.incidents += late.length;
    };
    const untilTicks = exactTicks('until', until);
    let isFirstPage = true;

    try {
      // One page ahead: the next request is on the wire while this page is encoded and uploaded.
      const pages = readAhead(this.o.source.listPages({ from: this.persisted, until }, { abortSignal }));
      for await (const page of pages) {
        // The first answer tells the API's clock: a window that ends in the API's future is read again, shorter.
        if (isFirstPage && this.windowUntil() < untilTicks) return 'behindApiClock';
        isFirstPage = false;
        await appendLate();
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
          blob ??= open();
          await blob.append(page.records);
          this.summary.incidents += page.records.length;
        }
        afterLastPage = page.resumeFrom;
        if (blob && canCutAt(afterLastPage) && blob.bytes >= this.maxBlobBytes) await commit(afterLastPage);
        if (this.budgetExhausted() || this.o.stopSignal?.aborted) {
          // Even without incidents: an empty blob carries the position over what was read, so a stretch that
          // takes more than one budget to read (the legacy API at 50 requests a minute) cannot stall the export.
          if (canCutAt(afterLastPage)) await commit(afterLastPage);
          return 'partial';
        }
      }
    } catch (thrown) {
      // A Storage call the budget ended is a failure of Storage (see storage()), not a clean stop.
      if (
        abortSignal.aborted &&
        !this.o.abortSignal?.aborted &&
        this.budgetExhausted() &&
        !(thrown instanceof StorageError)
      )
        return 'partial';
      throw thrown;
    } finally {
      window.dispose();
    }
    await appendLate();
    // At midnight an empty blob carries the position into the next day, unless a blob cut at the last page
    // already reached the window's end (a blob that does not move the position would block its own successor).
    const end: Checkpoint = { watermark: until, idsAtWatermark: [] };
    if (blob || (endsAtMidnight && canCutAt(end))) await commit(end);
    return 'complete';
  }

  /** Keeps unplaceable items (written before the checkpoint can move past them), and says so. */
  private async quarantine(windowStart: Checkpoint, rejected: readonly RejectedRecord[]): Promise<void> {
    for (const item of rejected) {
      const name = quarantineBlobName(windowStart, item.raw);
      const quarantined = {
        reason: item.reason,
        api: this.o.source.api,
        runId: this.o.runId,
        record: item.raw,
      };
      const isNew = await this.storage(`write '${name}'`, (options) =>
        this.o.sink.writeJson(name, quarantined, options),
      );
      if (isNew) {
        this.summary.quarantined++;
        this.o.logger.warn(`Quarantined a malformed item in ${name}: ${item.reason}.`);
      }
    }
  }

  /** Adds the versions of a blob adopted from a crashed run to the re-read's memory. */
  private rememberAdopted(records: readonly unknown[]): void {
    const versions: { id: string; ticks: bigint }[] = [];
    for (const raw of records) {
      const r = this.o.source.identify(raw);
      if (r) versions.push({ id: r.id, ticks: r.lastUpdate.ticks });
    }
    this.recent?.add(versions);
  }

  /**
   * Runs one Storage call with the run's abort signal. A call the signal ended fails the run with a
   * {@link StorageError} that names Storage and the time budget (transient: the next run resumes from the
   * checkpoint, which never moves past a blob that was not committed).
   */
  private async storage<T>(action: string, call: (options: StorageCallOptions) => Promise<T>): Promise<T> {
    try {
      return await call({ abortSignal: this.storageSignal });
    } catch (thrown) {
      throw this.stoppedStorageError(action, thrown);
    }
  }

  private async readRecords(name: string): Promise<unknown[]> {
    return this.storage(`read '${name}'`, (options) => this.o.sink.readRecords(name, options));
  }

  private async *listCommitted(prefix: string): AsyncIterable<CommittedBlob> {
    try {
      yield* this.o.sink.listCommitted(prefix, { abortSignal: this.storageSignal });
    } catch (thrown) {
      throw this.stoppedStorageError(`list '${prefix}'`, thrown);
    }
  }

  private stoppedStorageError(action: string, thrown: unknown): unknown {
    if (!this.storageSignal.aborted || thrown instanceof ConcurrentRunError) return thrown;
    const stop =
      this.storageStoppedBy === 'caller'
        ? `The run was stopped while waiting for Storage to ${action}`
        : `The run's time budget (EXPORT_MAX_RUN_DURATION, ${this.o.maxRunDurationInMs / 1000} s) ran out while waiting for Storage to ${action}`;
    const inner = thrown instanceof StorageError ? thrown : undefined;
    return new StorageError(
      `${stop}: ${toError(thrown).message} The checkpoint stays where the data is; the next run resumes from it.`,
      {
        container: inner?.container ?? this.o.containerName ?? '',
        ...(inner?.blob !== undefined ? { blob: inner.blob } : {}),
        ...(inner?.status !== undefined ? { status: inner.status } : {}),
        ...(inner?.code !== undefined ? { code: inner.code } : {}),
        isTransient: true,
        cause: thrown,
      },
    );
  }

  private budgetExhausted(): boolean {
    const marginMs = Math.min(60_000, this.o.maxRunDurationInMs * 0.05);
    return this.o.clock.now() >= this.deadlineMs - marginMs;
  }

  private async saveCheckpoint(checkpoint: Checkpoint, lastBlob: string | undefined): Promise<void> {
    const moved = !this.persisted || !sameCheckpoint(this.persisted, checkpoint);
    // The successor is fixed with the position it follows, and kept while the position stays.
    const successor = moved && this.persisted ? this.nameAfter(checkpoint) : this.successor;
    if (moved)
      this.recent?.prune(watermarkOf(checkpoint).ticks - this.rereadTicks, this.rereadTicks, this.o.logger);
    // Whatever this run has read up to the position, it read after its windows began (unless its re-read was cut).
    if (this.recent && this.windowStartMs !== undefined && !this.isRereadCut)
      this.recent.markRead(this.readStartTicks());
    const recent = this.rereadTicks > 0n ? this.recent?.toDocument() : undefined;
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
      ...(successor ? { successor } : {}),
      ...(recent ? { recent } : {}),
    };
    const etag = this.etag;
    this.etag = await this.storage('write the checkpoint', (options) =>
      this.o.checkpoints.write(document, etag, options),
    );
    this.persisted = checkpoint;
    this.successor = successor;
    if (moved && lastBlob)
      this.o.logger.info(`Checkpoint moved to ${checkpoint.watermark} after ${lastBlob}.`);
  }

  private finishSummary(): void {
    const stats = this.o.source.stats;
    this.summary.requests = stats.requests;
    this.summary.throttles = stats.throttles;
    this.summary.retries = stats.retries;
    this.summary.alertsUnavailable = this.o.source.alertsUnavailable;
    this.summary.paging = this.o.source.paging;
    if (this.summary.alertsUnavailable > 0) {
      this.o.logger.warn(
        `${this.summary.alertsUnavailable} incident version(s) were exported without their alerts: the API did not return them, ` +
          'neither with $expand=alerts nor per incident (the info lines before name the incidents).',
      );
    }
    this.summary.watermark = this.persisted?.watermark ?? '';
    const now = this.o.clock.now();
    this.summary.durationInMs = now - this.startedAtMs;
    const until = this.persisted ? exportedUntil(this.persisted, this.scannedUntil) : undefined;
    this.summary.watermarkAgeInMs = until === undefined ? 0 : Math.max(0, now - ticksToMs(until));
  }

  private async writeManifest(): Promise<void> {
    try {
      // Its own signal: the caller's abort already stopped the work, and the manifest is what says where it
      // stopped; it gets a short grace after the time budget (see MANIFEST_GRACE_IN_MS), never more.
      const abortSignal = AbortSignal.timeout(
        Math.ceil(Math.max(0, this.budgetEndsAt - performance.now()) + MANIFEST_GRACE_IN_MS),
      );
      await this.o.sink.writeJson(manifestBlobName(this.startedAtMs, this.o.runId), this.summary, {
        abortSignal,
      });
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
  /** The versions appended, for the re-read's memory once the blob is committed. */
  readonly versions: { id: string; ticks: bigint }[] = [];
  private late = 0;
  private readonly format: ExportFormat;
  private readonly compression: ExportCompression;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly o: ExportRunOptions,
    readonly name: string,
    private readonly storage: StorageCall,
  ) {
    // The format is the name's: a successor fixed before EXPORT_FORMAT changed keeps the format it was named in.
    ({ format: this.format, compression: this.compression } = exportBlobFormat(name));
    this.encoder = new RecordEncoder(this.format, this.compression);
    this.writer = o.sink.openBlob(name, this.encoder.content);
  }

  get records(): number {
    return this.encoder.records;
  }

  async append(records: readonly IncidentRecord[], options: { late?: boolean } = {}): Promise<void> {
    this.throwIfFailed();
    for (const r of records) this.versions.push({ id: r.id, ticks: r.lastUpdate.ticks });
    if (options.late) this.late += records.length;
    const block = this.encoder.encode(records);
    this.bytes += block.length;
    this.startStage(block);
    while (this.inFlight.size >= MAX_STAGES_IN_FLIGHT) await Promise.race(this.inFlight);
    this.throwIfFailed();
  }

  /** Commits the blob; returns the size and hashes of what it holds. */
  async commit(from: Checkpoint, end: Checkpoint, windowUntil: string): Promise<CommittedContent> {
    const tail = this.encoder.finish();
    if (tail) {
      this.bytes += tail.length;
      this.startStage(tail);
    }
    await Promise.all(this.inFlight);
    this.throwIfFailed();
    const windowTo = watermarkOf(end);
    const metadata = encodeBlobMetadata({
      api: this.o.source.api,
      tenantId: this.o.tenantId,
      format: this.format,
      compression: this.compression,
      recordCount: this.encoder.records,
      lateCount: this.late,
      windowFrom: watermarkOf(from),
      windowTo,
      windowUntil: parseTimestamp(windowUntil) ?? fail(`window end '${windowUntil}' is not a timestamp`),
      runId: this.o.runId,
      endCheckpoint: end,
    });
    return this.storage(`commit '${this.name}'`, (options) => this.writer.commit(metadata, options));
  }

  private startStage(block: Buffer): void {
    const staging: Promise<void> = this.storage(`stage a block of '${this.name}'`, (options) =>
      this.writer.stage(block, options),
    )
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

function fail(message: string): never {
  throw new Error(message);
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

/** True when `end` comes after `start`: a later watermark, or the same one with more ids exported at it. */
function isStrictlyAfter(end: Checkpoint, start: Checkpoint): boolean {
  const e = watermarkOf(end).ticks;
  const s = watermarkOf(start).ticks;
  if (e !== s) return e > s;
  return (
    end.idsAtWatermark.length > start.idsAtWatermark.length &&
    start.idsAtWatermark.every((id) => end.idsAtWatermark.includes(id))
  );
}

/** True when `name` is an export blob name of this tenant that starts at `checkpoint` (in any format). */
function isSuccessorOf(name: string, checkpoint: Checkpoint, tenantId: string): boolean {
  return isExportBlobName(name) && name.startsWith(`${exportBlobStem(checkpoint, tenantId)}.`);
}

/** A host clock that far from the API's is worth a warning. */
const CLOCK_SKEW_WARNING_MS = 60_000;

/** At most this many versions are kept for the re-read; beyond, its span shrinks (and the run says so). */
const MAX_RECENT_VERSIONS = 10_000;

/**
 * The versions exported with a last update at or after `from`: what the re-read of EXPORT_REREAD_WINDOW needs
 * to tell a late-indexed version from one already exported. Kept in the checkpoint document (so it moves with
 * the position, atomically), as `<ticks base 36>.<digest>`, bounded by {@link MAX_RECENT_VERSIONS}.
 */
class RecentVersions {
  private constructor(
    /** Complete from here (ticks) up to the position. */
    public from: bigint,
    private readonly versions: Map<string, bigint>,
    /**
     * No later than when the span up to the position was last read (API clock, ticks). A version before the
     * position can still turn up late only while the position is within the re-read window of that time.
     */
    public readAt: bigint | undefined,
  ) {}

  /** Where a re-read cut short by the budget stopped, and when that re-read began (API clock, ticks). */
  cursor: Checkpoint | undefined;
  private cursorStartedAt: bigint | undefined;
  /** When the re-read that completed in this run began, if it was resumed from a cursor (for the whole run). */
  private completedFrom: bigint | undefined;

  cutAt(reached: Checkpoint, readStart: bigint): void {
    this.cursor = reached;
    this.cursorStartedAt ??= readStart;
  }

  /** The re-read reached the position: the part read by earlier runs was read when they began. */
  finishCursor(): void {
    if (this.cursor === undefined) return;
    this.completedFrom = this.cursorStartedAt;
    this.cursor = undefined;
    this.cursorStartedAt = undefined;
  }

  markRead(readStart: bigint): void {
    const earliest =
      this.completedFrom !== undefined && this.completedFrom < readStart ? this.completedFrom : readStart;
    this.readAt = earliest;
  }

  /** True while versions before `position` may still become visible late (see {@link readAt}). */
  needsReread(position: bigint, windowTicks: bigint): boolean {
    return windowTicks > 0n && (this.readAt === undefined || position + windowTicks > this.readAt);
  }

  /** From the checkpoint document; an older checkpoint has none, and the memory starts at the position. */
  static load(document: RecentVersionsDocument | undefined, positionTicks: bigint): RecentVersions {
    const from = parseTimestamp(document?.from)?.ticks;
    if (!document || from === undefined || !Array.isArray(document.versions))
      return new RecentVersions(positionTicks, new Map(), undefined);
    const versions = new Map<string, bigint>();
    for (const entry of document.versions as readonly unknown[]) {
      if (typeof entry !== 'string') continue;
      const [time, digest] = entry.split('.');
      const ticks = time === undefined || digest === undefined ? undefined : parseBase36(time);
      if (ticks !== undefined) versions.set(entry, ticks);
    }
    const recent = new RecentVersions(from, versions, parseTimestamp(document.readAt)?.ticks);
    const cursor = document.cursor;
    const cursorStartedAt = parseTimestamp(cursor?.startedAt)?.ticks;
    if (cursor && isCheckpoint(cursor.checkpoint) && cursorStartedAt !== undefined) {
      recent.cursor = cursor.checkpoint;
      recent.cursorStartedAt = cursorStartedAt;
    }
    return recent;
  }

  has(id: string, ticks: bigint): boolean {
    return this.versions.has(versionKey(id, ticks));
  }

  add(versions: readonly { id: string; ticks: bigint }[]): void {
    for (const v of versions) if (v.ticks >= this.from) this.versions.set(versionKey(v.id, v.ticks), v.ticks);
  }

  /** Forgets what lies before `from`; beyond the bound, the oldest instants too (the span then shrinks). */
  prune(from: bigint, windowTicks: bigint, logger: Logger): void {
    // Keep what a later re-read needs to know: from where a re-read cut short stopped, and from the window before
    // the span was last read (what is stamped after that may still turn up late).
    let keepFrom = from;
    if (this.readAt !== undefined && this.readAt - windowTicks < keepFrom)
      keepFrom = this.readAt - windowTicks;
    if (this.cursor && watermarkOf(this.cursor).ticks < keepFrom) keepFrom = watermarkOf(this.cursor).ticks;
    if (keepFrom > this.from) this.from = keepFrom;
    for (const [key, ticks] of this.versions) if (ticks < this.from) this.versions.delete(key);
    if (this.versions.size <= MAX_RECENT_VERSIONS) return;
    const times = [...this.versions.values()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const cut = times[this.versions.size - MAX_RECENT_VERSIONS]!;
    this.from = cut + 1n;
    for (const [key, ticks] of this.versions) if (ticks < this.from) this.versions.delete(key);
    logger.warn(
      `More than ${MAX_RECENT_VERSIONS} versions in EXPORT_REREAD_WINDOW: the re-read covers only ${formatTicks(this.from)} onwards.`,
    );
  }

  toDocument(): RecentVersionsDocument {
    return {
      from: formatTicks(this.from),
      ...(this.readAt !== undefined ? { readAt: formatTicks(this.readAt) } : {}),
      ...(this.cursor && this.cursorStartedAt !== undefined
        ? { cursor: { checkpoint: this.cursor, startedAt: formatTicks(this.cursorStartedAt) } }
        : {}),
      versions: [...this.versions.keys()],
    };
  }
}

function versionKey(id: string, ticks: bigint): string {
  const digest = createHash('sha256').update(`${id}\u0000${ticks}`).digest('base64url').slice(0, 12);
  return `${ticks.toString(36)}.${digest}`;
}

function parseBase36(text: string): bigint | undefined {
  if (!/^[0-9a-z]{1,16}$/.test(text)) return undefined;
  let value = 0n;
  for (const c of text) value = value * 36n + BigInt(parseInt(c, 36));
  return value;
}
