import { isAfter, type Checkpoint, type IncidentRecord } from '../export/checkpoint';
import type { IncidentPage, IncidentSource, ListWindow, SourceStats } from '../export/ports';
import { parseTimestamp, type Timestamp } from '../export/timestamp';
import { ExportError } from '../errors';
import type { Logger } from '../logger';
import { parseIncidentPage, identifyIncident } from './incidentPage';
import type { JsonGetter } from './jsonGetter';
import { TimeSlicer, type SliceReader, type SlicePage, type TimeSlicerOptions } from './timeSlices';

export interface LegacyIncidentSourceOptions {
  /** Base URL, e.g. https://api.security.microsoft.com. */
  readonly baseUrl: string;
  readonly client: JsonGetter;
  readonly logger: Logger;
  /** `$top`; the legacy API refuses more than 100 (docs/incidents-api.md#page-size). */
  readonly pageSize?: number;
  /** Rows each `$skip` page repeats from the previous one, to detect a result set that shifted. */
  readonly overlap?: number;
  /** The slice span learned so far; shared by a worker's runs ({@link createLegacySlicer}). */
  readonly slicer?: TimeSlicer;
}

/** Legacy slices narrow down to a second; a fuller slice is paged with `$skip`. */
export function createLegacySlicer(o: Partial<TimeSlicerOptions> = {}): TimeSlicer {
  return new TimeSlicer({
    minSpanInMs: o.minSpanInMs ?? 1000,
    initialSpanInMs: o.initialSpanInMs ?? 86_400_000,
  });
}

const LEGACY_MAX_PAGE_SIZE = 100;

/**
 * Lists incidents from the legacy `GET /api/incidents` (the Hello-World seed's API, retired 2027-02-01).
 *
 * That API has no `$orderby` (newest created first) and pages only with `$skip`, so a keyset cannot be used
 * and the position inside a partly read result cannot be checkpointed. The window is therefore read in time
 * slices that each come back in ONE page ({@link TimeSlicer}), and the checkpoint moves after each slice.
 * Only a slice of under a second that still holds more than a page is paged with `$skip`; its pages overlap
 * by a few rows, and a page that shares no row with the previous one means rows left the result set faster
 * than the overlap, so the client steps back instead of skipping them.
 */
export class LegacyIncidentSource implements IncidentSource {
  readonly api = 'legacy' as const;
  readonly paging = 'timeSlices' as const;
  private readonly pageSize: number;
  /** Rows the server returns per page at most: `$top`, or less when it caps pages (learned from a nextLink). */
  private serverPageSize: number;
  private readonly overlap: number;
  private readonly slicer: TimeSlicer;
  private readonly endpoint: string;

  constructor(private readonly o: LegacyIncidentSourceOptions) {
    this.pageSize = Math.min(o.pageSize ?? LEGACY_MAX_PAGE_SIZE, LEGACY_MAX_PAGE_SIZE);
    this.serverPageSize = this.pageSize;
    this.overlap = Math.min(o.overlap ?? 10, Math.floor(this.pageSize / 2));
    this.slicer = o.slicer ?? createLegacySlicer();
    this.endpoint = `${o.baseUrl}/api/incidents`;
  }

  get stats(): SourceStats {
    return this.o.client.stats;
  }

  /** The legacy API embeds the alerts in every incident. */
  readonly alertsUnavailable = 0;

  apiNow(): number | undefined {
    return this.o.client.serverNow();
  }

  identify(raw: unknown): { id: string; lastUpdate: Timestamp } | undefined {
    return identifyIncident(raw, this.api);
  }

  listPages(window: ListWindow, options: { abortSignal?: AbortSignal } = {}): AsyncIterable<IncidentPage> {
    return this.slicer.listPages(window, this.reader, options.abortSignal);
  }

  /** This API's part in reading by time slices: a slice is one `$filter` range, a dense one is paged by `$skip`. */
  private readonly reader: SliceReader = {
    fetch: (from, to, abortSignal) => this.fetch(from.text, to.text, 0, abortSignal),
    isFull: (page) => this.isFull(page as LegacyPage),
    rowsPerPage: () => this.serverPageSize,
    readDense: (from, to, first, abortSignal) =>
      this.pageChunk(from, to.text, first as LegacyPage, abortSignal),
  };

