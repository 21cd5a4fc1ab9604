import { createHash } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import { describeStorageError, isWriteConflict, streamToBuffer } from '../sink/blobExportStore';
import type { DefenderApi } from '../config';
import { isExportBlobName, readBlobMetadata } from '../export/blobLayout';
import { formatTicks, ticksToMs } from '../export/timestamp';
import { parseIncidentRecord } from '../source/incidentPage';
import { toError } from '../errors';
import {
  decodeExportBlob,
  inflateExportBlob,
  listExportBlobs,
  maxInflatedBytes,
  type ExportBlobInfo,
  type InflateOptions,
} from './exportReader';
import { forEachConcurrently } from '../export/forEachConcurrently';
import { removePartialFiles, writeFileAtomically } from './localFiles';
import { readRunManifests, type RunManifest } from './runManifests';
import { overlaps, type TimeRange } from './timeRange';

/** The record of what a download wrote, one JSON line per file, in the output folder. */
export const DOWNLOAD_STATE_FILE = '.download-state.jsonl';

export interface DownloadOptions extends InflateOptions {
  readonly range: TimeRange;
  readonly outDir: string;
  /** Blobs downloaded at once; default 4. */
  readonly concurrency?: number;
  /** Stops starting new downloads and cancels the running ones; what is complete stays, and a rerun resumes. */
  readonly abortSignal?: AbortSignal;
  /** Called once the plan is known, as bytes arrive and after each file. */
  readonly onProgress?: (progress: DownloadProgress) => void;
}

export interface DownloadProgress {
  readonly totalFiles: number;
  readonly totalBytes: number;
  readonly files: number;
  readonly bytes: number;
}

/** A verified local file of the download, as the merge reads it. */
export interface LocalExportFile {
  readonly blob: string;
  /** Path relative to the output folder: see {@link localNames}. */
  readonly file: string;
  readonly api: DefenderApi;
  readonly records: number;
}

export interface DownloadSummary {
  readonly container: string;
  readonly from: string;
  readonly to: string;
  readonly outDir: string;
  /** Export blobs in the range that hold incidents. */
  blobs: number;
  downloaded: number;
  /** Already present from an earlier run, and verified against what that run recorded. */
  alreadyPresent: number;
  /** Blobs without incidents (they carry the position over a quiet midnight): nothing to download. */
  emptyBlobs: number;
  /** Bytes transferred from storage. */
  bytes: number;
  /** Incident versions in the files (whole blobs; a blob may reach a little beyond a date-time range). */
  records: number;
  /** Downloaded blobs whose bytes matched the Content-MD5 Storage keeps for them. */
  verifiedByContentMd5: number;
  /** Downloaded blobs without a Content-MD5 (written by versions of the exporter before it set one). */
  withoutContentMd5: number;
  /** Downloaded blobs whose size and SHA-256 matched the manifest of the run that wrote them. */
  verifiedByManifest: number;
  /**
   * Downloaded blobs that no manifest of the run that wrote them lists: written by a version of the exporter
   * before manifests listed blobs, or by a run that stopped before writing its manifest or before it heard back
   * from its commit.
   */
  notInManifest: number;
  files: LocalExportFile[];
  failures: { blob: string; reason: string }[];
  interrupted: boolean;
}

interface StateEntry {
  blob: string;
  etag: string;
  file: string;
  bytes: number;
  sha256: string;
  records: number;
  api: DefenderApi;
}

/**
 * Downloads the export blobs whose versions meet the range into `outDir`, keeping the container's layout:
 * lists them by their date prefixes, skips those a previous run wrote and that still verify, downloads the
 * rest in parallel, decompresses gzip, checks each (size, Content-MD5, the size and SHA-256 in the manifest of
 * the run that wrote it, JSON, one valid incident per record, the record count in the blob's metadata) and
 * writes it atomically; a blob that fails a check is not written. Blob failures are collected, not thrown;
 * storage errors that stop the listing (of the blobs or of the manifests) are.
 */
