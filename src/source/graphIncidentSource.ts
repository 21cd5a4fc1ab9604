import { watermarkOf, type IncidentRecord } from '../export/checkpoint';
import { mapConcurrently } from '../export/forEachConcurrently';
import type { IncidentPage, IncidentSource, ListWindow, SourceStats } from '../export/ports';
import { formatTicks, parseTimestamp, TICKS_PER_MS, type Timestamp } from '../export/timestamp';
import { ApiError, ExportError } from '../errors';
import type { Logger } from '../logger';
import {
  describeUrl,
  identifyIncident,
  nextLinkOf,
  parseIncidentPage,
  type ParsedPage,
} from './incidentPage';
import type { JsonGetter } from './jsonGetter';
import { floorMs, TimeSlicer, type SliceReader } from './timeSlices';

export interface GraphIncidentSourceOptions {
  /** Base URL, e.g. https://graph.microsoft.com. */
  readonly baseUrl: string;
  readonly client: JsonGetter;
  readonly includeAlerts: boolean;
  readonly logger: Logger;
  /** `$top`; Graph refuses more than 50 (docs/incidents-api.md#page-size). */
  readonly pageSize?: number;
  /** How many full passes over one over-full instant may disagree before the run gives up. */
  readonly maxInstantPasses?: number;
  /** The slice span learned so far; shared by a worker's runs ({@link createGraphSlicer}). */
  readonly slicer?: TimeSlicer;
  /**
   * `$select` of list pages: only these fields, and never `$expand` (an audit that needs ids and times only).
   * Not documented for incidents (docs/incidents-api.md#filtering-and-ordering), so when Graph answers 400 to
   * it the source says so once and lists without it.
   */
  readonly select?: readonly string[];
  /** Incidents whose alerts are read at once by the per-incident fallback. Default 4. */
  readonly alertsConcurrency?: number;
}

/** Graph slices narrow down to one millisecond; a crowd inside it is split by creation time. */
export function createGraphSlicer(): TimeSlicer {
  return new TimeSlicer({ minSpanInMs: 1, initialSpanInMs: 86_400_000 });
}

const GRAPH_MAX_PAGE_SIZE = 50;

/**
 * Lists incidents from Microsoft Graph `GET /v1.0/security/incidents`, with `$filter` alone.
 *
 * Nothing here depends on the order of the rows: `$orderby` is not among the query options Graph documents for
 * this list (https://learn.microsoft.com/en-us/graph/api/security-list-incidents), its documented default is
 * newest first, and an API that ignored or refused `$orderby` would stall a keyset that trusts it for good
 * (docs/incidents-api.md#order). Nor is the `$skip`-based nextLink followed across a moving result: an
 * incident updated meanwhile leaves the window and every later row shifts left, so the next `$skip` page
 * silently skips one; deep `$skip` stops working on large tenants (Elastic #20234), and the nextLink has been
 * seen missing on a full page. The window is read in time slices on `lastUpdateDateTime` that each come back in
 * one page that is not full ({@link TimeSlicer}): one page is an atomic answer, whatever its order. A crowd
 * inside one millisecond is split by `createdDateTime` ranges (also documented as filterable) the same way.
 */
export class GraphIncidentSource implements IncidentSource {
  readonly api = 'graph' as const;
  readonly paging = 'timeSlices' as const;
  private readonly pageSize: number;
  private readonly maxInstantPasses: number;
  private readonly endpoint: string;
  private readonly slicer: TimeSlicer;
  private readonly alertsConcurrency: number;
  private isExpandDegraded = false;
  private isSelectRefused = false;
  private withoutAlerts = 0;

  constructor(private readonly o: GraphIncidentSourceOptions) {
    this.pageSize = Math.min(o.pageSize ?? GRAPH_MAX_PAGE_SIZE, GRAPH_MAX_PAGE_SIZE);
    this.maxInstantPasses = o.maxInstantPasses ?? 5;
    this.slicer = o.slicer ?? createGraphSlicer();
    this.alertsConcurrency = Math.max(1, o.alertsConcurrency ?? 4);
    this.endpoint = `${o.baseUrl}/v1.0/security/incidents`;
  }

  get stats(): SourceStats {
    return this.o.client.stats;
  }

