import { createHash } from 'node:crypto';
import type { DefenderApi, ExportCompression, ExportFormat } from './ports';
import {
  checkpointDigest,
  decodeCheckpoint,
  encodeCheckpoint,
  watermarkOf,
  type Checkpoint,
} from './checkpoint';
import { formatTicks, parseTimestamp, utcDatePath, type Timestamp } from './timestamp';

/** The blob that holds the export state. */
export const CHECKPOINT_BLOB = 'state/checkpoint.json';
export const EXPORT_PREFIX = 'incidents/';
export const MANIFEST_PREFIX = 'runs/';

/**
 * The name of the export blob that starts at `from`: `incidents/YYYY/MM/DD/HHMMSSfffffff-<digest>.<ext>`,
 * the digest of the checkpoint and the tenant (see {@link checkpointDigest}).
 *
 * It is derived only from the checkpoint the blob starts at, and written create-only. So at most one blob can
 * ever be committed for a checkpoint, and a run that restarts after a crash finds its predecessor's blob by
 * name, reads the checkpoint that blob ends at from its metadata, and moves on instead of writing the
 * same versions again. The date folder is the UTC day of the start (runs cut their windows at midnight), the
 * file name sorts by time within it, and nothing from the API appears in it unescaped.
 */
export function exportBlobName(
  from: Checkpoint,
  format: ExportFormat,
  compression: ExportCompression,
  tenantId?: string,
): string {
  const ext = (format === 'json' ? '.json' : '.jsonl') + (compression === 'gzip' ? '.gz' : '');
  return `${exportBlobStem(from, tenantId)}${ext}`;
}

/**
 * The name of the blob that starts at `from`, without its extension: the part that identifies the successor of a
 * checkpoint whatever the format and compression it was written in.
 */
export function exportBlobStem(from: Checkpoint, tenantId?: string): string {
  const ts = watermarkOf(from);
  const time = formatTicks(ts.ticks).slice(11, 27).replace(/[:.]/g, '');
  return `${EXPORT_PREFIX}${utcDatePath(ts.ticks)}/${time}-${checkpointDigest(from, tenantId)}`;
}

/** The format and compression an export blob name says (see {@link exportBlobName}). */
export function exportBlobFormat(name: string): { format: ExportFormat; compression: ExportCompression } {
  return {
    format: /\.jsonl(\.gz)?$/.test(name) ? 'jsonl' : 'json',
    compression: name.endsWith('.gz') ? 'gzip' : 'none',
  };
}

/** Run ids of backfill runs start with this; their blobs are not part of the live chain. */
export const BACKFILL_RUN_PREFIX = 'backfill-';

const EXPORT_BLOB_NAME = /^incidents\/\d{4}\/\d{2}\/\d{2}\/\d{13}-[0-9a-f]{12}\.jsonl?(\.gz)?$/;

/**
 * True for a name that {@link exportBlobName} can produce. The operators' CLI copies only such blobs to disk,
 * so a name planted in the container (`..`, odd characters) never becomes a path outside the output folder.
 */
export function isExportBlobName(name: string): boolean {
  return EXPORT_BLOB_NAME.test(name);
}

/**
 * A run id as blob names and metadata carry it: letters, digits and dashes only, at most 64 (an invocation id
 * or a UUID passes unchanged).
 */
export function safeRunId(runId: string): string {
  return runId.replace(/[^A-Za-z0-9-]/g, '').slice(0, 64);
}

/** The manifest of one run: `runs/YYYY/MM/DD/HHMMSSmmm-<runId>.json`. */
export function manifestBlobName(startedAtMs: number, runId: string): string {
  const iso = new Date(startedAtMs).toISOString();
  const safeId = safeRunId(runId) || 'run';
  return `${MANIFEST_PREFIX}${iso.slice(0, 10).replace(/-/g, '/')}/${iso.slice(11, 23).replace(/[:.]/g, '')}-${safeId}.json`;
}

const QUARANTINE_PREFIX = 'quarantine/';

/**
 * Where an item that cannot be placed in time (no id, no valid last update) is kept:
 * `quarantine/YYYY/MM/DD/<content digest>.json`, named by its content so a rerun writes it once.
 */
export function quarantineBlobName(windowStart: Checkpoint, raw: unknown): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(raw) ?? 'undefined')
    .digest('hex')
    .slice(0, 24);
  return `${QUARANTINE_PREFIX}${utcDatePath(watermarkOf(windowStart).ticks)}/${digest}.json`;
}