export async function downloadExports(
  container: ContainerClient,
  options: DownloadOptions,
): Promise<DownloadSummary> {
  const { range, outDir } = options;
  const summary: DownloadSummary = {
    container: container.containerName,
    from: formatTicks(range.fromTicks),
    to: formatTicks(range.toTicks),
    outDir,
    blobs: 0,
    downloaded: 0,
    alreadyPresent: 0,
    emptyBlobs: 0,
    bytes: 0,
    records: 0,
    verifiedByContentMd5: 0,
    withoutContentMd5: 0,
    verifiedByManifest: 0,
    notInManifest: 0,
    files: [],
    failures: [],
    interrupted: false,
  };
  const listed = await listExportBlobs(container, ticksToMs(range.fromTicks), ticksToMs(range.toTicks - 1n));
  const inRange = listed.filter((b) => blobMeetsRange(b, range));
  for (const blob of inRange.filter((b) => !isExportBlobName(b.name))) {
    summary.failures.push({ blob: blob.name, reason: 'not named as this exporter names blobs; not copied' });
  }
  // A blob whose metadata does not read is kept: it then fails verification, by name.
  const dataBlobs = inRange.filter((b) => {
    const metadata = readBlobMetadata(b.metadata);
    return isExportBlobName(b.name) && (typeof metadata === 'string' || metadata.recordCount > 0);
  });
  summary.emptyBlobs = inRange.length - dataBlobs.length;
  summary.blobs = dataBlobs.length;
  // From every blob of the listed day folders, not only those of the range: a file's name must not depend on
  // the range a download was asked for.
  const files = localNames(listed.filter((b) => isExportBlobName(b.name)).map((b) => b.name));
  const fileOf = (blobName: string): string => files.get(blobName) ?? localName(blobName);

  const state = await readState(outDir);
  const done = new Map<string, LocalExportFile>();
  const toFetch: ExportBlobInfo[] = [];
  await forEachConcurrently(dataBlobs, 8, async (blob) => {
    const entry = state.get(blob.name);
    const file = fileOf(blob.name);
    if (entry && entry.etag === blob.etag && entry.file === file && (await isIntact(outDir, file, entry))) {
      done.set(blob.name, {
        blob: blob.name,
        file,
        api: entry.api,
        records: entry.records,
      });
      summary.alreadyPresent++;
    } else {
      toFetch.push(blob);
    }
  });
  toFetch.sort((a, b) => (a.name < b.name ? -1 : 1));
  const manifests = await manifestsOf(container, toFetch);
  for (const folder of new Set(toFetch.map((b) => dirname(join(outDir, b.name))))) {
    await removePartialFiles(folder);
  }

  const progress = { totalFiles: toFetch.length, totalBytes: sum(toFetch.map((b) => b.size)), files: 0 };
  const inFlight = new Map<string, number>();
  const report = (): void =>
    options.onProgress?.({ ...progress, bytes: summary.bytes + sum([...inFlight.values()]) });
  report();

  let stateWrites = Promise.resolve();
  await forEachConcurrently(
    toFetch,
    options.concurrency ?? 4,
    async (blob) => {
      try {
        const bytes = await fetchBlob(container, blob, options.abortSignal, (loaded) => {
          inFlight.set(blob.name, loaded);
          report();
        });
        const verified = verifyExportBlob(blob, bytes, manifests, options);
        const file = fileOf(blob.name);
        await writeFileAtomically(join(outDir, file), (f) => f.write(verified.content));
        const entry: StateEntry = {
          blob: blob.name,
          etag: blob.etag,
          file,
          bytes: verified.content.length,
          sha256: sha256(verified.content),
          records: verified.records,
          api: verified.api,
        };
        stateWrites = stateWrites.then(() =>
          appendFile(join(outDir, DOWNLOAD_STATE_FILE), `${JSON.stringify(entry)}\n`),
        );
        await stateWrites;
        done.set(blob.name, { blob: blob.name, file, api: entry.api, records: entry.records });
        summary.downloaded++;
        summary.bytes += bytes.length;
        if (verified.byContentMd5) summary.verifiedByContentMd5++;
        else summary.withoutContentMd5++;
        if (verified.byManifest) summary.verifiedByManifest++;
        else summary.notInManifest++;
      } catch (thrown) {
        if (options.abortSignal?.aborted) return;
        summary.failures.push({ blob: blob.name, reason: toError(thrown).message });
      } finally {
        inFlight.delete(blob.name);
        progress.files++;
        report();
      }
    },
    options.abortSignal,
  );
  summary.interrupted = options.abortSignal?.aborted ?? false;
  summary.files = [...done.values()].sort((a, b) => (a.blob < b.blob ? -1 : 1));
  summary.records = sum(summary.files.map((f) => f.records));
  return summary;
}

