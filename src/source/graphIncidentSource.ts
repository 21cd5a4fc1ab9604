import { watermarkOf, type Checkpoint, type IncidentRecord } from '../export/checkpoint';
import type { IncidentPage, IncidentSource, ListWindow, SourceStats } from '../export/ports';
import { formatTicks, parseTimestamp, TICKS_PER_MS, type Timestamp } from '../export/timestamp';
import { ApiError, ExportError } from '../errors';
import type { Logger } from '../logger';
import { describeUrl, parseIncidentPage, identifyIncident, type ParsedPage } from './incidentPage';
import type { JsonGetter } from './jsonGetter';

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
}

const GRAPH_MAX_PAGE_SIZE = 50;

/**
 * Lists incidents from Microsoft Graph `GET /v1.0/security/incidents`, ordered by `lastUpdateDateTime asc`.
 *
 * Paging strategy (why not just follow `@odata.nextLink`): Graph's nextLink is `$skip`-based, and the result
 * set moves while we page: an incident updated meanwhile leaves the window and every later row shifts left, so
 * the next `$skip` page silently skips one; deep `$skip` also stops working on large tenants (Elastic #20234),
 * and the nextLink has been seen missing on a full page. So every page restarts from a keyset boundary
 * instead: `lastUpdateDateTime ge T`, minus the ids already seen at exactly T, and the run ends only on a page
 * that is not full. Rows leaving the window then cannot shift anything we have not read yet. Where the keyset
 * cannot advance (more incidents share one instant than fit in a page, or a page is full of items without a
 * valid update time), the rows are read by `$filter` ranges (on `lastUpdateDateTime`, then `createdDateTime`,
 * both documented at https://learn.microsoft.com/en-us/graph/api/security-list-incidents) narrowed until each
 * comes back in one page that is not full: one page is an atomic answer. Range ends sit on millisecond
 * boundaries, so a service comparing the filter in milliseconds answers them exactly too.
 */
export class GraphIncidentSource implements IncidentSource {
  readonly api = 'graph' as const;
  private readonly pageSize: number;
  private readonly maxInstantPasses: number;
  private readonly endpoint: string;
  private isExpandDegraded = false;
  private withoutAlerts = 0;

  constructor(private readonly o: GraphIncidentSourceOptions) {
    this.pageSize = Math.min(o.pageSize ?? GRAPH_MAX_PAGE_SIZE, GRAPH_MAX_PAGE_SIZE);
    this.maxInstantPasses = o.maxInstantPasses ?? 5;
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
    const until = parseTimestamp(window.until);
    if (!until) throw new ExportError(`Invalid window end '${window.until}'.`);
    const signal = options.abortSignal;
    let lower = watermarkOf(window.from);
    let seenAtLower = new Set(window.from.idsAtWatermark);
    while (lower.ticks < until.ticks) {
      const page = await this.fetch(this.url(range(lower, until), true), signal);
      const rows = inWindow(page, lower, until, this.endpoint);
      const fresh = rows.filter((r) => isNew(r, lower, seenAtLower));
      const last = rows.at(-1);
      const full = this.isFull(page);
      if (last && last.lastUpdate.ticks > lower.ticks) {
        lower = last.lastUpdate;
        seenAtLower = new Set(rows.filter((r) => r.lastUpdate.ticks === lower.ticks).map((r) => r.id));
        yield { records: fresh, rejected: page.rejected, resumeFrom: checkpoint(lower, seenAtLower) };
        if (!full) return;
        continue;
      }
      // No row past `lower`: every row is at `lower` (or before it, let through by a coarse filter), or none.
      for (const r of fresh) seenAtLower.add(r.id);
      yield { records: fresh, rejected: page.rejected, resumeFrom: checkpoint(lower, seenAtLower) };
      if (!full) return;
      if (page.records.length + page.rejected.length === 0) {
        throw new ExportError(
          `Graph returned an empty page with an @odata.nextLink for ${this.endpoint}; refusing to loop.`,
        );
      }
      // The keyset cannot advance: a crowded instant (more rows at `lower` than a page) or, when the page has
      // items without a valid update time (quarantined), rows the keyset cannot see past. Read on by time
      // ranges that each come back in one page, then resume the keyset at a millisecond boundary.
      const next =
        page.rejected.length === 0
          ? { to: nextMs(lower.ticks, until.ticks), prefix: undefined }
          : await this.longestPrefix(lower, until, signal);
      if (next.prefix) {
        yield {
          records: inWindow(next.prefix.page, lower, next.prefix.end, this.endpoint).filter((r) =>
            isNew(r, lower, seenAtLower),
          ),
          rejected: next.prefix.page.rejected,
          resumeFrom: checkpoint(next.prefix.end, new Set()),
        };
        lower = next.prefix.end;
        seenAtLower = new Set();
      }
      if (next.to.ticks > lower.ticks) {
        yield* this.listSpan(lower, next.to, seenAtLower, signal);
        yield { records: [], resumeFrom: checkpoint(next.to, new Set()) };
        lower = next.to;
        seenAtLower = new Set();
      }
    }
  }

  /** Whether more rows may follow a page: it is full, or Graph says so. */
  private isFull(page: ParsedPage): boolean {
    return page.records.length + page.rejected.length >= this.pageSize || page.nextLink !== undefined;
  }

