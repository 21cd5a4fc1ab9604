import { AdaptivePacer, type AdaptivePacerOptions } from '../../src/source/adaptivePacer';
import { VirtualTime } from '../support/memory/virtualTime';

/** An API that accepts `limit` requests in any `windowInMs` (sliding), answers after `latencyInMs`. */
class LimitedApi {
  readonly accepted: number[] = [];
  readonly throttledAt: number[] = [];
  constructor(
    private readonly time: VirtualTime,
    private readonly limit: number,
    private readonly windowInMs: number,
    private readonly latencyInMs: number,
  ) {}

  async call(): Promise<{ status: number; retryAfterInMs?: number }> {
    const now = this.time.now();
    const inWindow = this.accepted.filter((t) => t > now - this.windowInMs);
    const outcome =
      inWindow.length < this.limit
        ? { status: 200 }
        : {
            status: 429,
            // Whole seconds, as Retry-After carries them.
            retryAfterInMs:
              Math.ceil((inWindow[inWindow.length - this.limit]! + this.windowInMs - now) / 1000) * 1000,
          };
    if (outcome.status === 200) this.accepted.push(now);
    else this.throttledAt.push(now);
    await this.time.sleep(this.latencyInMs);
    return outcome;
  }
}

/** `workers` loops that each send `requests` through the pacer, retrying a 429 after its Retry-After. */
async function drive(
  time: VirtualTime,
  pacer: AdaptivePacer,
  api: LimitedApi,
  workers: number,
  requests: number,
  onFlight?: (n: number) => void,
): Promise<void> {
  let inFlight = 0;
  let left = requests;
  const worker = async (): Promise<void> => {
    while (left > 0) {
      left--;
      for (;;) {
        const permit = await pacer.acquire();
        onFlight?.(++inFlight);
        const outcome = await api.call();
        inFlight--;
        permit.release(outcome);
        if (outcome.status === 200) break;
        await time.sleep(outcome.retryAfterInMs ?? 1000);
      }
    }
  };
  const all = Promise.all(Array.from({ length: workers }, worker));
  await time.runUntilIdle();
  await all;
}

function pacerOn(time: VirtualTime, o: AdaptivePacerOptions = {}): AdaptivePacer {
  return new AdaptivePacer({ now: time.now, sleep: time.sleep, ...o });
}

describe('AdaptivePacer', () => {
  it('grows the requests on the wire while they succeed, never past its maximum', async () => {
    const time = new VirtualTime();
    const pacer = pacerOn(time, { initialConcurrency: 1, maxConcurrency: 6 });
    const api = new LimitedApi(time, 1_000_000, 60_000, 1_000);
    let peak = 0;
    await drive(time, pacer, api, 10, 200, (n) => (peak = Math.max(peak, n)));
    expect(pacer.stats.concurrency).toBe(6);
    expect(peak).toBe(6);
    expect(api.throttledAt).toEqual([]);
  });

  it('halves once for the 429s of one episode, however many requests were refused together', async () => {
    const time = new VirtualTime();
    const pacer = pacerOn(time, { initialConcurrency: 8, maxConcurrency: 8 });
    const permits = await Promise.all(Array.from({ length: 8 }, () => pacer.acquire()));
    for (const permit of permits) permit.release({ status: 429 });
    expect(pacer.stats.concurrency).toBe(4);
    expect(pacer.stats.throttles).toBe(8);
    // A 503 after the halving, of a request sent after it, halves again.
    const later = await pacer.acquire();
    later.release({ status: 503 });
    expect(pacer.stats.concurrency).toBe(2);
  });

  it("holds every new request until a Retry-After has passed, not only the refused one's retry", async () => {
    const time = new VirtualTime();
    const pacer = pacerOn(time, { initialConcurrency: 4 });
    const start = time.now();
    (await pacer.acquire()).release({ status: 429, retryAfterInMs: 5_000 });
    const startedAt: number[] = [];
    const others = Promise.all(
      Array.from({ length: 3 }, async () => {
        const permit = await pacer.acquire();
        startedAt.push(time.now() - start);
        permit.release({ status: 200 });
      }),
    );
    await time.runUntilIdle();
    await others;
    expect(startedAt.length).toBe(3);
    for (const t of startedAt) expect(t).toBeGreaterThanOrEqual(5_000);
  });

  it.each([
    [300, 5],
    [120, 2],
  ])(
    'settles at %d requests/min (1 s a request): at least 85%% of the limit, a handful of 429s after the first minutes',
    async (perMinute) => {
      const time = new VirtualTime();
      const pacer = pacerOn(time);
      const api = new LimitedApi(time, perMinute, 60_000, 1_000);
      const start = time.now();
      await drive(time, pacer, api, 16, perMinute * 20);
      const minutes = (time.now() - start) / 60_000;
      expect(api.accepted.length / minutes / perMinute).toBeGreaterThanOrEqual(0.85);
      const settledAt = start + 5 * 60_000;
      expect(api.throttledAt.filter((t) => t >= settledAt).length).toBeLessThanOrEqual(8);
    },
  );

  it('keeps fixed limits (the legacy 50/min) exactly: no window ever holds more', async () => {
    const time = new VirtualTime();
    const pacer = pacerOn(time, { fixedLimits: [{ limit: 5, windowInMs: 10_000 }] });
    const api = new LimitedApi(time, 1_000_000, 60_000, 100);
    await drive(time, pacer, api, 8, 40);
    for (const t of api.accepted) {
      expect(api.accepted.filter((u) => u >= t && u < t + 10_000).length).toBeLessThanOrEqual(5);
    }
    expect(api.throttledAt).toEqual([]);
  });

  it('gives up a wait when its caller aborts, and the place goes to the next one', async () => {
    const time = new VirtualTime();
    const pacer = pacerOn(time, { initialConcurrency: 1, maxConcurrency: 1 });
    const first = await pacer.acquire();
    const controller = new AbortController();
    const aborted = pacer.acquire(controller.signal);
    const waiting = pacer.acquire();
    controller.abort(new Error('stopped'));
    await expect(aborted).rejects.toThrow('stopped');
    first.release({ status: 200 });
    const second = await waiting;
    second.release({ status: 200 });
    expect(pacer.stats.requests).toBe(2);
  });
});
