import type { ContainerClient } from '@azure/storage-blob';
import { describeStorageError, streamToBuffer } from '../sink/blobExportStore';
import { EXPORT_PREFIX } from '../export/blobLayout';
import { decodeExportBlob, type InflateOptions } from '../export/recordDecoder';

export {
  decodeExportBlob,
  inflateExportBlob,
  MAX_INFLATED_BYTES_CAP,
  MAX_INFLATION_RATIO,
  maxInflatedBytes,
  MIN_INFLATED_BYTES,
  type InflateOptions,
} from '../export/recordDecoder';

/** An export blob as listed: name, size, ETag, Content-MD5 and the metadata the exporter wrote. */
export interface ExportBlobInfo {
  readonly name: string;
  readonly size: number;
  readonly etag: string;
  /** The Content-MD5 Storage keeps for the blob (base64); undefined when it has none. */
  readonly contentMd5?: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** UTC days from `from` to `to` inclusive, as `YYYY/MM/DD`. */
function daysBetween(fromMs: number, toMs: number): string[] {
  const days: string[] = [];
  const start = Date.UTC(
    new Date(fromMs).getUTCFullYear(),
    new Date(fromMs).getUTCMonth(),
    new Date(fromMs).getUTCDate(),
  );
  for (let t = start; t <= toMs; t += 86_400_000)
    days.push(new Date(t).toISOString().slice(0, 10).replace(/-/g, '/'));
  return days;
}

/**
 * Lists the export blobs of the UTC days from `fromMs` to `toMs`, by their date prefixes (no full-container
 * scan), in name order, which is time order.
 */
export function listExportBlobs(
  container: ContainerClient,
  fromMs: number,
  toMs: number,
): Promise<ExportBlobInfo[]> {
  return listBlobsByDay(container, EXPORT_PREFIX, fromMs, toMs);
}

/**
 * Lists the blobs under `<prefix>YYYY/MM/DD/` for the UTC days from `fromMs` to `toMs` (export blobs, run
 * manifests), one date prefix at a time, in name order.
 */
export async function listBlobsByDay(
  container: ContainerClient,
  prefix: string,
  fromMs: number,
  toMs: number,
): Promise<ExportBlobInfo[]> {
  const out: ExportBlobInfo[] = [];
  for (const day of daysBetween(fromMs, toMs)) {
    try {
      for await (const blob of container.listBlobsFlat({
        prefix: `${prefix}${day}/`,
        includeMetadata: true,
      })) {
        const md5 = blob.properties.contentMD5;
        out.push({
          name: blob.name,
          size: blob.properties.contentLength ?? 0,
          etag: blob.properties.etag ?? '',
          ...(md5 && md5.length > 0 ? { contentMd5: Buffer.from(md5).toString('base64') } : {}),
          metadata: blob.metadata ?? {},
        });
      }
    } catch (thrown) {
      throw describeStorageError(thrown, container.containerName, `list '${prefix}${day}/'`);
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Downloads and decodes one export blob (inflated within {@link maxInflatedBytes}). */
export async function readExportBlob(
  container: ContainerClient,
  name: string,
  options: InflateOptions = {},
): Promise<unknown[]> {
  let bytes: Buffer;
  try {
    const response = await container.getBlockBlobClient(name).download();
    bytes = await streamToBuffer(response.readableStreamBody);
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `download '${name}'`);
  }
  return decodeExportBlob(name, bytes, options);
}