  /**
   * When rows the keyset cannot place (items without a valid update time) fill a page, the longest range
   * [lower, end) with `end` on a millisecond boundary that still comes back in one page (a binary search,
   * about log2 of the window in milliseconds requests), and the millisecond after it, which does not fit.
   * One page is an atomic answer, so nothing in the prefix can be skipped, whatever the order.
   */
  private async longestPrefix(
    lower: Timestamp,
    until: Timestamp,
    signal?: AbortSignal,
  ): Promise<{ prefix: { end: Timestamp; page: ParsedPage } | undefined; to: Timestamp }> {
    let lo = lower.ticks;
    let hi = until.ticks;
    let prefix: { end: Timestamp; page: ParsedPage } | undefined;
    for (;;) {
      let mid = floorMs(lo + (hi - lo) / 2n);
      if (mid <= lo) mid = floorMs(lo) + TICKS_PER_MS;
      if (mid >= hi) break;
      const end = at(mid);
      const page = await this.fetch(this.url(range(lower, end), true), signal);
      if (this.isFull(page)) hi = mid;
      else {
        lo = mid;
        prefix = { end, page };
      }
    }
    return { prefix, to: hi === until.ticks ? until : at(hi) };
  }

  /**
   * Reads every incident version updated in [from, to), a span inside one millisecond (a crowded instant),
   * except those at exactly `from` whose ids are in `seenAtFrom` (already listed). The span is split by `createdDateTime` ranges (documented as filterable) until each
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
    const whole = await this.fetch(this.url(range(from, to), false), signal);
    if (!this.isFull(whole)) {
      yield emit(whole);
      return;
    }
    const ranges: [bigint, bigint, ParsedPage][] = [];
    ranges.push(...split(CREATED_MIN, CREATED_MAX, whole));
    for (let next = ranges.pop(); next; next = ranges.pop()) {
      const [a, b] = next;
      const filter = `${range(from, to)} and createdDateTime ge ${formatTicks(a)} and createdDateTime lt ${formatTicks(b)}`;
      const page = await this.fetch(this.url(filter, false), signal);
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
      const followed = new Set([withoutExpand(this.url(filter, false))]);
      let page = pass === 1 ? first : await this.fetch(this.url(filter, false), signal);
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

  private url(filter: string, ordered: boolean): string {
    const params = new URLSearchParams();
    params.set('$filter', filter);
    if (ordered) params.set('$orderby', 'lastUpdateDateTime asc');
    params.set('$top', String(this.pageSize));
    return `${this.endpoint}?${params.toString().replace(/\+/g, '%20')}`;
  }

  /**
   * Fetches a page, with alerts expanded when asked. `$filter` with `$expand=alerts` has failed persistently
   * with HTTP 500 on large tenants and stalled other exporters for good (Elastic #18144, #18277). So when an
   * expanded page still fails after every retry, the run goes on without `$expand` and reads each incident's
   * alerts on its own ({@link withAlerts}); an incident whose alerts cannot be read either is exported without
   * them, and the run says how many.
   */
  private async fetch(url: string, abortSignal?: AbortSignal): Promise<ParsedPage> {
    if (!this.o.includeAlerts) return this.get(withoutExpand(url), abortSignal);
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
    const page = await this.get(withoutExpand(url), abortSignal);
    return { ...page, records: await Promise.all(page.records.map((r) => this.withAlerts(r, abortSignal))) };
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

  private async get(url: string, abortSignal?: AbortSignal): Promise<ParsedPage> {
    const body = await this.o.client.getJson(url, {
      headers: PREFER,
      ...(abortSignal ? { abortSignal } : {}),
    });
    return parseIncidentPage(body, 'graph', url);
  }
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
  const nextLink = page?.['@odata.nextLink'];
  if (nextLink !== undefined && nextLink !== null && typeof nextLink !== 'string') {
    throw new ExportError(`Malformed alerts page ${describeUrl(url)}: '@odata.nextLink' is not a string.`);
  }
  if (typeof nextLink === 'string' && originOf(nextLink) !== originOf(url)) {
    throw new ExportError(
      `Alerts page ${describeUrl(url)} has an @odata.nextLink to another origin (${originOf(nextLink) ?? 'invalid URL'}); it is not followed and no token is sent there.`,
    );
  }
  return {
    alerts: value.map(withoutControlAnnotations),
    nextLink: typeof nextLink === 'string' ? nextLink : undefined,
  };
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
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

function checkpoint(at: Timestamp, ids: ReadonlySet<string>): Checkpoint {
  return { watermark: at.text, idsAtWatermark: [...ids].sort() };
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

function at(ticks: bigint): Timestamp {
  return { text: formatTicks(ticks), ticks };
}

function floorMs(ticks: bigint): bigint {
  return ticks - (ticks % TICKS_PER_MS);
}

/** The next millisecond boundary after `ticks`, at most `until`. */
function nextMs(ticks: bigint, until: bigint): Timestamp {
  const next = floorMs(ticks) + TICKS_PER_MS;
  return at(next < until ? next : until);
}

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

/**
 * The rows of a keyset page inside [lower, until). A filter compared at a coarser precision than the payload
 * lets through rows of the same millisecond before `lower` (already read, or before the checkpoint) and after
 * `until` (read in the next window): they are dropped. Only a real disorder, a row earlier than the one before
 * it with both inside the window, makes the page malformed: the keyset depends on the order we asked for.
 */
function inWindow(page: ParsedPage, lower: Timestamp, until: Timestamp, endpoint: string): IncidentRecord[] {
  const rows = page.records.filter(
    (r) => r.lastUpdate.ticks >= lower.ticks && r.lastUpdate.ticks < until.ticks,
  );
  for (let i = 1; i < rows.length; i++) {
    const r = rows[i]!;
    if (r.lastUpdate.ticks < rows[i - 1]!.lastUpdate.ticks) {
      throw new ExportError(
        `Graph returned incident '${r.id}' (lastUpdateDateTime ${r.lastUpdate.text}) out of the requested order at ${endpoint}; nothing of this page was exported.`,
      );
    }
  }
  return rows;
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
