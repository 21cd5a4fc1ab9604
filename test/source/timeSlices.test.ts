import { watermarkOf, type Checkpoint, type IncidentRecord } from '../../src/export/checkpoint';
import type { IncidentPage } from '../../src/export/ports';
import { formatTicks, TICKS_PER_MS, type Timestamp } from '../../src/export/timestamp';
import { TimeSlicer, type SlicePage, type SliceReader } from '../../src/source/timeSlices';

const T0 = BigInt(Date.UTC(2026, 10, 1)) * TICKS_PER_MS;
const HOUR = 3_600_000n * TICKS_PER_MS;

function at(ticks: bigint): Timestamp {
  return { text: formatTicks(ticks), ticks };
}

/** A deterministic shuffle (the API's order is none we may rely on). */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A reader over fixed rows that answers each range with the first `pageSize` matches in a shuffled order. */
function reader(rows: IncidentRecord[], pageSize: number, seed: number) {
  const requests: [bigint, bigint][] = [];
  /** Requests whose page came back full: asked again, narrower. */
  const full: [bigint, bigint][] = [];
  const dense: [string, string][] = [];
  const r: SliceReader = {
    fetch(from, to) {
      requests.push([from.ticks, to.ticks]);
      const matching = rows.filter((x) => x.lastUpdate.ticks >= from.ticks && x.lastUpdate.ticks < to.ticks);
      const page = shuffled(matching, seed + requests.length).slice(0, pageSize);
      if (page.length >= pageSize) full.push([from.ticks, to.ticks]);
      const answer: SlicePage = { records: page, rejected: [], nextLink: undefined, returned: page.length };
      return Promise.resolve(answer);
    },
    isFull: (page) => page.returned >= pageSize,
    rowsPerPage: () => pageSize,
    async *readDense(from: Checkpoint, to: Timestamp): AsyncIterable<IncidentPage> {
      dense.push([from.watermark, to.text]);
      await Promise.resolve();
      const start = watermarkOf(from).ticks;
      yield {
        records: rows.filter(
          (x) =>
            x.lastUpdate.ticks >= start &&
            x.lastUpdate.ticks < to.ticks &&
            !(x.lastUpdate.ticks === start && from.idsAtWatermark.includes(x.id)),
        ),
        resumeFrom: undefined,
      };
    },
  };
  return { reader: r, requests, full, dense };
}

async function listAll(slicer: TimeSlicer, r: SliceReader, from: bigint, until: bigint) {
  const ids: string[] = [];
  const positions: bigint[] = [];
  for await (const page of slicer.listPages(
    { from: { watermark: formatTicks(from), idsAtWatermark: [] }, until: formatTicks(until) },
    r,
  )) {
    ids.push(...page.records.map((x) => x.id));
    if (page.resumeFrom) positions.push(watermarkOf(page.resumeFrom).ticks);
  }
  return { ids, positions };
}

function spread(count: number, span: bigint, seed: number): IncidentRecord[] {
  let s = seed;
  return Array.from({ length: count }, (_, i) => {
    s = (s * 48271) % 2147483647;
    const t = T0 + (BigInt(s) * span) / 2147483647n;
    return { id: `i${i}`, lastUpdate: at(t), raw: {} };
  });
}

describe('TimeSlicer', () => {
  it.each([1, 2, 3])(
    'lists every row once in any page order, positions only forward (seed %i)',
    async (seed) => {
      const rows = spread(700, 30n * HOUR, seed);
      const { reader: r, requests } = reader(rows, 50, seed);
      const { ids, positions } = await listAll(
        new TimeSlicer({ minSpanInMs: 1, initialSpanInMs: 86_400_000 }),
        r,
        T0,
        T0 + 30n * HOUR,
      );
      expect([...ids].sort()).toEqual(rows.map((x) => x.id).sort());
      expect(new Set(ids).size).toBe(ids.length);
      for (let i = 1; i < positions.length; i++) expect(positions[i]!).toBeGreaterThan(positions[i - 1]!);
      expect(positions.at(-1)).toBe(T0 + 30n * HOUR);
      // Each accepted slice holds under a page; narrowing wastes some requests, never a runaway number.
      expect(requests.length).toBeLessThan((700 / 50) * 4);
    },
  );

  it('narrows to a crowd in one millisecond by binary search and hands it to readDense', async () => {
    const crowdAt = T0 + 7n * HOUR + 1234n;
    const rows = [
      ...spread(40, 20n * HOUR, 9),
      ...Array.from({ length: 120 }, (_, i) => ({ id: `c${i}`, lastUpdate: at(crowdAt), raw: {} })),
    ];
    const { reader: r, requests, dense } = reader(rows, 50, 4);
    const { ids } = await listAll(
      new TimeSlicer({ minSpanInMs: 1, initialSpanInMs: 86_400_000 }),
      r,
      T0,
      T0 + 20n * HOUR,
    );
    expect([...ids].sort()).toEqual(rows.map((x) => x.id).sort());
    expect(dense).toEqual([[formatTicks(crowdAt - 1234n), formatTicks(crowdAt - 1234n + TICKS_PER_MS)]]);
    expect(requests.length).toBeLessThan(60);
  });

  it('keeps the span it learned for the next listing', async () => {
    const rows = spread(2000, 40n * HOUR, 5);
    const slicer = new TimeSlicer({ minSpanInMs: 1, initialSpanInMs: 86_400_000 });
    const first = reader(rows, 50, 1);
    await listAll(slicer, first.reader, T0, T0 + 20n * HOUR);
    const second = reader(rows, 50, 2);
    await listAll(slicer, second.reader, T0 + 20n * HOUR, T0 + 40n * HOUR);
    const fresh = reader(rows, 50, 2);
    await listAll(
      new TimeSlicer({ minSpanInMs: 1, initialSpanInMs: 86_400_000 }),
      fresh.reader,
      T0 + 20n * HOUR,
      T0 + 40n * HOUR,
    );
    // A fresh slicer starts a day wide and narrows first; the one that learned the density starts about right.
    expect(fresh.full.length).toBeGreaterThan(0);
    expect(second.full.length).toBeLessThan(fresh.full.length);
  });
});
