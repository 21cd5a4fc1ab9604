import { isAfter, watermarkOf, type Checkpoint } from '../export/checkpoint';
import type { IncidentPage, ListWindow } from '../export/ports';
import { floorMs, formatTicks, parseTimestamp, TICKS_PER_MS, type Timestamp } from '../export/timestamp';
import { ExportError } from '../errors';
import type { ParsedPage } from './incidentPage';

/** One answer for a time slice: `records` are the rows inside the slice; `returned` counts every item sent. */
export interface SlicePage extends ParsedPage {
  /** How many items the server returned (rows inside and outside the slice, and rejected items). */
  readonly returned: number;
}

/** What an API contributes to reading a window by time slices. */
export interface SliceReader {
  /** One request for the incidents updated in [from, to), with `$filter` alone (no order asked or assumed). */
  fetch(from: Timestamp, to: Timestamp, abortSignal?: AbortSignal): Promise<SlicePage>;
  /** Whether more rows may follow a page: it holds a full page, or the server says so (a nextLink). */
  isFull(page: SlicePage): boolean;
  /** Rows the server returns per page at most (it may learn a cap below `$top`), for sizing the next slice. */
  rowsPerPage(): number;
  /**
   * Reads a slice that came back full and is not narrowed any further (it is at most `minSpan` wide, or every
   * row shares one instant). Pages it yields need no position: the slicer adds one at the slice's end.
   */
  readDense(
    from: Checkpoint,
    to: Timestamp,
    first: SlicePage,
    abortSignal?: AbortSignal,
  ): AsyncIterable<IncidentPage>;
}

export interface TimeSlicerOptions {
  /** Below this span a full slice is no longer narrowed but handed to {@link SliceReader.readDense}. */
  readonly minSpanInMs: number;
  /** The first slice's span; later ones adapt to the density seen. */
  readonly initialSpanInMs: number;
}

/**
 * Reads windows of incidents in time slices small enough to come back in ONE page, so nothing depends on the
 * order in which the API returns rows (the incidents APIs document none we can rely on: `$orderby` is not in
 * Graph's list of query options, and the legacy API is newest-created first; docs/incidents-api.md#order).
 *
 * A slice whose page is full is narrowed and asked again (one wasted request); the span then adapts to the
 * density seen. A page that is not full is the whole answer for its slice at one moment, an atomic snapshot:
 * rows updated meanwhile leave the slice (their new version is later than the window), none can enter it (it is
 * in the past), so a slice read once is complete whatever the order of its rows, and the position moves to the
 * slice's end. Slice ends sit on millisecond boundaries, so a service that compares `$filter` datetimes in
 * milliseconds answers them exactly. Memory is one page at a time.
 *
 * One slicer serves every run of a worker (the composition keeps it with the source factory), so a run starts
 * with the span the previous one learned instead of spending its first requests on narrowing again. The span is
 * only a guess: any slice end is correct, so runs sharing a slicer cannot harm each other.
 */
export class TimeSlicer {
  private readonly minSpan: bigint;
  private span: bigint;
  /** The span of the last slice that came back in one page, to go back to after a dense slice. */
  private lastFitting: bigint;

  constructor(o: TimeSlicerOptions) {
    this.minSpan = BigInt(o.minSpanInMs) * TICKS_PER_MS;
    this.span = BigInt(o.initialSpanInMs) * TICKS_PER_MS;
    this.lastFitting = this.span;
  }

