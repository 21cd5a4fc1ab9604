import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const PARTIAL = /^\..+\.[0-9a-f]{8}\.partial$/;

/**
 * Writes a file whole or not at all: the data goes to a hidden `.partial` file in the same folder, is flushed
 * to disk, then renamed over the target. An interrupted write never leaves a file that looks complete.
 * `write` receives the open file; it may write in several steps.
 */
export async function writeFileAtomically(
  target: string,
  write: (file: { write(text: string | Buffer): Promise<void> }) => Promise<void>,
): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`);
  const handle = await open(temp, 'wx');
  try {
    let position = 0;
    await write({
      write: async (data) => {
        const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
        for (let offset = 0; offset < bytes.length;) {
          const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, position);
          offset += bytesWritten;
          position += bytesWritten;
        }
      },
    });
    await handle.sync();
    await handle.close();
    await rename(temp, target);
  } catch (thrown) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw thrown;
  }
}

/** Removes the `.partial` files that a killed process left in a folder (only ours, by their name pattern). */
export async function removePartialFiles(folder: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => PARTIAL.test(n)).map((n) => rm(join(folder, n), { force: true })));
}