  /**
   * Whether more rows may follow a page: it holds as many rows as the server returns per page, or it has a
   * nextLink. A nextLink on a page shorter than `$top` teaches the server's page size.
   */
  private isFull(page: LegacyPage): boolean {
    if (page.nextLink !== undefined && page.returned > 0 && page.returned < this.serverPageSize) {
      this.serverPageSize = page.returned;
      this.o.logger.info(
        `The legacy API returns at most ${page.returned} incidents per page (asked for ${this.pageSize}); paging by that.`,
      );
    }
    return page.returned >= this.serverPageSize || page.nextLink !== undefined;
  }

  /**
   * Pages one dense chunk with overlapping `$skip` pages; no consistent position exists until its end. The
   * `$skip` step comes from the rows each page actually returned (the server may cap pages below `$top`).
   */
  private async *pageChunk(
    from: Checkpoint,
    end: string,
    first: LegacyPage,
    abortSignal?: AbortSignal,
  ): AsyncIterable<IncidentPage> {
    const seen = new Set<string>();
    let page = first;
    let skip = 0;
    let stepsBack = 0;
    for (;;) {
      const fresh = page.records.filter((r) => !seen.has(r.id) && isAfter(r, from));
      for (const r of fresh) seen.add(r.id);
      yield { records: fresh, rejected: page.rejected, resumeFrom: undefined };
      if (!this.isFull(page)) return;
      const overlap = Math.min(this.overlap, Math.floor(page.returned / 2));
      if (overlap === 0) {
        throw new ExportError(
          `The legacy API returned ${page.returned} incident(s) per page for ${from.watermark}..${end}, too few to page with an overlap that detects a shifting result; nothing after the checkpoint was lost, the next run retries.`,
          { isTransient: true },
        );
      }
      const tail = new Set(page.listed.slice(-overlap).map((r) => r.id));
      const step = page.returned - overlap;
      skip += step;
      for (;;) {
        page = await this.fetch(from.watermark, end, skip, abortSignal);
        // A page that holds a row of the previous page's tail continues it. Anything else, an empty page
        // included, means rows before our offset left the result set (they were updated since), so unread rows
        // may have slid behind it: step back, down to the start if need be; rows already read are skipped.
        if (page.listed.some((r) => tail.has(r.id)) || skip === 0) break;
        if (++stepsBack > 20) {
          throw new ExportError(
            `The legacy incidents result for ${from.watermark}..${end} kept shifting while paging; the next run retries.`,
            { isTransient: true },
          );
        }
        skip = Math.max(0, skip - step);
      }
    }
  }

  private async fetch(
    from: string,
    until: string,
    skip: number,
    abortSignal?: AbortSignal,
  ): Promise<LegacyPage> {
    const params = new URLSearchParams();
    params.set('$filter', `lastUpdateTime ge ${from} and lastUpdateTime lt ${until}`);
    params.set('$top', String(this.pageSize));
    if (skip > 0) params.set('$skip', String(skip));
    const url = `${this.endpoint}?${params.toString().replace(/\+/g, '%20')}`;
    const body = await this.o.client.getJson(url, abortSignal ? { abortSignal } : {});
    const page = parseIncidentPage(body, 'legacy', url);
    const lower = parseTimestamp(from);
    const upper = parseTimestamp(until);
    if (!lower || !upper) throw new ExportError(`Invalid legacy chunk ${from}..${until}.`);
    // A service that compares the filter at a coarser precision than it returns (milliseconds against 7
    // fractional digits) lets through rows of the same millisecond before the chunk start, which is the
    // checkpoint (so they were exported before), and at or after its end (read with the next chunk): both are
    // dropped. The legacy API has no order, so there is no order to check.
    const records = page.records.filter(
      (r) => r.lastUpdate.ticks >= lower.ticks && r.lastUpdate.ticks < upper.ticks,
    );
    return { ...page, records, listed: page.records, returned: page.records.length + page.rejected.length };
  }
}

/** A legacy page: `records` inside the requested chunk, `listed` every record as returned. */
interface LegacyPage extends SlicePage {
  readonly listed: readonly IncidentRecord[];
}
