import { sleep as defaultSleep, SlidingWindowRateLimiter, type RateWindow } from './rateLimiter';

/** How a request that held a permit ended: its HTTP status (0: no answer) and the wait the API asked for. */
export interface RequestOutcome {
  readonly status: number;
  /** `Retry-After` (or the body's hint) of a 429 or 503, in ms. */
  readonly retryAfterInMs?: number;
}

/** One request's right to be on the wire; released once with how it ended. */
export interface PacerPermit {
  release(outcome: RequestOutcome): void;
}

/** What the HTTP client asks of a pacer: a permit before every attempt. */
export interface RequestPacer {
  acquire(abortSignal?: AbortSignal): Promise<PacerPermit>;
}

export interface PacerStats {
  /** Permits given out (attempts sent). */
  requests: number;
  /** Answers 429 or 503 that slowed everyone down. */
  throttles: number;
  /** The concurrency allowed now, and the most it reached. */
  concurrency: number;
  peakConcurrency: number;
  /** The request rate learned from throttling (per minute), undefined before the first 429. */
  learnedRatePerMinute: number | undefined;
}

export interface AdaptivePacerOptions {
  /** Requests on the wire at the start. Default 2. */
  readonly initialConcurrency?: number;
  /** Never more than this many at once. Default 16. */
  readonly maxConcurrency?: number;
  /**
   * The span over which a throttled pacer measures the rate the API accepted, to stay under it afterwards. The
   * limits known for these APIs count per minute (docs/incidents-api.md#rate-limits). Default 60 s.
   */
  readonly rateWindowInMs?: number;
  /** Fixed limits that are never exceeded (the legacy API's 50/min and 1,500/h), as today's limiter keeps them. */
  readonly fixedLimits?: readonly RateWindow[];
  readonly now?: () => number;
  readonly sleep?: (ms: number, abortSignal?: AbortSignal) => Promise<void>;
}

/** Below this share of the measured rate the pacer settles after a 429, so that it is not at the edge. */
const SETTLE_SHARE = 0.95;
/** Requests accepted over the rate window before a 429 can teach a rate. */
const MIN_REQUESTS_TO_LEARN = 20;
/** How much the learned rate grows per rate window without a throttle: it probes for a higher limit slowly. */
const PROBE_GROWTH = 0.04;

/**
 * One pacer per incidents API and process: every request of every concurrent chain (backfill slices, the
 * per-incident alerts fallback, verify) takes a permit from it, so together they stay at what the API accepts.
 *
 * - **Adaptive concurrency (AIMD).** The number of requests on the wire grows by one per round trip's worth of
 *   successes and halves on a 429 or 503, once per episode (answers to requests sent before the halving do not
 *   halve it again).
 * - **Retry-After for everyone.** A 429 or 503 that names a wait stops every new request until it has passed,
 *   not only the retry of the one that was refused.
 * - **A learned rate.** Graph publishes no limit for incidents, so the rate is found at run time: on a 429 the
 *   pacer counts the requests the API accepted over the last rate window and spaces requests at just under
 *   that rate from then on, growing it slowly while no 429 comes, so that it settles at the limit instead of
 *   oscillating around it with a 429 every cycle.
 * - **Fixed limits** (the legacy API's documented 50/min and 1,500/h) are kept exactly as
 *   {@link SlidingWindowRateLimiter} keeps them.
 *
 * The logic is synchronous state plus the injected clock and sleep, so tests drive it in virtual time.
 */
export class AdaptivePacer implements RequestPacer {
  private limit: number;
  private readonly maxConcurrency: number;
  private readonly rateWindowInMs: number;
  private inFlight = 0;
  private readonly waiters: (() => void)[] = [];
  private pausedUntil = 0;
  private nextStartAt = 0;
  /** Requests per ms, learned from throttling. */
  private rate: number | undefined;
  private rateSetAt = 0;
  /** Start times of the requests the API accepted, over the last rate window. */
  private readonly accepted: number[] = [];
  private epoch = 0;
  private readonly fixed: SlidingWindowRateLimiter | undefined;
  private readonly now: () => number;
  private readonly sleep: (ms: number, abortSignal?: AbortSignal) => Promise<void>;
  readonly stats: PacerStats;

  constructor(o: AdaptivePacerOptions = {}) {
    this.maxConcurrency = Math.max(1, o.maxConcurrency ?? 16);
    this.limit = Math.min(this.maxConcurrency, Math.max(1, o.initialConcurrency ?? 2));
    this.rateWindowInMs = o.rateWindowInMs ?? 60_000;
    this.now = o.now ?? Date.now;
    this.sleep = o.sleep ?? defaultSleep;
    this.fixed = o.fixedLimits?.length
      ? new SlidingWindowRateLimiter(o.fixedLimits, { now: this.now, sleep: this.sleep })
      : undefined;
    this.stats = {
      requests: 0,
      throttles: 0,
      concurrency: Math.floor(this.limit),
      peakConcurrency: Math.floor(this.limit),
      learnedRatePerMinute: undefined,
    };
  }

