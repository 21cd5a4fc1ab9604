import { createHash } from 'node:crypto';
import { parseTimestamp, type Timestamp } from './timestamp';

/**
 * Where the export stands: every incident version with a last update before `watermark` has been exported,
 * and so have the versions at exactly `watermark` whose ids are in `idsAtWatermark`.
 *
 * Why a timestamp plus a tie set: many incidents can share one `lastUpdateDateTime`, even across a page
 * boundary. Resuming with `gt watermark` would lose the rest of them (Elastic, XSOAR), resuming with `ge`
 * alone would export the boundary ones twice. `ge watermark` minus the tie set loses and repeats nothing
 * (the Splunk SOAR connector's cure, docs/incidents-api.md#ties-on-one-timestamp).
 */
export interface Checkpoint {
  /** An exact Defender timestamp string (up to 7 fractional digits). */
  readonly watermark: string;
  readonly idsAtWatermark: readonly string[];
}

/** An incident as the API sent it, with the two fields the export relies on validated. */
export interface IncidentRecord {
  readonly id: string;
  readonly lastUpdate: Timestamp;
  /** The API's incident object exactly as received. */
  readonly raw: unknown;
}

/** The tick value of a checkpoint's watermark; throws on a corrupt checkpoint. */
export function watermarkOf(checkpoint: Checkpoint): Timestamp {
  const ts = parseTimestamp(checkpoint.watermark);
  if (!ts) throw new Error(`checkpoint watermark '${checkpoint.watermark}' is not a timestamp`);
  return ts;
}

/** True when the record comes after the checkpoint, i.e. has not been exported yet. */
export function isAfter(
  record: { id: string; lastUpdate: Timestamp },
  checkpoint: Checkpoint,
  watermark = watermarkOf(checkpoint),
): boolean {
  if (record.lastUpdate.ticks > watermark.ticks) return true;
  return record.lastUpdate.ticks === watermark.ticks && !checkpoint.idsAtWatermark.includes(record.id);
}

/**
 * The checkpoint after `records`, which must be sorted by last update and all come after `from`.
 * The ids at the new watermark include those already at it when the watermark did not move.
 */
export function advance(
  from: Checkpoint,
  records: readonly { id: string; lastUpdate: Timestamp }[],
): Checkpoint {
  const last = records.at(-1);
  if (!last) return from;
  const fromTs = watermarkOf(from);
  const ids = new Set(last.lastUpdate.ticks === fromTs.ticks ? from.idsAtWatermark : []);
  for (const r of records) if (r.lastUpdate.ticks === last.lastUpdate.ticks) ids.add(r.id);
  return { watermark: last.lastUpdate.text, idsAtWatermark: [...ids].sort() };
}

/**
 * The instant before which every version has been exported: the later of the position and the end of the last
 * window read completely (`scannedUntil`; the position moves only with a blob, so a quiet hour leaves it behind).
 */
export function exportedUntil(checkpoint: Checkpoint, scannedUntil: string | undefined): bigint {
  const position = watermarkOf(checkpoint).ticks;
  const scanned = scannedUntil === undefined ? undefined : parseTimestamp(scannedUntil)?.ticks;
  return scanned !== undefined && scanned > position ? scanned : position;
}

/**
 * A short stable digest of a checkpoint, used in blob names. With `tenantId` (every blob named since names
 * were bound to their tenant) two tenants' chains that pass through the same position, as every chain does at
 * a quiet midnight, still name different blobs; without it, the names older versions gave.
 */
export function checkpointDigest(checkpoint: Checkpoint, tenantId?: string): string {
  const ts = watermarkOf(checkpoint);
  const tenant = tenantId === undefined ? '' : `${tenantId.trim().toLowerCase()}\n`;
  return createHash('sha256')
    .update(`${tenant}${ts.ticks}\n${[...checkpoint.idsAtWatermark].sort().join('\n')}`)
    .digest('hex')
    .slice(0, 12);
}

/** Encodes a checkpoint for blob metadata (ASCII only, compact). */
export function encodeCheckpoint(checkpoint: Checkpoint): string {
  return Buffer.from(JSON.stringify(checkpoint), 'utf8').toString('base64url');
}

/** Decodes {@link encodeCheckpoint}; undefined when the text is not a valid checkpoint. */
export function decodeCheckpoint(text: string | undefined): Checkpoint | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    return isCheckpoint(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Type guard for a checkpoint read from storage. */
export function isCheckpoint(value: unknown): value is Checkpoint {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.watermark === 'string' &&
    parseTimestamp(v.watermark) !== undefined &&
    Array.isArray(v.idsAtWatermark) &&
    v.idsAtWatermark.every((id) => typeof id === 'string')
  );
}