  async *listPages(
    window: ListWindow,
    reader: SliceReader,
    abortSignal?: AbortSignal,
  ): AsyncIterable<IncidentPage> {
    const until = parseTimestamp(window.until);
    if (!until) throw new ExportError(`Invalid window end '${window.until}'.`);
    let from: Checkpoint = window.from;
    // The end of the last slice that came back full: after a narrower slice fits, the next one ends there at
    // the latest, so narrowing down to a crowd is a binary search rather than a walk that overshoots it again.
    let overflowEnd: bigint | undefined;
    while (watermarkOf(from).ticks < until.ticks) {
      const start = watermarkOf(from);
      if (overflowEnd !== undefined && overflowEnd <= start.ticks) overflowEnd = undefined;
      const proposed = start.ticks + this.span;
      const endTicks = sliceEnd(
        start.ticks,
        overflowEnd !== undefined && overflowEnd < proposed ? overflowEnd : proposed,
        until.ticks,
      );
      const end = endTicks === until.ticks ? until : { text: formatTicks(endTicks), ticks: endTicks };
      const first = await reader.fetch(start, end, abortSignal);
      const isFull = reader.isFull(first);
      if (isFull) {
        const narrower = this.narrowerEnd(start.ticks, endTicks, first);
        if (narrower !== undefined) {
          this.span = narrower - start.ticks;
          overflowEnd = endTicks;
          continue;
        }
      }
      const next: Checkpoint = { watermark: end.text, idsAtWatermark: [] };
      if (!isFull) {
        yield {
          records: first.records.filter((r) => isAfter(r, from)),
          rejected: first.rejected,
          resumeFrom: next,
        };
        this.lastFitting = endTicks - start.ticks;
        const cutShort = endTicks === until.ticks || (overflowEnd !== undefined && overflowEnd < proposed);
        this.adapt(first.returned, reader.rowsPerPage(), endTicks - start.ticks, cutShort);
      } else {
        yield* reader.readDense(from, end, first, abortSignal);
        yield { records: [], resumeFrom: next };
        // The crowd was local: what fitted before it is the best guess for what follows.
        this.span = this.lastFitting;
      }
      from = next;
    }
  }

  /**
   * The end to try instead of a slice whose page came back full, or undefined to read it as dense. The page is
   * a sample of the slice (in no known order): half or more of its rows sit at or after the millisecond of its
   * median update time, so ending there, or at the half of the span when that is earlier, cuts at least half
   * of the rows seen or half of the time. A median in the slice's first millisecond points at a crowd there:
   * that millisecond alone is read next, and read as dense if still full. Below the minimum span the slice is
   * read as dense too.
   */
  private narrowerEnd(startTicks: bigint, endTicks: bigint, first: SlicePage): bigint | undefined {
    const instants = first.records
      .map((r) => r.lastUpdate.ticks)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const median = instants[instants.length >> 1];
    const oneMs = floorMs(startTicks) + TICKS_PER_MS;
    if (median !== undefined && floorMs(median) <= startTicks) return oneMs < endTicks ? oneMs : undefined;
    const span = endTicks - startTicks;
    if (span <= this.minSpan) return undefined;
    const half = floorMs(startTicks + span / 2n);
    const cut = median !== undefined && floorMs(median) < half ? floorMs(median) : half;
    return cut > startTicks ? cut : undefined;
  }

  /**
   * The next span from the density the slice just read showed: wide enough for about 70% of a page (growing at
   * most fourfold at a time). A slice cut short by the window's end tells little about a wider span: it only
   * shrinks the span when it was dense itself.
   */
  private adapt(count: number, size: number, width: bigint, cutShort: boolean): void {
    const target = Math.max(1, Math.floor(size * 0.7));
    let next = count === 0 ? width * 4n : (width * BigInt(target)) / BigInt(count);
    if (next > width * 4n) next = width * 4n;
    if (cutShort && count <= target && next < this.span) next = this.span;
    const maxSpan = 86_400_000n * TICKS_PER_MS;
    this.span = next > maxSpan ? maxSpan : next < this.minSpan ? this.minSpan : next;
  }
}

export { floorMs };

/** A slice end on a millisecond boundary after `start`, at most `until`. */
function sliceEnd(start: bigint, proposed: bigint, until: bigint): bigint {
  if (proposed >= until) return until;
  let end = floorMs(proposed);
  if (end <= start) end = floorMs(start) + TICKS_PER_MS;
  return end < until ? end : until;
}
