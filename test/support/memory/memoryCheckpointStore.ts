import { ConcurrentRunError } from '../../../src/errors';
import type { CheckpointDocument, CheckpointStore, StoredCheckpoint } from '../../../src/export/ports';

/**
 * A {@link CheckpointStore} in memory, guarded by ETags exactly like `BlobCheckpointStore`: a write whose ETag
 * has moved, or a create-only write (no ETag) that finds a document, throws ConcurrentRunError. The document is
 * kept as text, so a reader never shares an object with a writer.
 */
export class MemoryCheckpointStore implements CheckpointStore {
  private stored: { text: string; etag: string } | undefined;
  private version = 0;

  read(): Promise<StoredCheckpoint | undefined> {
    const stored = this.stored;
    return Promise.resolve(
      stored ? { document: JSON.parse(stored.text) as CheckpointDocument, etag: stored.etag } : undefined,
    );
  }

  write(document: CheckpointDocument, etag: string | undefined): Promise<string> {
    if (etag === undefined ? this.stored !== undefined : this.stored?.etag !== etag) {
      return Promise.reject(
        new ConcurrentRunError(
          'Another export run moved the checkpoint first; this run stops without writing it.',
        ),
      );
    }
    this.stored = { text: JSON.stringify(document), etag: `"0x${(++this.version).toString(16)}"` };
    return Promise.resolve(this.stored.etag);
  }

  /** The checkpoint is deleted (an operator, or EXPORT_STATE_CONTAINER set apart). */
  delete(): void {
    this.stored = undefined;
  }

  /** The stored text, for the secret checks of tests. */
  get text(): string | undefined {
    return this.stored?.text;
  }
}
