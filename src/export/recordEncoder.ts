import { gzipSync } from 'node:zlib';
import type { ExportCompression, ExportFormat } from './ports';
import type { BlobContentSettings } from './ports';

/**
 * Turns pages of incidents into the blocks of one export blob.
 *
 * `json` writes one JSON array (the seed's shape), `jsonl` one incident per line. With gzip every block is
 * its own gzip member: RFC 1952 allows a file of concatenated members and every gunzip reads it as one
 * stream, which lets a blob be built block by block without holding the whole run in memory.
 */
export class RecordEncoder {
  private count = 0;

  constructor(
    private readonly format: ExportFormat,
    private readonly compression: ExportCompression,
  ) {}

  /** Content type and encoding of the blobs this encoder produces. */
  get content(): BlobContentSettings {
    return {
      contentType:
        this.format === 'json' ? 'application/json; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      contentEncoding: this.compression === 'gzip' ? 'gzip' : undefined,
    };
  }

  /** Number of records encoded so far. */
  get records(): number {
    return this.count;
  }

  /** The block for these records (each serialised exactly as parsed from the API). */
  encode(records: readonly { raw: unknown }[]): Buffer {
    let text = '';
    for (const record of records) {
      const json = JSON.stringify(record.raw);
      if (this.format === 'jsonl') text += `${json}\n`;
      else text += `${this.count === 0 ? '[\n' : ',\n'}${json}`;
      this.count++;
    }
    return this.pack(text);
  }

  /** The closing block; none for jsonl, except that an empty gzip blob still needs one valid gzip member. */
  finish(): Buffer | undefined {
    if (this.format === 'jsonl')
      return this.count === 0 && this.compression === 'gzip' ? this.pack('') : undefined;
    return this.pack(this.count === 0 ? '[]\n' : '\n]\n');
  }

  private pack(text: string): Buffer {
    const bytes = Buffer.from(text, 'utf8');
    return this.compression === 'gzip' ? gzipSync(bytes) : bytes;
  }
}
