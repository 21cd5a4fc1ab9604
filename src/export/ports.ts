import type { Checkpoint, IncidentRecord } from './checkpoint';
import type { Timestamp } from './timestamp';

/** Which incidents API a run reads. */
export type DefenderApi = 'graph' | 'legacy';
export type ExportFormat = 'json' | 'jsonl';
export type ExportCompression = 'none' | 'gzip';

/** An item of a page that cannot be placed in time; kept in quarantine so nothing is silently dropped. */
export interface RejectedRecord {
  readonly reason: string;
  readonly raw: unknown;
}

/** One page of incidents from the API, already validated and filtered to what comes after the window start. */
export interface IncidentPage {
  readonly records: readonly IncidentRecord[];
  readonly rejected?: readonly RejectedRecord[];
  /**
   * A consistent position after this page: everything up to it has been listed. Undefined when the page
   * ends in the middle of something that cannot be resumed (a legacy chunk being paged with `$skip`).
   */
  readonly resumeFrom: Checkpoint | undefined;
}

export interface ListWindow {
  /** Start of the window: records at or before it are excluded. */
  readonly from: Checkpoint;
  /** Exclusive upper bound, an exact timestamp string. */
  readonly until: string;
}

/** Counters a source keeps about its HTTP traffic. */
export interface SourceStats {
  readonly requests: number;
  readonly retries: number;
  readonly throttles: number;
}

/**
 * How a source lists a window. 'timeSlices': `$filter` ranges on the update time that each come back in one
 * page, so nothing depends on the order of the rows or on `$orderby` (docs/incidents-api.md#order).
 */
export type PagingStrategy = 'timeSlices';

/** Port: where incidents come from (Graph or the legacy API). */
export interface IncidentSource {
  readonly api: DefenderApi;
  /** How it lists a window; the run summary reports it. */
  readonly paging: PagingStrategy;
  readonly stats: SourceStats;
  /**
   * Incidents this source returned without their alerts because the alerts could not be read (Graph: neither
   * with `$expand=alerts` nor per incident); always 0 for the legacy API, which embeds them.
   */
  readonly alertsUnavailable: number;
  /**
   * The API's own clock (epoch ms, by the `Date` header of its newest answer), or undefined before the first
   * answer. A run never exports up to a time the API has not reached, whatever the host's clock says.
   */
  apiNow(): number | undefined;
  /** The id and exact last update of an incident as the API sent it (read back from an export blob). */
  identify(raw: unknown): { id: string; lastUpdate: Timestamp } | undefined;
  /**
   * Lists every incident version in the window exactly once, in pages. When iteration completes without
   * throwing, the window is complete.
   */
  listPages(window: ListWindow, options?: { abortSignal?: AbortSignal }): AsyncIterable<IncidentPage>;
}

/** The persisted state document under `state/`. */
export interface CheckpointDocument {
  readonly schemaVersion: 1;
  readonly tenantId: string;
  readonly api: DefenderApi;
  readonly checkpoint: Checkpoint;
  readonly updatedAt: string;
  readonly runId: string;
  /**
   * Where this chain of exports began (its first checkpoint): versions before it were not exported by it.
   * Absent in checkpoints written before it was recorded.
   */
  readonly exportStart?: string;
  /** The export blob that ends at this checkpoint, if the last move committed one. */
  readonly lastBlob?: string;
  readonly lastSuccessfulRunAt?: string;
  /** The end of the last window read completely; the position itself moves only with a blob. */
  readonly scannedUntil?: string;
  /**
   * The name of the blob that follows `checkpoint`, fixed when the position was written. Every run at this
   * position writes that one name (create-only), whatever its own EXPORT_FORMAT or EXPORT_COMPRESSION, so two
   * runs with different settings cannot both commit a successor. Absent in checkpoints of older versions.
   */
  readonly successor?: string;
  /** The versions exported from `recent.from` on, for the re-read of late-indexed updates (EXPORT_REREAD_WINDOW). */
  readonly recent?: RecentVersionsDocument;
}

/**
 * Every version exported with a last update at or after `from` (up to the position), each as
 * `<ticks in base 36>.<digest of id and ticks>`: enough to tell a late-indexed version from one already exported.
 */
export interface RecentVersionsDocument {
  readonly from: string;
  /** No later than when the span up to the position was last read, on the API's clock. */
  readonly readAt?: string;
  /** Where a re-read cut short by the time budget stopped, and when it began; the next run resumes it. */
  readonly cursor?: { readonly checkpoint: Checkpoint; readonly startedAt: string };
  readonly versions: readonly string[];
}

export interface StoredCheckpoint {
  readonly document: CheckpointDocument;
  readonly etag: string;
}

/**
 * Options of every Storage call: `abortSignal` ends the call (the run passes one that fires at its time budget
 * and on the caller's abort), so that a hung request cannot outlive the run.
 */
export interface StorageCallOptions {
  readonly abortSignal?: AbortSignal;
}

/** Port: the checkpoint, guarded by ETags. */
export interface CheckpointStore {
  read(options?: StorageCallOptions): Promise<StoredCheckpoint | undefined>;
  /**
   * Writes the document if the stored one still has `etag` (or none exists when `etag` is undefined) and
   * returns the new ETag. Throws ConcurrentRunError when another writer got there first.
   */
  write(
    document: CheckpointDocument,
    etag: string | undefined,
    options?: StorageCallOptions,
  ): Promise<string>;
}

export interface BlobContentSettings {
  readonly contentType: string;
  readonly contentEncoding: string | undefined;
}

/**
 * What a committed blob holds, hashed by the writer over the bytes it staged, in the order of the block list:
 * the MD5 is the blob's Content-MD5, the SHA-256 and the size go into the run manifest.
 */
export interface CommittedContent {
  readonly bytes: number;
  /** MD5 of the bytes, base64 (as Storage shows Content-MD5). */
  readonly contentMd5: string;
  /** SHA-256 of the bytes, lower-case hex. */
  readonly sha256: string;
}

/** A blob being written in blocks, committed create-only. */
export interface ExportBlobWriter {
  /**
   * Stages one block; nothing is visible until {@link commit}. The block takes its place in the blob when the
   * call is made, not when the upload ends: stages may run concurrently.
   */
  stage(block: Buffer, options?: StorageCallOptions): Promise<void>;
  /**
   * Commits the staged blocks create-only, with the Content-MD5 of their bytes, and returns their hashes.
   * Throws ConcurrentRunError if the blob already exists.
   */
  commit(metadata: Record<string, string>, options?: StorageCallOptions): Promise<CommittedContent>;
}

/** A committed blob as a listing shows it. */
export interface CommittedBlob {
  readonly name: string;
  readonly metadata: Record<string, string>;
}

/** Port: where exports and manifests go. */
export interface ExportSink {
  /** The metadata of a committed blob, or undefined when there is none by that name. */
  committedMetadata(name: string, options?: StorageCallOptions): Promise<Record<string, string> | undefined>;
  /** The committed blobs whose names start with `prefix`, with their metadata, in name order. */
  listCommitted(prefix: string, options?: StorageCallOptions): AsyncIterable<CommittedBlob>;
  /** The records of a committed export blob (inflated and parsed). */
  readRecords(name: string, options?: StorageCallOptions): Promise<unknown[]>;
  openBlob(name: string, content: BlobContentSettings): ExportBlobWriter;
  /** Writes a small JSON document (run manifest, quarantine); create-only. False when it already existed. */
  writeJson(name: string, value: unknown, options?: StorageCallOptions): Promise<boolean>;
}

/** Port: the clock, so tests and the sandbox can move time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
