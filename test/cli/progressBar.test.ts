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

  it('redraws in place on a terminal at most every 100 ms, and writes lines at most every second elsewhere', () => {
    let now = 0;
    const tty: string[] = [];
    const bar = new ProgressBar({ isTTY: true, write: (t: string) => tty.push(t) }, () => now);
    const p = (files: number) => ({ files, totalFiles: 10, bytes: files * 10, totalBytes: 100 });
    bar.update(p(1));
    now = 50;
    bar.update(p(2));
    now = 150;
    bar.update(p(3));
    bar.finish();
    expect(tty.pop()).toBe('\n'); // the line ends once, when done
    expect(tty.map((l) => /(\d+)\/10 files/.exec(l)![1])).toEqual(['1', '3', '3']);
    expect(tty.every((l) => l.startsWith('\r') && l.endsWith('\x1b[K'))).toBe(true);

    now = 0;
    const lines: string[] = [];
    const plain = new ProgressBar({ write: (t: string) => lines.push(t) }, () => now);
    plain.update(p(1));
    now = 900;
    plain.update(p(2));
    now = 1000;
    plain.update(p(3));
    now = 1100;
    plain.update(p(10));
    plain.finish();
    expect(lines.map((l) => /(\d+)\/10 files/.exec(l)![1])).toEqual(['1', '3', '10']);
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  });
});
