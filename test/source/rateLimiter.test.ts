import { SlidingWindowRateLimiter } from '../../src/source/rateLimiter';
import { ManualClock } from '../support/memory/manualClock';

/** A limiter on a manual clock whose sleeps move the clock (and are recorded). */
function limiter(windows: { limit: number; windowInMs: number }[]) {
  const clock = new ManualClock(1_000_000);
  const sleeps: number[] = [];
  const rateLimiter = new SlidingWindowRateLimiter(windows, {
    now: () => clock.now(),
    sleep: (ms) => {
      sleeps.push(ms);
      clock.advance(ms);
      return Promise.resolve();
    },
  });
  return { clock, sleeps, rateLimiter };
}

describe('SlidingWindowRateLimiter', () => {
  it('spaces requests by the tightest long-run rate (50/min and 1,500/h: one every 2.4 s)', async () => {
    const { clock, sleeps, rateLimiter } = limiter([
      { limit: 50, windowInMs: 60_000 },
      { limit: 1500, windowInMs: 3_600_000 },
    ]);
    const start = clock.now();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      await rateLimiter.acquire();
      times.push(clock.now() - start);
    }
    expect(times).toEqual([0, 2400, 4800, 7200, 9600]);
    expect(sleeps).toEqual([2400, 2400, 2400, 2400]);
  });

  it('never lets more than the limit into any window, however the calls are timed', async () => {
    const windows = [
      { limit: 3, windowInMs: 1_000 },
      { limit: 5, windowInMs: 10_000 },
    ];
    const { clock, rateLimiter } = limiter(windows);
    const granted: number[] = [];
    for (let i = 0; i < 40; i++) {
      if (i % 7 === 0) clock.advance(4_321);
      await rateLimiter.acquire();
      granted.push(clock.now());
    }
    for (const w of windows) {
      for (const t of granted) {
        expect(granted.filter((g) => g > t - w.windowInMs && g <= t).length).toBeLessThanOrEqual(w.limit);
      }
    }
  });

  it('reports the delay without counting a request, and lets a request through at once after a quiet spell', async () => {
    const { clock, sleeps, rateLimiter } = limiter([{ limit: 2, windowInMs: 10_000 }]);
    expect(rateLimiter.delayInMs(clock.now())).toBeLessThanOrEqual(0);
    await rateLimiter.acquire();
    expect(rateLimiter.delayInMs(clock.now())).toBe(5_000);
    expect(rateLimiter.delayInMs(clock.now())).toBe(5_000);
    clock.advance(60_000);
    await rateLimiter.acquire();
    expect(sleeps).toEqual([]);
  });

  it('gives up waiting when the abort signal fires', async () => {
    const clock = new ManualClock(0);
    const controller = new AbortController();
    const rateLimiter = new SlidingWindowRateLimiter([{ limit: 1, windowInMs: 60_000 }], {
      now: () => clock.now(),
      sleep: (_ms, signal) => {
        controller.abort(new Error('run ended'));
        return Promise.reject(signal?.reason as Error);
      },
    });
    await rateLimiter.acquire(controller.signal);
    await expect(rateLimiter.acquire(controller.signal)).rejects.toThrow('run ended');
  });
});
