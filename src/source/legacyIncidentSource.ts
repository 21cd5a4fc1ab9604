import { isAfter, watermarkOf, type Checkpoint, type IncidentRecord } from '../export/checkpoint';
import type { IncidentPage, IncidentSource, ListWindow, SourceStats } from '../export/ports';
import { formatTicks, parseTimestamp, TICKS_PER_MS, type Timestamp } from '../export/timestamp';
import { ExportError } from '../errors';
import type { Logger } from '../logger';
import { parseIncidentPage, identifyIncident, type ParsedPage } from './incidentPage';
import type { JsonGetter } from './jsonGetter';

export interface LegacyIncidentSourceOptions {
  /** Base URL, e.g. https://api.security.microsoft.com. */
  readonly baseUrl: string;
  readonly client: JsonGetter;
  readonly logger: Logger;
  /** `$top`; the legacy API refuses more than 100 (docs/incidents-api.md#page-size). */
  readonly pageSize?: number;
  /** Rows each `$skip` page repeats from the previous one, to detect a result set that shifted. */
  readonly overlap?: number;
  /** Below this span a chunk is no longer halved but paged with `$skip`. */
  readonly minChunkSpanInMs?: number;
  readonly initialChunkSpanInMs?: number;
}

const LEGACY_MAX_PAGE_SIZE = 100;

/**
 * Lists incidents from the legacy `GET /api/incidents` (the Hello-World seed's API, retired 2027-02-01).
 *
 * That API has no `$orderby` (newest created first) and pages only with `$skip`, so a keyset cannot be used
 * and the position inside a partly read result cannot be checkpointed. The window is therefore read in time
 * chunks small enough to come back in ONE page: a chunk whose first page is full is halved and asked again
 * (one wasted request), and the span adapts to the density seen. A one-page answer is an atomic snapshot,
 * so rows moving while we page cannot make us skip anything, and the checkpoint moves after each chunk.
 * Only a chunk of under a second that still holds more than a page is paged with `$skip`; its pages overlap
 * by a few rows, and a page that shares no row with the previous one means rows left the result set faster
 * than the overlap, so the client steps back instead of skipping them.
 */
export class LegacyIncidentSource implements IncidentSource {
  readonly api = 'legacy' as const;
  private readonly pageSize: number;
  /** Rows the server returns per page at most: `$top`, or less when it caps pages (learned from a nextLink). */
  private serverPageSize: number;
  private readonly overlap: number;
  private readonly minSpan: bigint;
  private span: bigint;
  private readonly endpoint: string;

  constructor(private readonly o: LegacyIncidentSourceOptions) {
    this.pageSize = Math.min(o.pageSize ?? LEGACY_MAX_PAGE_SIZE, LEGACY_MAX_PAGE_SIZE);
    this.serverPageSize = this.pageSize;
    this.overlap = Math.min(o.overlap ?? 10, Math.floor(this.pageSize / 2));
    this.minSpan = BigInt(o.minChunkSpanInMs ?? 1000) * TICKS_PER_MS;
    this.span = BigInt(o.initialChunkSpanInMs ?? 3_600_000) * TICKS_PER_MS;
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

  async *listPages(
    window: ListWindow,
    options: { abortSignal?: AbortSignal } = {},
  ): AsyncIterable<IncidentPage> {
    const until = parseTimestamp(window.until);
    if (!until) throw new ExportError(`Invalid window end '${window.until}'.`);
    let from: Checkpoint = window.from;
    while (watermarkOf(from).ticks < until.ticks) {
      const start = watermarkOf(from);
      const endTicks = chunkEnd(start.ticks, start.ticks + this.span, until.ticks);
      const end = endTicks === until.ticks ? until.text : formatTicks(endTicks);
      const first = await this.fetch(start.text, end, 0, options.abortSignal);
      const isFull = this.isFull(first);
      if (isFull) {
        const narrower = this.narrowerEnd(start.ticks, endTicks, first);
        if (narrower !== undefined) {
          this.span = narrower - start.ticks;
          continue;
        }
      }
      const next: Checkpoint = { watermark: end, idsAtWatermark: [] };
      if (!isFull) {
        yield {
          records: first.records.filter((r) => isAfter(r, from)),
          rejected: first.rejected,
          resumeFrom: next,
        };
        this.adapt(first.returned);
      } else {
        yield* this.pageChunk(from, end, first, options.abortSignal);
        yield { records: [], resumeFrom: next };
        this.span = this.minSpan * 60n;
      }
      from = next;
    }
  }

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

  /**
   * The end to try instead of a chunk whose first page came back full, or undefined to page it as it is.
   * A page whose rows all share one instant T points at a crowd at T: read up to T's millisecond first, then
   * that millisecond alone. Otherwise halve, down to the minimum span. Chunk ends stay on millisecond
   * boundaries, so a service that compares `$filter` datetimes in milliseconds answers them exactly.
   */
  private narrowerEnd(startTicks: bigint, endTicks: bigint, first: ParsedPage): bigint | undefined {
    const instants = new Set(first.records.map((r) => r.lastUpdate.ticks));
    const [only] = instants;
    if (instants.size === 1 && only !== undefined) {
      if (floorMs(only) > startTicks) return floorMs(only);
      const oneMs = floorMs(startTicks) + TICKS_PER_MS;
      return oneMs < endTicks ? oneMs : undefined;
    }
    const span = endTicks - startTicks;
    if (span <= this.minSpan) return undefined;
    const half = floorMs(startTicks + span / 2n);
    return half > startTicks ? half : undefined;
  }

  /** Grows the chunk span while chunks come back sparse, shrinks it when they come back nearly full. */
  private adapt(count: number): void {
    const size = this.serverPageSize;
    if (count < size / 4) this.span *= 4n;
    else if (count < size / 2) this.span *= 2n;
    else if (count > (size * 4) / 5) this.span = (this.span * 3n) / 4n;
    const maxSpan = 86_400_000n * TICKS_PER_MS;
    if (this.span > maxSpan) this.span = maxSpan;
    if (this.span < this.minSpan) this.span = this.minSpan;
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
interface LegacyPage extends ParsedPage {
  readonly listed: readonly IncidentRecord[];
  /** How many items the server returned (records inside and outside the chunk, and rejected items). */
  readonly returned: number;
}

function floorMs(ticks: bigint): bigint {
  return ticks - (ticks % TICKS_PER_MS);
}

/** A chunk end on a millisecond boundary after `start`, at most `until`. */
function chunkEnd(start: bigint, proposed: bigint, until: bigint): bigint {
  if (proposed >= until) return until;
  let end = floorMs(proposed);
  if (end <= start) end = floorMs(start) + TICKS_PER_MS;
  return end < until ? end : until;
}