  /** Incidents returned without their alerts; the run reports them (`alertsUnavailable` in its summary). */
  get alertsUnavailable(): number {
    return this.withoutAlerts;
  }

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
    const signal = options.abortSignal;
    for await (const page of this.slicer.listPages(window, this.reader, signal)) {
      // Alerts read per incident only for the rows a page contributes: never for a page that came back full and
      // was narrowed, whose rows are read again in a narrower slice.
      const bare = this.o.includeAlerts ? page.records.filter((r) => !hasAlerts(r)) : [];
      if (bare.length === 0) yield page;
      else {
        // Bounded: the alerts of a page of 50 are 50 requests; the shared pacer spaces them with everyone else's.
        const records = await mapConcurrently(page.records, this.alertsConcurrency, async (r) =>
          hasAlerts(r) ? r : this.withAlerts(r, signal),
        );
        yield { ...page, records };
      }
    }
  }

  /**
   * Graph's part in reading by time slices: a slice is one `lastUpdateDateTime` range, a dense one (a crowd in
   * one millisecond, or a page filled with items without a valid update time) is split by creation time.
   */
  private readonly reader: SliceReader = {
    fetch: async (from, to, abortSignal) => {
      const page = await this.fetch(this.url(range(from, to)), abortSignal);
      return {
        ...page,
        records: inSpan(page, from, to),
        returned: page.records.length + page.rejected.length,
      };
    },
    isFull: (page) => this.isFull(page),
    rowsPerPage: () => this.pageSize,
    readDense: (from, to, first, abortSignal) =>
      this.listSpan(watermarkOf(from), to, new Set(from.idsAtWatermark), first, abortSignal),
  };

  /** Whether more rows may follow a page: it is full, or Graph says so. */
  private isFull(page: ParsedPage): boolean {
    return page.records.length + page.rejected.length >= this.pageSize || page.nextLink !== undefined;
  }

  /**
   * Reads every incident version updated in [from, to), a slice that came back full as `whole` and cannot be
   * narrowed in time (a crowd inside one millisecond), except those at exactly `from` whose ids are in
   * `seenAtFrom` (already listed). The span is split by `createdDateTime` ranges (documented as filterable) until each
   * range comes back in one page that is not full, so no nextLink is relied on: a full page without one, a
   * nextLink that stops at a `$skip` cap or one that repeats cannot lose or stall anything here. Each range is
   * one atomic answer; a row updated meanwhile leaves the span (its new version is later than the window), and
   * no row can enter it (it is in the past), so a range read once is complete. Only a range of one
   * millisecond of creation that is still full is paged by its nextLink, in passes until two agree.
   */
  private async *listSpan(
    from: Timestamp,
    to: Timestamp,
    seenAtFrom: ReadonlySet<string>,
    whole: ParsedPage,
    signal?: AbortSignal,
  ): AsyncIterable<IncidentPage> {
    const listed = new Set<string>();
    const emit = (page: ParsedPage): IncidentPage => {
      const records = inSpan(page, from, to).filter((r) => {
        const key = `${r.id}@${r.lastUpdate.ticks}`;
        if (listed.has(key) || !isNew(r, from, seenAtFrom)) return false;
        listed.add(key);
        return true;
      });
      return { records, rejected: page.rejected, resumeFrom: undefined };
    };
    if (!this.isFull(whole)) {
      yield emit(whole);
      return;
    }
    const ranges: [bigint, bigint, ParsedPage][] = [];
    ranges.push(...split(CREATED_MIN, CREATED_MAX, whole));
    for (let next = ranges.pop(); next; next = ranges.pop()) {
      const [a, b] = next;
      const filter = `${range(from, to)} and createdDateTime ge ${formatTicks(a)} and createdDateTime lt ${formatTicks(b)}`;
      const page = await this.fetch(this.url(filter), signal);
      if (!this.isFull(page)) yield emit(page);
      else if (b - a > TICKS_PER_MS) ranges.push(...split(a, b, page));
      else yield* this.pageByNextLink(filter, page, from, to, emit, signal);
    }
  }

  /**
   * The last resort inside a span: more incidents than a page share one millisecond of update and of
   * creation. Follows the nextLink (origin-checked by the client) in full passes until two agree; a nextLink
   * that repeats, returns nothing new, or is missing on a full page fails the run with the reason.
   */
  private async *pageByNextLink(
    filter: string,
    first: ParsedPage,
    from: Timestamp,
    to: Timestamp,
    emit: (page: ParsedPage) => IncidentPage,
    signal?: AbortSignal,
  ): AsyncIterable<IncidentPage> {
    const where = `the incidents updated at ${from.text} (to ${to.text}) and created in one millisecond (${filter}) at ${this.endpoint}`;
    const quarantined =
      first.rejected.length > 0 ? ' Items without a valid update time are in quarantine/.' : '';
    let previous: Set<string> | undefined;
    for (let pass = 1; pass <= this.maxInstantPasses; pass++) {
      const current = new Set<string>();
      const followed = new Set([withoutExpand(this.url(filter))]);
      let page = pass === 1 ? first : await this.fetch(this.url(filter), signal);
      for (;;) {
        const keys = keysOf(page);
        const isRepeat = keys.length > 0 && keys.every((key) => current.has(key));
        for (const key of keys) current.add(key);
        yield emit(page);
        const url = page.nextLink;
        if (!url) {
          if (!this.isFull(page)) break;
          throw new ExportError(
            `Graph returned a full page without an @odata.nextLink inside ${where}; more rows share it than a page can hold and no filter can split them. The next run retries from the checkpoint.${quarantined}`,
            { isTransient: true },
          );
        }
        if (followed.has(withoutExpand(url)) || isRepeat) {
          throw new ExportError(
            `Graph's @odata.nextLink does not advance inside ${where} (it repeats a page already read); it is not followed further. The next run retries from the checkpoint.${quarantined}`,
            { isTransient: true },
          );
        }
        followed.add(url);
        page = await this.fetch(url, signal);
      }
      if (previous && sameSet(previous, current)) return;
      previous = current;
    }
    throw new ExportError(
      `${where} kept changing over ${this.maxInstantPasses} full reads; the next run retries from the checkpoint.`,
      { isTransient: true },
    );
  }

  /** A list request with `$filter` alone: no `$orderby`, which Graph does not document (docs/incidents-api.md#order). */
  private url(filter: string): string {
    const params = new URLSearchParams();
    params.set('$filter', filter);
    params.set('$top', String(this.pageSize));
    if (this.o.select?.length && !this.isSelectRefused) params.set('$select', this.o.select.join(','));
    return `${this.endpoint}?${params.toString().replace(/\+/g, '%20')}`;
  }

  /**
   * Fetches a page, with alerts expanded when asked. `$filter` with `$expand=alerts` has failed persistently
   * with HTTP 500 on large tenants and stalled other exporters for good (Elastic #18144, #18277). So when an
   * expanded page still fails after every retry, the run goes on without `$expand` and reads the alerts of each
   * incident it exports on its own (in listPages, {@link withAlerts}); an incident whose alerts cannot be read
   * either is exported without them, and the run says how many.
   */
  private async fetch(url: string, abortSignal?: AbortSignal): Promise<ParsedPage> {
    if (!this.o.includeAlerts || this.o.select?.length)
      return this.getSelected(withoutExpand(url), abortSignal);
    if (!this.isExpandDegraded) {
      try {
        return await this.get(withExpand(url), abortSignal);
      } catch (thrown) {
        if (
          !(thrown instanceof ApiError) ||
          (thrown.status !== 0 && thrown.status < 500) ||
          abortSignal?.aborted
        )
          throw thrown;
        this.isExpandDegraded = true;
        this.o.logger.warn(
          `Graph keeps failing on pages with $expand=alerts (${thrown.message}); this run continues without it and reads alerts per incident.`,
        );
      }
    }
    return this.get(withoutExpand(url), abortSignal);
  }

  /**
   * A listed incident with its alerts read on their own from the documented navigation
   * `GET /v1.0/security/incidents/{id}/alerts` (docs/incidents-api.md#alerts), every page of them: the list item
   * without OData control annotations, then `alerts` as that endpoint returns them, without theirs. That is the
   * key order and content of an item of a page with `$expand=alerts`, so the record is the same bytes whichever
   * way it was read. The alerts are read after the page, so they may already hold a change of a later version
   * (which is exported in its turn). An incident whose alerts cannot be read is exported without them, counted.
   */
  private async withAlerts(record: IncidentRecord, abortSignal?: AbortSignal): Promise<IncidentRecord> {
    const item = withoutControlAnnotations(record.raw);
    delete item.alerts;
    let reason: string;
    try {
      return { ...record, raw: { ...item, alerts: await this.readAlerts(record.id, abortSignal) } };
    } catch (thrown) {
      if (abortSignal?.aborted) throw thrown;
      reason = (thrown instanceof Error ? thrown.message : String(thrown)).slice(0, 300);
    }
    this.withoutAlerts++;
    // One line per incident, to find them; the run warns once with the count.
    this.o.logger.info(
      `Exporting incident '${record.id}' at ${record.lastUpdate.text} without its alerts: they could not be read (${reason}).`,
    );
    return { ...record, raw: item };
  }

  /** Every alert of an incident, page by page along `@odata.nextLink` (origin-checked, never repeated). */
  private async readAlerts(id: string, abortSignal?: AbortSignal): Promise<Record<string, unknown>[]> {
    const alerts: Record<string, unknown>[] = [];
    const followed = new Set<string>();
    for (let url: string | undefined = `${this.endpoint}/${encodeURIComponent(id)}/alerts`; url;) {
      if (followed.has(url)) {
        throw new ExportError(`the @odata.nextLink of the alerts of incident '${id}' repeats a page`);
      }
      followed.add(url);
      const body = await this.o.client.getJson(url, {
        headers: PREFER,
        ...(abortSignal ? { abortSignal } : {}),
      });
      const page = parseAlertsPage(body, url);
      if (page.alerts.length === 0 && page.nextLink) {
        throw new ExportError(`an empty page of the alerts of incident '${id}' has an @odata.nextLink`);
      }
      alerts.push(...page.alerts);
      url = page.nextLink;
    }
    return alerts;
  }

  /**
   * {@link get} for a URL that may carry `$select` (see {@link GraphIncidentSourceOptions.select}): when Graph
   * answers 400 to it and the same request without `$select` succeeds, every later request goes without it.
   */
  private async getSelected(url: string, abortSignal?: AbortSignal): Promise<ParsedPage> {
    const u = new URL(url);
    if (!u.searchParams.has('$select')) return this.get(url, abortSignal);
    try {
      return await this.get(url, abortSignal);
    } catch (thrown) {
      if (!(thrown instanceof ApiError) || thrown.status !== 400 || abortSignal?.aborted) throw thrown;
      u.searchParams.delete('$select');
      const page = await this.get(u.toString().replace(/\+/g, '%20'), abortSignal);
      if (!this.isSelectRefused) {
        this.isSelectRefused = true;
        this.o.logger.warn(
          `Graph refused $select=${this.o.select?.join(',') ?? ''} on ${this.endpoint} (HTTP 400: ${thrown.message}); listing whole incidents instead.`,
        );
      }
      return page;
    }
  }

  private async get(url: string, abortSignal?: AbortSignal): Promise<ParsedPage> {
    const body = await this.o.client.getJson(url, {
      headers: PREFER,
      ...(abortSignal ? { abortSignal } : {}),
    });
    return parseIncidentPage(body, 'graph', url);
  }
}

