import { formatBytes, formatProgress, ProgressBar } from '../../src/cli/progressBar';

describe('progress bar', () => {
  it('shows count, bytes, rate and ETA', () => {
    expect(formatProgress({ files: 3, totalFiles: 12, bytes: 1_048_576, totalBytes: 4_194_304 }, 2000)).toBe(
      '[######..................]  3/12 files  1.0 MiB/4.0 MiB  512.0 KiB/s  ETA 6s',
    );
    expect(formatProgress({ files: 0, totalFiles: 2, bytes: 0, totalBytes: 100 }, 0)).toMatch(
      /0 B\/s {2}ETA \?$/,
    );
    expect(formatProgress({ files: 2, totalFiles: 2, bytes: 100, totalBytes: 100 }, 10)).toMatch(
      /^\[#{24}\].*ETA 0s$/,
    );
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });

  /** Drives a bar through (time, files done) steps and returns what it wrote. */
  function drive(isTTY: boolean, steps: readonly [number, number][]): string[] {
    let now = 0;
    const written: string[] = [];
    const bar = new ProgressBar({ isTTY, write: (t: string) => written.push(t) }, () => now);
    for (const [at, files] of steps) {
      now = at;
      bar.update({ files, totalFiles: 10, bytes: files * 10, totalBytes: 100 });
    }
    bar.finish();
    return written;
  }
  const counts = (written: string[]): string[] => written.map((l) => /(\d+)\/10 files/.exec(l)![1]!);

  it('redraws in place on a terminal at most every 100 ms, and writes lines at most every second elsewhere', () => {
    const tty = drive(true, [
      [0, 1],
      [50, 2],
      [150, 3],
    ]);
    expect(tty.pop()).toBe('\n'); // the line ends once, when done
    expect(counts(tty)).toEqual(['1', '3', '3']);
    expect(tty.every((l) => l.startsWith('\r') && l.endsWith('\x1b[K'))).toBe(true);

    const lines = drive(false, [
      [0, 1],
      [900, 2],
      [1000, 3],
      [1100, 10],
    ]);
    expect(counts(lines)).toEqual(['1', '3', '10']);
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });
});
