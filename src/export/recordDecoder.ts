import { constants as bufferConstants } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { ExportError } from '../errors';

const MiB = 1024 * 1024;

/** The least an export blob may inflate to, whatever its stored size. */
export const MIN_INFLATED_BYTES = 64 * MiB;

/**
 * How many times its stored size an export blob may inflate to: JSON of incidents rarely gzips beyond ~50:1,
 * so 200:1 leaves a wide margin for legitimate blobs and stops a crafted one long before it exhausts memory.
 */
export const MAX_INFLATION_RATIO = 200;

/**
 * The most any export blob may inflate to: V8's longest string (`buffer.constants.MAX_STRING_LENGTH`, just under
 * 512 MiB on Node 20 and 22), since a blob's text is decoded as one string and anything longer could not be read
 * anyway; and never more than 1 GiB. The exporter cuts blobs at 32 MiB of encoded output (DEFAULT_MAX_BLOB_BYTES
 * in src/export/exportRun.ts), so a blob of this tool stays far below it.
 */
export const MAX_INFLATED_BYTES_CAP = Math.min(1024 * MiB, bufferConstants.MAX_STRING_LENGTH);

/** The default bound on what a gzip export blob of `storedBytes` may inflate to: max(64 MiB, 200 x), capped. */
export function maxInflatedBytes(storedBytes: number): number {
  return Math.min(MAX_INFLATED_BYTES_CAP, Math.max(MIN_INFLATED_BYTES, MAX_INFLATION_RATIO * storedBytes));
}

export interface InflateOptions {
  /** The bound on the inflated size of a blob of this many stored bytes; default {@link maxInflatedBytes}. */
  readonly maxInflatedBytes?: (storedBytes: number) => number;
}

/**
 * The bytes of an export blob, gunzipped when they are gzip (by magic bytes; concatenated members too). Inflation
 * stops at the bound ({@link maxInflatedBytes}), so a gzip bomb under an export name costs at most that much
 * memory, and fails with an error that names the blob.
 */
export function inflateExportBlob(name: string, bytes: Buffer, options: InflateOptions = {}): Buffer {
  const isGzip = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (!isGzip) return bytes;
  const limit = (options.maxInflatedBytes ?? maxInflatedBytes)(bytes.length);
  try {
    return gunzipSync(bytes, { maxOutputLength: limit });
  } catch (thrown) {
    if ((thrown as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ExportError(
        `Export blob '${name}' inflates beyond ${formatMiB(limit)} (${bytes.length} bytes stored); it is not an export ` +
          'of this tool: move it away (this tool cuts blobs at 32 MiB, and its JSON gzips far below 200:1).',
      );
    }
    throw new ExportError(`Export blob '${name}' is not valid gzip: ${(thrown as Error).message}`);
  }
}

function formatMiB(bytes: number): string {
  const mib = bytes / MiB;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

/**
 * Decodes the bytes of an export blob (gzip by name or magic bytes; json array or json lines) into incidents,
 * inflating within the bound of {@link inflateExportBlob}.
 */
export function decodeExportBlob(name: string, bytes: Buffer, options: InflateOptions = {}): unknown[] {
  const text = inflateExportBlob(name, bytes, options).toString('utf8');
  try {
    if (/\.jsonl(\.gz)?$/.test(name)) {
      return text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as unknown);
    }
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) throw new Error('not a JSON array');
    return value;
  } catch (thrown) {
    throw new ExportError(
      `Export blob '${name}' is not valid ${name.includes('.jsonl') ? 'JSON lines' : 'JSON'}: ${(thrown as Error).message}`,
    );
  }
}