/** The local path of a blob: the same name, without `.gz` since the file is written decompressed. */
function localName(blobName: string): string {
  return blobName.replace(/\.gz$/, '');
}

/**
 * The local file of each blob, distinct for distinct blobs: the blob's name without `.gz`, except for a gzip
 * blob `X.json[l].gz` whose sibling `X.json[l]` exists too (older exporters could write both under one
 * checkpoint name): it lands as `X.gunzipped.json[l]`. No export blob name holds `.gunzipped.` (see
 * isExportBlobName), so that name is free, and it depends only on the blobs of the day folder.
 */
function localNames(blobNames: readonly string[]): Map<string, string> {
  const names = new Set(blobNames);
  const out = new Map<string, string>();
  for (const name of blobNames) {
    const plain = localName(name);
    out.set(name, plain !== name && names.has(plain) ? plain.replace(/\.(jsonl?)$/, '.gunzipped.$1') : plain);
  }
  return out;
}

/** The manifests of the runs that wrote `blobs` (see readRunManifests), by run id. */
async function manifestsOf(
  container: ContainerClient,
  blobs: readonly ExportBlobInfo[],
): Promise<Map<string, RunManifest[]>> {
  const runIds = new Set<string>();
  let sinceTicks: bigint | undefined;
  for (const blob of blobs) {
    const metadata = readBlobMetadata(blob.metadata);
    if (typeof metadata === 'string') continue;
    runIds.add(metadata.runId);
    if (sinceTicks === undefined || metadata.windowFrom.ticks < sinceTicks)
      sinceTicks = metadata.windowFrom.ticks;
  }
  // A day's margin for a host clock behind the API's: the run cannot have started much before its window.
  return sinceTicks === undefined
    ? new Map()
    : readRunManifests(container, runIds, ticksToMs(sinceTicks) - 86_400_000);
}

/** Where the fix of a changed blob is described. */
const RESTORE_DOC = 'docs/deploy.md, "A blob fails verification"';
/** What a mismatch tells the operator to do. */
const RESTORE = `Restore the committed version (${RESTORE_DOC}) and run the command again; the file was not kept.`;

/**
 * Checks the bytes of an export blob against what the exporter recorded: the size listed, the Content-MD5 the
 * writer committed it with (when the blob has one), the size and SHA-256 that the manifest of the run that wrote
 * it lists (when one does), that it decodes, that every record is an incident of the blob's API, and the record
 * count in its metadata. The Content-MD5 is the listing's (the download asks for the listed ETag): Storage
 * answers a Get Blob with one only when the blob has one, but Azurite with one computed from the bytes sent, so
 * only the listing tells, on both, what the writer stored.
 */
