/** A limit of `limit` requests in any window of `windowInMs`. */
export interface RateWindow {
  readonly limit: number;
  readonly windowInMs: number;
}

export interface RateLimiterOptions {
  readonly now?: () => number;
  readonly sleep?: (ms: number, abortSignal?: AbortSignal) => Promise<void>;
}

/**
 * Paces requests so that no window is ever exceeded, and spends the budget smoothly: requests are spaced by the
 * tightest long-run rate (for the legacy API's 50/min and 1,500/h, one every 2.4 s), so a backlog runs at the
 * allowed hourly rate without the burst-then-429 pattern, and the sliding windows stay a hard guarantee.
 */
export class SlidingWindowRateLimiter {
  private readonly history: number[] = [];
  private readonly spacingInMs: number;
  private readonly longest: number;
  private next = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number, abortSignal?: AbortSignal) => Promise<void>;

  constructor(
    private readonly windows: readonly RateWindow[],
    options: RateLimiterOptions = {},
  ) {
    this.spacingInMs = Math.max(0, ...windows.map((w) => w.windowInMs / w.limit));
    this.longest = Math.max(0, ...windows.map((w) => w.windowInMs));
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleep;
  }

  /** Waits until one more request is allowed, then counts it. */
  async acquire(abortSignal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = this.now();
      const wait = this.delayInMs(now);
      if (wait <= 0) {
        this.history.push(now);
        this.next = now + this.spacingInMs;
        while (this.history.length > 0 && this.history[0]! <= now - this.longest) this.history.shift();
        return;
      }
      await this.sleep(wait, abortSignal);
    }
  }

  /** How long until a request is allowed at `now`. */
  delayInMs(now: number): number {
    let wait = this.next - now;
    for (const w of this.windows) {
      const inWindow = this.history.filter((t) => t > now - w.windowInMs);
      if (inWindow.length >= w.limit)
        wait = Math.max(wait, inWindow[inWindow.length - w.limit]! + w.windowInMs - now);
    }
    return wait;
  }
}

/** A sleep that an abort signal cuts short (rejecting with the signal's reason). */
export function sleep(ms: number, abortSignal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (abortSignal?.aborted) {
      reject(abortSignal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      abortSignal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortSignal?.reason as Error);
    };
    abortSignal?.addEventListener('abort', onAbort, { once: true });
  });
}
