import { readAhead } from '../../src/export/readAhead';

describe('readAhead', () => {
  it('asks for the next item while the consumer still works on the current one', async () => {
    const events: string[] = [];
    async function* source(): AsyncGenerator<number> {
      for (let i = 0; i < 3; i++) {
        events.push(`fetch ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield i;
      }
    }
    const seen: number[] = [];
    for await (const item of readAhead(source())) {
      events.push(`use ${item}`);
      seen.push(item);
    }
    expect(seen).toEqual([0, 1, 2]);
    // Item 1 was requested before item 0 was used.
    expect(events.indexOf('fetch 1')).toBeLessThan(events.indexOf('use 0'));
  });

  it('passes on a failure of the source, in order', async () => {
    async function* source(): AsyncGenerator<number> {
      yield 1;
      await Promise.resolve();
      throw new Error('page 2 failed');
    }
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const item of readAhead(source())) seen.push(item);
      })(),
    ).rejects.toThrow('page 2 failed');
    expect(seen).toEqual([1]);
  });

  it('closes the source after an early stop, without an unhandled rejection from the request in flight', async () => {
    let closed = false;
    async function* source(): AsyncGenerator<number> {
      try {
        yield 1;
        await new Promise((resolve) => setTimeout(resolve, 5));
        throw new Error('nobody wants this');
      } finally {
        closed = true;
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      for await (const item of readAhead(source())) {
        expect(item).toBe(1);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(closed).toBe(true);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