/** Whether a record came with its alerts (`$expand=alerts` always gives the array, empty or not). */
function hasAlerts(r: IncidentRecord): boolean {
  return Array.isArray((r.raw as Record<string, unknown> | null)?.alerts);
}

/** Without it, newer enum members (status 'awaitingAction') arrive as 'unknownFutureValue' (Elastic #12573). */
const PREFER = { Prefer: 'include-unknown-enum-members' };

/**
 * OData control information (https://docs.oasis-open.org/odata/odata-json-format/v4.01/odata-json-format-v4.01.html#sec_ControlInformation)
 * that a collection or an entity response adds to an object and an item of an expanded list does not carry:
 * `@odata.context`, `@odata.nextLink`, `@odata.etag`, `@odata.count`, … on the object or on one of its properties
 * (`alerts@odata.nextLink`). `@odata.type` stays: expanded items carry it too.
 */
const CONTROL_ANNOTATION =
  /^[^@]*@odata\.(?:context|metadataEtag|nextLink|deltaLink|count|etag|id|editLink|readLink|navigationLink|associationLink|mediaEditLink|mediaReadLink|mediaContentType|mediaEtag)$/;

/** A copy of an API object without its OData control annotations (see {@link CONTROL_ANNOTATION}). */
function withoutControlAnnotations(value: unknown): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).filter(([key]) => !CONTROL_ANNOTATION.test(key)),
  );
}