/**
 * The metadata of an export blob: what a reader needs without reading the blob, and the checkpoint the blob ends
 * at, so that a run that crashed after the commit can adopt the blob instead of exporting it again. Written once,
 * with the commit ({@link encodeBlobMetadata}); read back with {@link readBlobMetadata}.
 */
export interface ExportBlobMetadata {
  /** The API the records come from, and so their shape. */
  readonly api: DefenderApi;
  /** The tenant the blob was exported for; absent on blobs of versions before blobs were bound to a tenant. */
  readonly tenantId?: string;
  readonly format: ExportFormat;
  readonly compression: ExportCompression;
  /** Incident versions in the blob; 0 for the empty blobs that carry the position over a quiet stretch. */
  readonly recordCount: number;
  /** Of them, versions the re-read found indexed late (behind the position). */
  readonly lateCount: number;
  /** The versions run from the checkpoint at `windowFrom` to the one at `windowTo` (the end checkpoint's). */
  readonly windowFrom: Timestamp;
  readonly windowTo: Timestamp;
  /** When the window was read up to (the run's window end); absent on blobs of older versions. */
  readonly windowUntil?: Timestamp;
  /** The run that wrote the blob (backfill runs start with {@link BACKFILL_RUN_PREFIX}). */
  readonly runId: string;
  /** The checkpoint right after the blob's last version: where the next blob starts. */
  readonly endCheckpoint: Checkpoint;
}

/** The one version of {@link ExportBlobMetadata} so far. */
const SCHEMA_VERSION = '1';

/**
 * The blob metadata for `m`. Names are lower case (Azure keeps metadata names case-insensitively) and values
 * strings; the run id is reduced to the characters that are safe in a header.
 */
export function encodeBlobMetadata(m: ExportBlobMetadata): Record<string, string> {
  return {
    schemaversion: SCHEMA_VERSION,
    api: m.api,
    ...(m.tenantId !== undefined ? { tenantid: m.tenantId } : {}),
    format: m.format,
    compression: m.compression,
    recordcount: String(m.recordCount),
    ...(m.lateCount > 0 ? { latecount: String(m.lateCount) } : {}),
    windowfrom: m.windowFrom.text,
    windowto: m.windowTo.text,
    ...(m.windowUntil !== undefined ? { windowuntil: m.windowUntil.text } : {}),
    runid: safeRunId(m.runId),
    endcheckpoint: encodeCheckpoint(m.endCheckpoint),
  };
}

/**
 * Reads the metadata of an export blob (as listed or fetched): the typed metadata, or why it is not the metadata
 * of an export blob (a sentence part: "has no valid 'endcheckpoint' metadata"). Every field that
 * {@link encodeBlobMetadata} always writes must be present and valid, and the optional ones valid when present.
 */
export function readBlobMetadata(record: Readonly<Record<string, string>>): ExportBlobMetadata | string {
  const invalid = (name: string): string => `has no valid '${name}' metadata`;
  if (record.schemaversion !== SCHEMA_VERSION) return invalid('schemaversion');
  const { api, format, compression } = record;
  if (api !== 'graph' && api !== 'legacy') return invalid('api');
  if (format !== 'json' && format !== 'jsonl') return invalid('format');
  if (compression !== 'none' && compression !== 'gzip') return invalid('compression');
  const recordCount = count(record.recordcount);
  if (recordCount === undefined) return invalid('recordcount');
  const lateCount = record.latecount === undefined ? 0 : count(record.latecount);
  if (lateCount === undefined) return invalid('latecount');
  const windowFrom = parseTimestamp(record.windowfrom);
  if (!windowFrom) return invalid('windowfrom');
  const windowTo = parseTimestamp(record.windowto);
  if (!windowTo) return invalid('windowto');
  const windowUntil = record.windowuntil === undefined ? undefined : parseTimestamp(record.windowuntil);
  if (record.windowuntil !== undefined && !windowUntil) return invalid('windowuntil');
  if (record.runid === undefined) return invalid('runid');
  const endCheckpoint = decodeCheckpoint(record.endcheckpoint);
  if (!endCheckpoint) return invalid('endcheckpoint');
  if (record.tenantid !== undefined && record.tenantid.trim() === '') return invalid('tenantid');
  return {
    api,
    ...(record.tenantid !== undefined ? { tenantId: record.tenantid } : {}),
    format,
    compression,
    recordCount,
    lateCount,
    windowFrom,
    windowTo,
    ...(windowUntil ? { windowUntil } : {}),
    runId: record.runid,
    endCheckpoint,
  };
}

/** A non-negative integer written in decimal, or undefined. */
function count(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}
