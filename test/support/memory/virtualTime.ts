import { ManualClock } from './manualClock';

/**
 * Timers on a {@link ManualClock}: `sleep` resolves when {@link runUntilIdle} has moved the clock to its time, so
 * concurrent code (several workers sharing a pacer) runs in virtual time, in the order of its deadlines, without
 * a real timer. Microtasks are flushed between timers, so every awaiting chain gets to run at each instant.
 */
export class VirtualTime {
  readonly clock = new ManualClock(1_000_000);
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  private seq = 0;

  now = (): number => this.clock.now();

  sleep = (ms: number, abortSignal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (abortSignal?.aborted) {
        reject(abortSignal.reason as Error);
        return;
      }
      const timer = { at: this.clock.now() + Math.max(0, ms), seq: this.seq++, fire: resolve };
      this.timers.push(timer);
      abortSignal?.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((t) => t !== timer);
          reject(abortSignal.reason as Error);
        },
        { once: true },
      );
    });

  /** Runs timers in deadline order until none is left (or `limitMs` of virtual time has passed). */
  async runUntilIdle(limitMs = Number.POSITIVE_INFINITY): Promise<void> {
    const end = this.clock.now() + limitMs;
    for (;;) {
      await flush();
      if (this.timers.length === 0) return;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0]!;
      if (next.at > end) return;
      this.timers.shift();
      this.clock.set(next.at);
      next.fire();
    }
  }
}

/** Lets every pending promise chain run to its next await on a timer (setImmediate runs after all microtasks). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
