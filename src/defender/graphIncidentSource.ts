import { watermarkOf, type Checkpoint, type IncidentRecord } from '../core/checkpoint';
import type { IncidentPage, IncidentSource, ListWindow, SourceStats } from '../core/ports';
import { parseTimestamp, type Timestamp } from '../core/timestamp';
import { ApiError, ExportError } from '../errors';
import type { Logger } from '../logger';
import { parseIncidentPage, parseIncidentRecord, type ParsedPage } from './incidentPage';
import type { JsonGetter } from './jsonGetter';

export interface GraphIncidentSourceOptions {
  /** Base URL, e.g. https://graph.microsoft.com. */
  readonly baseUrl: string;
  readonly client: JsonGetter;
  readonly includeAlerts: boolean;
  readonly logger: Logger;
  /** `$top`; Graph refuses more than 50 (api-contract.md §4.1). */
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
 * the next `$skip` page silently skips one (api-contract.md §6.7); deep `$skip` also stops working on large
 * tenants (Elastic #20234). So every page restarts from a keyset boundary instead: `lastUpdateDateTime ge T`,
 * minus the ids already seen at exactly T. Rows leaving the window then cannot shift anything we have not
 * read yet. nextLink still says whether more rows exist, and is followed (origin-checked by the client) only
 * inside a single instant that holds more incidents than one page, where no keyset can help. Such an instant
 * is read in full passes until two consecutive passes agree, so a row that shifted during one pass is caught
 * by the next.
 */
export class GraphIncidentSource implements IncidentSource {
  readonly api = 'graph' as const;
  private readonly pageSize: number;
  private readonly maxInstantPasses: number;
  private readonly endpoint: string;
  private isExpandDegraded = false;
  /** Incidents exported without their alerts in this source's runs. */
  alertsUnavailable = 0;

  constructor(private readonly o: GraphIncidentSourceOptions) {
    this.pageSize = Math.min(o.pageSize ?? GRAPH_MAX_PAGE_SIZE, GRAPH_MAX_PAGE_SIZE);
    this.maxInstantPasses = o.maxInstantPasses ?? 5;
    this.endpoint = `${o.baseUrl}/v1.0/security/incidents`;
  }

  get stats(): SourceStats {
    return this.o.client.stats;
  }

  apiNow(): number | undefined {
    return this.o.client.serverNow();
  }

  identify(raw: unknown): { id: string; lastUpdate: Timestamp } | undefined {
    const record = parseIncidentRecord(raw, this.api);
    return typeof record === 'string' ? undefined : record;
  }

  async *listPages(
    window: ListWindow,
    options: { abortSignal?: AbortSignal } = {},
  ): AsyncIterable<IncidentPage> {
    const until = parseTimestamp(window.until);
    if (!until) throw new ExportError(`Invalid window end '${window.until}'.`);
    let lower = watermarkOf(window.from);
    let seenAtLower = new Set(window.from.idsAtWatermark);
    let inclusive = true;
    for (;;) {
      const filter = `lastUpdateDateTime ${inclusive ? 'ge' : 'gt'} ${lower.text} and lastUpdateDateTime lt ${until.text}`;
      const page = await this.fetch(this.url(filter, true), options.abortSignal);
      checkOrder(page, lower, until, this.endpoint);
      const fresh = page.records.filter((r) => isNew(r, lower, seenAtLower));
      const last = page.records.at(-1);
      if (last && last.lastUpdate.ticks > lower.ticks) {
        lower = last.lastUpdate;
        seenAtLower = new Set(
          page.records.filter((r) => r.lastUpdate.ticks === lower.ticks).map((r) => r.id),
        );
        inclusive = true;
        yield { records: fresh, rejected: page.rejected, resumeFrom: checkpoint(lower, seenAtLower) };
        if (!page.nextLink) return;
        continue;
      }
      // Every row is at `lower` (or there are none).
      for (const r of fresh) seenAtLower.add(r.id);
      yield { records: fresh, rejected: page.rejected, resumeFrom: checkpoint(lower, seenAtLower) };
      if (!page.nextLink) return;
      if (page.records.length + page.rejected.length === 0) {
        throw new ExportError(
          `Graph returned an empty page with an @odata.nextLink for ${this.endpoint}; refusing to loop.`,
        );
      }
      // More rows share this instant than fit in a page: read the instant in full passes.
      yield* this.listInstant(lower, seenAtLower, options.abortSignal);
      inclusive = false;
    }
  }

  /** Reads every incident at exactly `instant`, adding their ids to `seen`, until two passes agree. */
  private async *listInstant(
    instant: Timestamp,
    seen: Set<string>,
    abortSignal?: AbortSignal,
  ): AsyncIterable<IncidentPage> {
    let previous: Set<string> | undefined;
    for (let pass = 1; pass <= this.maxInstantPasses; pass++) {
      const current = new Set<string>();
      let url: string | undefined = this.url(`lastUpdateDateTime eq ${instant.text}`, false);
      while (url) {
        const page = await this.fetch(url, abortSignal);
        const fresh: IncidentRecord[] = [];
        for (const r of page.records) {
          if (r.lastUpdate.ticks !== instant.ticks) {
            throw new ExportError(
              `Graph returned incident '${r.id}' at ${r.lastUpdate.text} for a filter on ${instant.text} at ${this.endpoint}.`,
            );
          }
          current.add(r.id);
          if (!seen.has(r.id)) {
            seen.add(r.id);
            fresh.push(r);
          }
        }
        yield { records: fresh, rejected: page.rejected, resumeFrom: checkpoint(instant, seen) };
        url = page.nextLink;
      }
      if (previous && sameSet(previous, current)) return;
      previous = current;
    }
    throw new ExportError(
      `The incidents updated at ${instant.text} kept changing over ${this.maxInstantPasses} full reads; the next run retries from the checkpoint.`,
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
   * alerts on its own (`GET /security/incidents/{id}?$expand=alerts`); an incident whose alerts cannot be read
   * either is exported without them, and the run says how many.
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

  private async withAlerts(record: IncidentRecord, abortSignal?: AbortSignal): Promise<IncidentRecord> {
    try {
      const url = `${this.endpoint}/${encodeURIComponent(record.id)}?$expand=alerts`;
      const full = await this.o.client.getJson(url, {
        headers: PREFER,
        ...(abortSignal ? { abortSignal } : {}),
      });
      const version = (full as Record<string, unknown> | null)?.lastUpdateDateTime;
      if (parseTimestamp(version)?.ticks === record.lastUpdate.ticks) return { ...record, raw: full };
    } catch (thrown) {
      if (abortSignal?.aborted) throw thrown;
    }
    this.alertsUnavailable++;
    this.o.logger.warn(
      `Exporting incident '${record.id}' at ${record.lastUpdate.text} without its alerts: they could not be read.`,
    );
    return record;
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

/** The keyset strategy depends on the order we asked for; a page out of order is malformed, not trusted. */
function checkOrder(page: ParsedPage, lower: Timestamp, until: Timestamp, endpoint: string): void {
  let previous = lower.ticks;
  for (const r of page.records) {
    if (r.lastUpdate.ticks < previous || r.lastUpdate.ticks >= until.ticks) {
      throw new ExportError(
        `Graph returned incident '${r.id}' (lastUpdateDateTime ${r.lastUpdate.text}) out of the requested order or window at ${endpoint}; nothing of this page was exported.`,
      );
    }
    previous = r.lastUpdate.ticks;
  }
}
