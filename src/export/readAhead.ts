/**
 * Iterates `source` one item ahead: the next item is requested as soon as the current one is handed out, so
 * fetching page N+1 overlaps whatever the consumer does with page N (encoding, compressing, uploading).
 * When the consumer stops early, the request in flight is left to end on its own (the caller aborts it with
 * the signal it gave the source) and its failure is ignored: nobody wants its result. The source is closed
 * once that request is over.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined = iterator.next();
  try {
    for (;;) {
      const result: IteratorResult<T> = await pending;
      pending = undefined;
      if (result.done) return;
      pending = iterator.next();
      yield result.value;
    }
  } finally {
    if (pending) {
      const closing = pending.then(
        () => iterator.return?.(),
        () => undefined,
      );
      closing.catch(() => undefined);
    }
  }
}
