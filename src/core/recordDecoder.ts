import { gunzipSync } from 'node:zlib';
import { ExportError } from '../errors';

/** The bytes of an export blob, gunzipped when they are gzip (by magic bytes; concatenated members too). */
export function inflateExportBlob(bytes: Buffer): Buffer {
  const isGzip = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  return isGzip ? gunzipSync(bytes) : bytes;
}

/** Decodes the bytes of an export blob (gzip by name or magic bytes; json array or json lines) into incidents. */
export function decodeExportBlob(name: string, bytes: Buffer): unknown[] {
  const text = inflateExportBlob(bytes).toString('utf8');
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