/**
 * One page of `GET /security/incidents/{id}/alerts`: its alert objects without control annotations, and its
 * nextLink, which must stay on the page's origin (the token goes nowhere else).
 */
function parseAlertsPage(
  body: unknown,
  url: string,
): { alerts: Record<string, unknown>[]; nextLink: string | undefined } {
  const page = body as Record<string, unknown> | null;
  const value = typeof page === 'object' && page !== null ? page.value : undefined;
  if (
    !Array.isArray(value) ||
    !value.every((a) => typeof a === 'object' && a !== null && !Array.isArray(a))
  ) {
    throw new ExportError(
      `Malformed alerts page ${describeUrl(url)}: expected a 'value' array of alert objects.`,
    );
  }
  const nextLink = nextLinkOf(page as Record<string, unknown>, url, `Alerts page ${describeUrl(url)}`);
  return {
    alerts: value.map(withoutControlAnnotations),
    nextLink,
  };
}

function withExpand(url: string): string {
  const u = new URL(url);
  u.searchParams.set('$expand', 'alerts');
  return u.toString().replace(/\+/g, '%20');
}

function withoutExpand(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('$expand')) return url;
  u.searchParams.delete('$expand');
  return u.toString().replace(/\+/g, '%20');
}

function isNew(r: IncidentRecord, lower: Timestamp, seenAtLower: ReadonlySet<string>): boolean {
  return r.lastUpdate.ticks > lower.ticks || (r.lastUpdate.ticks === lower.ticks && !seenAtLower.has(r.id));
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** `lastUpdateDateTime` in [from, to). */
function range(from: Timestamp, to: Timestamp): string {
  return `lastUpdateDateTime ge ${from.text} and lastUpdateDateTime lt ${to.text}`;
}

const CREATED_MIN = 0n;
const CREATED_MAX = BigInt(Date.UTC(9999, 11, 31)) * TICKS_PER_MS;

/**
 * Splits a creation range [a, b) whose page came back full around the millisecond of the median creation time
 * it showed (so a crowd created at one instant is isolated at once), or in halves; every part is smaller.
 */
function split(a: bigint, b: bigint, page: ParsedPage): [bigint, bigint, ParsedPage][] {
  const created = [...page.records.map((r) => r.raw), ...page.rejected.map((r) => r.raw)]
    .map((raw) => parseTimestamp((raw as Record<string, unknown> | null)?.createdDateTime)?.ticks)
    .filter((t): t is bigint => t !== undefined && t >= a && t < b)
    .map(floorMs)
    .sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const median = created[created.length >> 1];
  const cuts =
    median !== undefined && median >= a && median + TICKS_PER_MS <= b
      ? [median, median + TICKS_PER_MS]
      : [floorMs(a + (b - a) / 2n)];
  const points = [a, ...cuts.filter((c) => c > a && c < b), b];
  const parts: [bigint, bigint, ParsedPage][] = [];
  for (let i = 1; i < points.length; i++) parts.push([points[i - 1]!, points[i]!, page]);
  return parts;
}

/** What identifies the items of a page: incident ids, and the content of items without a valid update time. */
function keysOf(page: ParsedPage): string[] {
  return [
    ...page.records.map((r) => `id ${r.id}`),
    ...page.rejected.map((r) => `raw ${JSON.stringify(r.raw)}`),
  ];
}

/** The rows of a page inside [from, to), in any order. */
function inSpan(page: ParsedPage, from: Timestamp, to: Timestamp): IncidentRecord[] {
  return page.records.filter((r) => r.lastUpdate.ticks >= from.ticks && r.lastUpdate.ticks < to.ticks);
}
