import { formatDuration } from '../export/duration';

/** How far a transfer has come. */
export interface TransferProgress {
  readonly files: number;
  readonly totalFiles: number;
  readonly bytes: number;
  readonly totalBytes: number;
}

/** Where the bar is drawn: stderr, or a test's recorder. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

const WIDTH = 24;

/** `[#######.........]  12/40 files  3.2/10.1 MiB  1.1 MiB/s  ETA 6s`. Pure. */
export function formatProgress(p: TransferProgress, elapsedInMs: number): string {
  const fraction =
    p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : p.totalFiles > 0 ? p.files / p.totalFiles : 1;
  const filled = Math.round(fraction * WIDTH);
  const rate = elapsedInMs > 0 ? (p.bytes * 1000) / elapsedInMs : 0;
  const remaining = Math.max(0, p.totalBytes - p.bytes);
  const eta = p.files >= p.totalFiles ? '0s' : rate > 0 ? formatDuration((remaining / rate) * 1000) : '?';
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}]  ${p.files}/${p.totalFiles} files  ` +
    `${formatBytes(p.bytes)}/${formatBytes(p.totalBytes)}  ${formatBytes(rate)}/s  ETA ${eta}`
  );
}

/** Bytes in B, KiB, MiB or GiB with one decimal. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * A progress bar on a stream: redrawn in place at most every 100 ms on a terminal; elsewhere (when asked for
 * with --progress) one line at most every second. The first and last states are always drawn.
 */
export class ProgressBar {
  private readonly startedAt: number;
  private lastDrawnAt = Number.NEGATIVE_INFINITY;
  private last: TransferProgress | undefined;

  constructor(
    private readonly stream: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  update(progress: TransferProgress): void {
    this.last = progress;
    const interval = this.stream.isTTY ? 100 : 1000;
    if (this.now() - this.lastDrawnAt >= interval) this.draw();
  }

  /** Draws the last state and ends the line. */
  finish(): void {
    if (this.last) this.draw();
    if (this.stream.isTTY && this.last) this.stream.write('\n');
  }

  private draw(): void {
    if (!this.last) return;
    this.lastDrawnAt = this.now();
    const line = formatProgress(this.last, this.lastDrawnAt - this.startedAt);
    this.stream.write(this.stream.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
  }
}
