import { createHash } from 'node:crypto';
import type { ExportCompression, ExportFormat } from './ports';
import { checkpointDigest, watermarkOf, type Checkpoint } from './checkpoint';
import { formatTicks, utcDatePath } from './timestamp';

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

/** The manifest of one run: `runs/YYYY/MM/DD/HHMMSSmmm-<runId>.json`. */
export function manifestBlobName(startedAtMs: number, runId: string): string {
  const iso = new Date(startedAtMs).toISOString();
  const safeId = runId.replace(/[^A-Za-z0-9-]/g, '').slice(0, 64) || 'run';
  return `${MANIFEST_PREFIX}${iso.slice(0, 10).replace(/-/g, '/')}/${iso.slice(11, 23).replace(/[:.]/g, '')}-${safeId}.json`;
}

export const QUARANTINE_PREFIX = 'quarantine/';

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