function verifyExportBlob(
  blob: ExportBlobInfo,
  bytes: Buffer,
  manifests: ReadonlyMap<string, readonly RunManifest[]>,
  inflate: InflateOptions = {},
): { content: Buffer; records: number; api: DefenderApi; byContentMd5: boolean; byManifest: boolean } {
  if (bytes.length !== blob.size)
    throw new Error(`received ${bytes.length} bytes, but the blob has ${blob.size}`);
  const metadata = readBlobMetadata(blob.metadata);
  if (typeof metadata === 'string') {
    throw new Error(`it ${metadata}, so it was not written by this exporter and cannot be verified`);
  }
  const { contentMd5 } = blob;
  const md5 = createHash('md5').update(bytes).digest('base64');
  if (contentMd5 !== undefined && md5 !== contentMd5) {
    throw new Error(
      `its bytes do not match its Content-MD5 (received MD5 ${md5}, Content-MD5 ${contentMd5}): the transfer damaged ` +
        `them, or the blob was changed after the export committed it. Run the command again; if it fails again, restore the ` +
        `committed version (${RESTORE_DOC}). The file was not kept.`,
    );
  }
  const stored = { bytes: bytes.length, sha256: sha256(bytes) };
  let byManifest = false;
  for (const manifest of manifests.get(metadata.runId) ?? []) {
    if (manifest.problem !== undefined) {
      throw new Error(
        `run manifest '${manifest.name}' of the run that wrote it does not read (${manifest.problem}), so the blob cannot ` +
          'be checked against it. Restore the manifest from its soft-deleted version, or move it out of runs/ to check ' +
          'the blob by its Content-MD5 alone; the file was not kept.',
      );
    }
    const listed = manifest.blobs?.get(blob.name);
    if (!listed) continue;
    if (listed.bytes !== stored.bytes || listed.sha256 !== stored.sha256) {
      throw new Error(
        `its ${stored.bytes} bytes (SHA-256 ${stored.sha256}) are not what run manifest '${manifest.name}' lists for it ` +
          `(${listed.bytes} bytes, SHA-256 ${listed.sha256}): ` +
          (contentMd5 !== undefined
            ? 'its Content-MD5 matches them, so the blob was rewritten whole after the run committed it (an upload sets a new Content-MD5), or the manifest was altered. '
            : 'the blob was changed after the run committed it, or the manifest was altered. ') +
          RESTORE,
      );
    }
    byManifest = true;
  }
  const { api, recordCount: expected } = metadata;
  // One bound, from the stored size, for both steps: content that is itself gzip is not inflated past it either.
  const limit = (inflate.maxInflatedBytes ?? maxInflatedBytes)(bytes.length);
  const bounded = { maxInflatedBytes: () => limit };
  const content = inflateExportBlob(blob.name, bytes, bounded);
  const records = decodeExportBlob(localName(blob.name), content, bounded);
  if (records.length !== expected)
    throw new Error(`it holds ${records.length} records, but its metadata says ${expected}`);
  records.forEach((raw, index) => {
    const record = parseIncidentRecord(raw, api);
    if (typeof record === 'string') throw new Error(`record ${index} ${record}`);
  });
  return { content, records: records.length, api, byContentMd5: contentMd5 !== undefined, byManifest };
}

/** Blobs hold the versions of their window; a blob whose metadata does not read is kept (and then fails verification). */
function blobMeetsRange(blob: ExportBlobInfo, range: TimeRange): boolean {
  const metadata = readBlobMetadata(blob.metadata);
  return typeof metadata === 'string' || overlaps(range, metadata.windowFrom.ticks, metadata.windowTo.ticks);
}

async function fetchBlob(
  container: ContainerClient,
  blob: ExportBlobInfo,
  abortSignal: AbortSignal | undefined,
  onBytes: (loaded: number) => void,
): Promise<Buffer> {
  try {
    // Only the blob as listed (its ETag), so that the size and the Content-MD5 of the listing are the bytes'.
    const response = await container.getBlobClient(blob.name).download(0, undefined, {
      ...(abortSignal ? { abortSignal } : {}),
      ...(blob.etag ? { conditions: { ifMatch: blob.etag } } : {}),
      onProgress: (event) => onBytes(event.loadedBytes),
    });
    return await streamToBuffer(response.readableStreamBody);
  } catch (thrown) {
    if (abortSignal?.aborted) throw thrown;
    if (isWriteConflict(thrown))
      throw new Error('it was replaced while this command ran (its ETag moved): run the command again');
    throw describeStorageError(thrown, container.containerName, `download '${blob.name}'`);
  }
}

/** What earlier runs wrote; the last line of a blob wins, and a line cut by a crash is ignored. */
async function readState(outDir: string): Promise<Map<string, StateEntry>> {
  const entries = new Map<string, StateEntry>();
  let text: string;
  try {
    text = await readFile(join(outDir, DOWNLOAD_STATE_FILE), 'utf8');
  } catch {
    return entries;
  }
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as StateEntry;
      if (typeof entry.blob === 'string' && typeof entry.sha256 === 'string') entries.set(entry.blob, entry);
    } catch {
      // An empty or cut line.
    }
  }
  return entries;
}

/** The local file is the one that run wrote: same size and SHA-256. */
async function isIntact(outDir: string, file: string, entry: StateEntry): Promise<boolean> {
  try {
    const content = await readFile(join(outDir, file));
    return content.length === entry.bytes && sha256(content) === entry.sha256;
  } catch {
    return false;
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