  /** Waits for a free place on the wire, the end of any Retry-After pause and the learned spacing. */
  async acquire(abortSignal?: AbortSignal): Promise<PacerPermit> {
    for (;;) {
      abortSignal?.throwIfAborted();
      if (this.inFlight >= Math.floor(this.limit)) {
        await this.waitForPlace(abortSignal);
        continue;
      }
      const wait = this.delayInMs(this.now());
      if (wait > 0) {
        await this.sleep(wait, abortSignal);
        continue;
      }
      break;
    }
    this.inFlight++;
    if (this.fixed) {
      try {
        await this.fixed.acquire(abortSignal);
      } catch (thrown) {
        this.inFlight--;
        this.wakeOne();
        throw thrown;
      }
    }
    const startedAt = this.now();
    // Whole milliseconds: timers (and clocks that sleeps move) take integers.
    if (this.rate !== undefined) this.nextStartAt = startedAt + Math.ceil(1 / this.rate);
    this.stats.requests++;
    const epoch = this.epoch;
    let isReleased = false;
    return {
      release: (outcome) => {
        if (isReleased) return;
        isReleased = true;
        this.inFlight--;
        this.settle(outcome, startedAt, epoch);
        this.wakeOne();
      },
    };
  }

  /** How long a request that has a place on the wire waits at `now` (pause and spacing). */
  delayInMs(now: number): number {
    return Math.ceil(Math.max(this.pausedUntil - now, this.nextStartAt - now, 0));
  }

  private settle(outcome: RequestOutcome, startedAt: number, epoch: number): void {
    const now = this.now();
    const isThrottle = outcome.status === 429 || outcome.status === 503;
    if (!isThrottle) {
      if (outcome.status >= 200 && outcome.status < 500) {
        this.accepted.push(startedAt);
        this.limit = Math.min(this.maxConcurrency, this.limit + 1 / Math.floor(this.limit));
        if (this.rate !== undefined && now - this.rateSetAt >= this.rateWindowInMs) {
          this.rate *= 1 + PROBE_GROWTH;
          this.rateSetAt = now;
          this.stats.learnedRatePerMinute = this.rate * 60_000;
        }
      }
      this.trim(now);
      this.report();
      return;
    }
    this.stats.throttles++;
    if (outcome.retryAfterInMs !== undefined)
      this.pausedUntil = Math.max(this.pausedUntil, now + outcome.retryAfterInMs);
    if (epoch !== this.epoch) return; // this episode already slowed everyone down
    this.epoch++;
    this.limit = Math.max(1, Math.floor(this.limit / 2));
    this.trim(now);
    // A rate is learned only from a busy window: a 429 after a few requests (a blip, or another client of the
    // same app using the quota) says nothing about the rate the API accepts, and learning it would crawl.
    if (outcome.status === 429 && this.accepted.length >= MIN_REQUESTS_TO_LEARN) {
      // The API accepted this many in the last window and refused one more: stay just under that rate. Early on
      // (less than a window of history) the span seen so far stands for the window.
      const first = this.accepted[0];
      const span = first === undefined ? this.rateWindowInMs : Math.max(1, now - first);
      const measured = Math.max(1, this.accepted.length) / Math.min(span, this.rateWindowInMs);
      this.rate = measured * SETTLE_SHARE;
      this.rateSetAt = now;
      this.stats.learnedRatePerMinute = this.rate * 60_000;
    }
    this.report();
  }

  private trim(now: number): void {
    while (this.accepted.length > 0 && this.accepted[0]! <= now - this.rateWindowInMs) this.accepted.shift();
  }

  private report(): void {
    this.stats.concurrency = Math.floor(this.limit);
    this.stats.peakConcurrency = Math.max(this.stats.peakConcurrency, this.stats.concurrency);
  }

  private waitForPlace(abortSignal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.waiters.indexOf(wake);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(abortSignal?.reason as Error);
      };
      const wake = (): void => {
        abortSignal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiters.push(wake);
      abortSignal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private wakeOne(): void {
    // Every free place wakes one waiter (the limit may have grown by more than one meanwhile).
    let free = Math.floor(this.limit) - this.inFlight;
    while (free-- > 0 && this.waiters.length > 0) this.waiters.shift()!();
  }
}
