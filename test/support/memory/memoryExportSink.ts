import { ConcurrentRunError } from '../../../src/errors';
import { ContentHasher } from '../../../src/export/contentHash';
import type {
  BlobContentSettings,
  CommittedBlob,
  ExportBlobWriter,
  ExportSink,
} from '../../../src/export/ports';
import { decodeExportBlob } from '../../../src/export/recordDecoder';

/** A committed blob of a {@link MemoryExportSink}. */
export interface MemoryBlob {
  readonly body: Buffer;
  readonly metadata: Record<string, string>;
  readonly contentType: string;
  readonly contentEncoding: string | undefined;
  /** The Content-MD5 (base64) the writer committed with; none for JSON documents, as on Storage for blocks. */
  readonly contentMd5?: string;
}

/**
 * An {@link ExportSink} in memory with the Blob sink's semantics: blocks staged per writer and invisible until
 * the commit, create-only commits and JSON documents, listings in name order, records read back through the
 * same decoder as from Storage.
 */
export class MemoryExportSink implements ExportSink {
  readonly blobs = new Map<string, MemoryBlob>();

  committedMetadata(name: string): Promise<Record<string, string> | undefined> {
    const blob = this.blobs.get(name);
    return Promise.resolve(blob ? { ...blob.metadata } : undefined);
  }

  async *listCommitted(prefix: string): AsyncIterable<CommittedBlob> {
    for (const name of this.names(prefix)) {
      const blob = this.blobs.get(name);
      // A blob deleted while the listing runs is no longer listed, as a paged listing would skip it.
      if (blob) yield { name, metadata: { ...blob.metadata } };
      await Promise.resolve();
    }
  }

  readRecords(name: string): Promise<unknown[]> {
    const blob = this.blobs.get(name);
    if (!blob) return Promise.reject(new Error(`No blob '${name}'.`));
    return Promise.resolve(decodeExportBlob(name, blob.body));
  }

  openBlob(name: string, content: BlobContentSettings): ExportBlobWriter {
    const blocks: Buffer[] = [];
    const hasher = new ContentHasher();
    return {
      stage: (block) => {
        // The place is taken when the stage starts, as the Blob writer's block ids (and hashes) are.
        blocks.push(Buffer.from(block));
        hasher.update(block);
        return Promise.resolve();
      },
      commit: (metadata) => {
        if (this.blobs.has(name)) {
          return Promise.reject(
            new ConcurrentRunError(
              `Export blob '${name}' was committed by another run; this run stops without writing it.`,
            ),
          );
        }
        const committed = hasher.result();
        this.blobs.set(name, {
          body: Buffer.concat(blocks),
          metadata: { ...metadata },
          contentType: content.contentType,
          contentEncoding: content.contentEncoding,
          contentMd5: committed.contentMd5,
        });
        return Promise.resolve(committed);
      },
    };
  }

  writeJson(name: string, value: unknown): Promise<boolean> {
    if (this.blobs.has(name)) return Promise.resolve(false);
    this.blobs.set(name, {
      body: Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8'),
      metadata: {},
      contentType: 'application/json; charset=utf-8',
      contentEncoding: undefined,
    });
    return Promise.resolve(true);
  }

  /** The committed names starting with `prefix`, in name order (as Storage lists them). */
  names(prefix = ''): string[] {
    return [...this.blobs.keys()].filter((name) => name.startsWith(prefix)).sort(byCodeUnit);
  }
}

/** Storage lists blob names in UTF-8 byte order; for the names this tool writes (ASCII) that is code-unit order. */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
