import { createHash, type Hash } from 'node:crypto';
import type { CommittedContent } from './ports';

/**
 * The MD5 and SHA-256 of a blob built from blocks, fed block by block in the order of the block list, so that a
 * writer keeps no block after its upload. A hash cannot be fed out of order: the writers feed it when a stage is
 * called (that call fixes the block's place in the list), never when the upload completes, since uploads of
 * several blocks overlap and may finish in any order.
 */
export class ContentHasher {
  private readonly md5: Hash = createHash('md5');
  private readonly sha256: Hash = createHash('sha256');
  private bytes = 0;
  private digest: CommittedContent | undefined;

  /** Adds the next block of the blob. */
  update(block: Uint8Array): void {
    if (this.digest) throw new Error('ContentHasher: a block was added after the digest was taken.');
    this.md5.update(block);
    this.sha256.update(block);
    this.bytes += block.length;
  }

  /** The hashes of every block added, in order; the same object on every call. */
  result(): CommittedContent {
    this.digest ??= {
      bytes: this.bytes,
      contentMd5: this.md5.digest('base64'),
      sha256: this.sha256.digest('hex'),
    };
    return this.digest;
  }
}
