import { randomUUID } from 'node:crypto';
import { parseTimestamp } from '../export/timestamp';
import { createdOf, lastUpdateOf, type Incident, type IncidentStore } from './incidentStore';
import { toGraph, toLegacy } from './incidentWire';
import { compileFilter, FilterSyntaxError } from './odataFilter';
import { Random } from './random';
import { graphError, json } from './routeReplies';
import type { Fault, RouteRequest, RouteResponse } from './routeExchange';

/** Paging misbehaviours of the incidents APIs, reported or possible (all off by default). */
export interface PagingQuirks {
  /**
   * Graph omits `@odata.nextLink` on a full page although more rows follow: always, or with this probability.
   * (Not the legacy API: there a capped page without a nextLink cannot be told from the last one.)
   */
  omitNextLinkOnFullPage?: 'always' | number;
  /** No `@odata.nextLink` once it would reach `$skip >= skipCap` (a deep-paging cap). */
  skipCap?: number;
  /** The `@odata.nextLink` repeats the request's own URL (same rows again). */
  repeatNextLink?: boolean;
  /** 'ms': `$filter` compares datetimes truncated to milliseconds, while payloads carry 7 fractional digits. */
  filterPrecision?: 'exact' | 'ms';
  /** The legacy API returns at most this many rows per page (whatever `$top` asks) and a nextLink when more exist. */
  legacyServerPageCap?: number;
  /**
   * What Graph does with `$orderby`, which it does not document: honour it (as observed), ignore it (its
   * documented default order, newest created first), or refuse it with 400.
   */
  graphOrderBy?: 'honour' | 'ignore' | 'refuse';
}

/** What the incidents routes read from their tenant, at each request (a test may swap the store or quirks). */
export interface IncidentsRouteContext {
  readonly tenantId: string;
  readonly origin: string;
  readonly store: IncidentStore;
  readonly quirks: PagingQuirks;
  readonly afterPage: ((api: 'graph' | 'legacy', pageIndex: number) => void) | undefined;
  clock(): number;
  tokenFor(req: RouteRequest, audience: string): 'ok' | 'missing' | 'invalid';
  /** The application roles (`roles` claim) of the request's token. */
  tokenRoles(req: RouteRequest): readonly string[];
}

export interface IncidentsRouteOptions {
  readonly seed?: number;
  readonly legacyLimits?: { perMinute: number; perHour: number; minuteInMs?: number; hourInMs?: number };
  readonly legacyNextLink?: boolean;
  /** A Graph rate limit per app, enforced with 429 + Retry-After (Graph publishes none for incidents). */
  readonly graphLimit?: GraphLimit;
  /** Alerts per page of an incident's alerts when the request gives no `$top` (default 50). */
  readonly alertsPageSize?: number;
}

/**
 * A sliding-window limit of `perWindow` Graph requests (lists and alerts alike) per `windowInMs`. A refused
 * request gets 429 `TooManyRequests` with `Retry-After` in whole seconds, as Graph sends it
 * (https://learn.microsoft.com/en-us/graph/throttling), or with `retry-after-ms` when `retryAfterInMs` is set:
 * a bench that scales time down cannot say a scaled second in `Retry-After`.
 */
export interface GraphLimit {
  readonly perWindow: number;
  readonly windowInMs: number;
  readonly retryAfterInMs?: boolean;
}

/**
 * Microsoft Graph `/v1.0/security/incidents` and the legacy `/api/incidents`, both facades over one
 * {@link IncidentStore}: bearer tokens, `$filter`/`$orderby`/`$top`/`$skip`, paging and its quirks, the legacy
 * API's rate limits, and the corrupt/truncate/nextLink faults that act on a page.
 */
export class IncidentsRoute {
  private readonly quirkRandom: Random;
  private readonly pages: Record<'graph' | 'legacy', number> = { graph: 0, legacy: 0 };
  private readonly legacyCalls: number[] = [];
  private readonly graphCalls: number[] = [];
  /** Requests refused with 429 by the Graph limit. */
  graphThrottled = 0;
  private sortCache:
    | {
        store: IncidentStore;
        revision: number;
        orders: Map<string, { incidents: Incident[]; ticks: bigint[] }>;
      }
    | undefined;
  private queryCache:
    { key: string; store: IncidentStore; revision: number; matching: Incident[] } | undefined;

  constructor(
    private readonly c: IncidentsRouteContext,
    private readonly o: IncidentsRouteOptions,
  ) {
    this.quirkRandom = new Random((o.seed ?? 1) + 1);
  }

  handle(
    api: 'graph' | 'legacy',
    req: RouteRequest,
    res: RouteResponse,
    url: URL,
    fault: Fault | undefined,
  ): void {
    const auth = this.c.tokenFor(req, this.c.origin);
    if (auth !== 'ok') {
      if (api === 'graph') {
        res.setHeader(
          'WWW-Authenticate',
          'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"',
        );
        graphError(
          this.c.clock(),
          req,
          res,
          401,
          'InvalidAuthenticationToken',
          'Access token has expired or is not yet valid.',
        );
      } else {
        json(res, 401, {
          error: { code: 'Unauthorized', message: 'Unauthorized', target: randomUUID() },
        });
      }
      return;
    }
    if (!this.hasRequiredRole(api, req, res)) return;
    if (api === 'legacy' && !this.allowLegacyCall(res)) return;
    if (api === 'graph' && this.o.graphLimit && !this.allowGraphCall(this.o.graphLimit, req, res)) return;
    const alertsOf = /^\/v1\.0\/security\/incidents\/([^/]+)\/alerts$/.exec(url.pathname);
    if (api === 'graph' && alertsOf) {
      this.answerAlerts(req, res, url, decodeURIComponent(alertsOf[1]!), fault);
      return;
    }
    const byId = /^\/v1\.0\/security\/incidents\/([^/]+)$/.exec(url.pathname);
    if (api === 'graph' && byId) {
      const incident = this.c.store.get(decodeURIComponent(byId[1]!));
      if (!incident)
        graphError(this.c.clock(), req, res, 404, 'NotFound', `Incident ${byId[1]} was not found`);
      else {
        const expand = /alerts/.test(url.searchParams.get('$expand') ?? '');
        const includeUnknown = /include-unknown-enum-members/.test(String(req.headers.prefer ?? ''));
        json(
          res,
          200,
          toGraph(incident, {
            tenantId: this.c.tenantId,
            expandAlerts: expand,
            includeUnknownEnums: includeUnknown,
          }),
        );
      }
      return;
    }
    const query = new Map<string, string>();
    for (const [k, v] of url.searchParams) query.set(k.toLowerCase(), v);
    const maxTop = api === 'graph' ? 50 : 100;
    const top = query.has('$top') ? Number(query.get('$top')) : maxTop;
    const skip = Number(query.get('$skip') ?? 0);
    if (!Number.isInteger(top) || top < 0 || top > maxTop) {
      const message = `The limit of '${maxTop}' for Top query has been exceeded. The value from the incoming request is '${query.get('$top')}'.`;
      if (api === 'graph')
        graphError(
          this.c.clock(),
          req,
          res,
          400,
          '',
          `The query specified in the URI is not valid. ${message}`,
        );
      else
        json(res, 400, {
          error: { code: 'ODataError', message: `Invalid OData URI query: ${message}`, target: randomUUID() },
        });
      return;
    }
    if (api === 'graph' && query.has('$orderby') && this.c.quirks.graphOrderBy === 'refuse') {
      graphError(
        this.c.clock(),
        req,
        res,
        400,
        'BadRequest',
        `Query option '$orderby' is not allowed. To allow it, set the 'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings.`,
      );
      return;
    }
    if (api === 'legacy') {
      const unsupported = ['$orderby', '$expand', '$select', '$count'].find((k) => query.has(k));
      if (unsupported) {
        json(res, 400, {
          error: {
            code: 'ODataError',
            message: `Invalid OData URI query: ${unsupported} is not supported.`,
            target: randomUUID(),
          },
        });
        return;
      }
    }
    const fields = api === 'graph' ? GRAPH_FIELDS : LEGACY_FIELDS;
    let predicate: (i: Incident) => boolean = () => true;
    const filter = query.get('$filter');
    if (filter) {
      try {
        const compiled = compileFilter(
          filter,
          Object.keys(fields),
          api === 'graph' ? ['lastUpdateDateTime', 'createdDateTime'] : ['lastUpdateTime', 'createdTime'],
          this.c.quirks.filterPrecision,
        );
        // One view whose fields are computed on demand for the incident at hand: a filter reads one or two.
        let current: Incident | undefined;
        const view = Object.defineProperties(
          {},
          Object.fromEntries(
            Object.entries(fields).map(([name, get]) => [
              name,
              { get: () => get(current!), enumerable: true },
            ]),
          ),
        ) as Record<string, string | null>;
        predicate = (i) => {
          current = i;
          return compiled(view);
        };
      } catch (e) {
        if (!(e instanceof FilterSyntaxError)) throw e;
        if (api === 'graph')
          graphError(this.c.clock(), req, res, 400, 'BadRequest', `Invalid filter clause: ${e.message}`);
        else
          json(res, 400, {
            error: {
              code: 'ODataError',
              message: `Invalid OData URI query: ${e.message}`,
              target: randomUUID(),
            },
          });
        return;
      }
    }
    const wantCount = query.get('$count') === 'true';
    const cap = api === 'legacy' ? this.c.quirks.legacyServerPageCap : undefined;
    const served = cap !== undefined && cap < top ? cap : top;
    const { page, hasMore, count } = this.query(api, url, predicate, { skip, top: served, wantCount });
    const includeUnknown = /include-unknown-enum-members/.test(String(req.headers.prefer ?? ''));
    const expand = api === 'graph' && /alerts/.test(query.get('$expand') ?? '');
    const value = page.map((i) =>
      api === 'graph'
        ? toGraph(i, { tenantId: this.c.tenantId, expandAlerts: expand, includeUnknownEnums: includeUnknown })
        : toLegacy(i),
    );
    const next = new URL(url.pathname, this.c.origin);
    for (const [k, v] of url.searchParams) if (k.toLowerCase() !== '$skip') next.searchParams.set(k, v);
    next.searchParams.set('$skip', String(skip + page.length));
    let nextLink =
      hasMore && (api === 'graph' || this.o.legacyNextLink || served < top) ? next.toString() : undefined;
    nextLink = this.quirkyNextLink(
      nextLink,
      url,
      api === 'graph' && page.length === served,
      skip + page.length,
    );
    if (fault && 'kind' in fault && fault.kind === 'nextLink') nextLink = fault.url;
    const document: Record<string, unknown> = {
      '@odata.context':
        api === 'graph'
          ? `${this.c.origin}/v1.0/$metadata#security/incidents${expand ? '(alerts())' : ''}`
          : `${this.c.origin}/api/$metadata#Incidents`,
      ...(wantCount ? { '@odata.count': count } : {}),
      ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
      value,
    };
    if (fault && 'kind' in fault && fault.kind === 'corrupt')
      fault.mutate(document as { value: Record<string, unknown>[] });
    const pageIndex = this.pages[api]++;
    res.onSent(() => this.c.afterPage?.(api, pageIndex));
    const text = JSON.stringify(document);
    const headers: Record<string, string> = {
      'Content-Type':
        api === 'graph'
          ? 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'
          : 'application/json; odata.metadata=minimal',
      'request-id': randomUUID(),
      'client-request-id': String(req.headers['client-request-id'] ?? randomUUID()),
    };
    if (fault && 'kind' in fault && fault.kind === 'truncate') {
      res.writeHead(200, headers);
      res.end(text);
      res.delivery = 'truncated';
      return;
    }
    res.writeHead(200, headers);
    res.end(text);
  }

  /**
   * A token without one of the API's application permissions gets 403 with the API's own message (Graph:
   * https://learn.microsoft.com/en-us/graph/api/security-list-incidents#permissions; legacy:
   * https://learn.microsoft.com/en-us/defender-xdr/api-list-incidents#permissions).
   */
  private hasRequiredRole(api: 'graph' | 'legacy', req: RouteRequest, res: RouteResponse): boolean {
    const roles = this.c.tokenRoles(req);
    const required = REQUIRED_ROLES[api];
    if (roles.some((r) => required.includes(r))) return true;
    if (api === 'graph')
      graphError(
        this.c.clock(),
        req,
        res,
        403,
        'Forbidden',
        `Missing application roles. API required roles: ${required.join(',')}, application roles: ${roles.join(',')}.`,
      );
    else
      json(res, 403, {
        error: {
          code: 'Forbidden',
          message: `The application does not have any of the required application permissions (${required.join(', ')}) to access the resource.`,
          target: randomUUID(),
        },
      });
    return false;
  }

  /**
   * `GET /v1.0/security/incidents/{id}/alerts`: the incident's alerts as the expanded list embeds them, paged by
   * `$top` (default {@link IncidentsRouteOptions.alertsPageSize}) and `$skip` with an `@odata.nextLink`
   * (docs/incidents-api.md#alerts). A cut body fault applies.
   */
  private answerAlerts(
    req: RouteRequest,
    res: RouteResponse,
    url: URL,
    id: string,
    fault: Fault | undefined,
  ): void {
    const incident = this.c.store.get(id);
    if (!incident) {
      graphError(this.c.clock(), req, res, 404, 'NotFound', `Incident ${id} was not found`);
      return;
    }
    const top = Number(url.searchParams.get('$top') ?? this.o.alertsPageSize ?? 50);
    const skip = Number(url.searchParams.get('$skip') ?? 0);
    if (!Number.isInteger(top) || top < 1 || !Number.isInteger(skip) || skip < 0) {
      graphError(this.c.clock(), req, res, 400, 'BadRequest', 'Invalid $top or $skip.');
      return;
    }
    const includeUnknown = /include-unknown-enum-members/.test(String(req.headers.prefer ?? ''));
    const alerts = toGraph(incident, {
      tenantId: this.c.tenantId,
      expandAlerts: true,
      includeUnknownEnums: includeUnknown,
    }).alerts as unknown[];
    const page = alerts.slice(skip, skip + top);
    const next = new URL(url.pathname, this.c.origin);
    for (const [k, v] of url.searchParams) if (k !== '$skip') next.searchParams.set(k, v);
    next.searchParams.set('$skip', String(skip + page.length));
    const text = JSON.stringify({
      '@odata.context': `${this.c.origin}/v1.0/$metadata#security/incidents('${id}')/alerts`,
      ...(skip + page.length < alerts.length ? { '@odata.nextLink': next.toString() } : {}),
      value: page,
    });
    res.writeHead(200, {
      'Content-Type':
        'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
      'request-id': randomUUID(),
      'client-request-id': String(req.headers['client-request-id'] ?? randomUUID()),
    });
    res.end(text);
    if (fault && 'kind' in fault && fault.kind === 'truncate') res.delivery = 'truncated';
  }

  private quirkyNextLink(
    nextLink: string | undefined,
    url: URL,
    /** A full Graph page. */
    isFull: boolean,
    nextSkip: number,
  ): string | undefined {
    const q = this.c.quirks;
    if (!nextLink) return undefined;
    if (q.skipCap !== undefined && nextSkip >= q.skipCap) return undefined;
    const omit = q.omitNextLinkOnFullPage;
    if (isFull && (omit === 'always' || (omit !== undefined && this.quirkRandom.chance(omit))))
      return undefined;
    return q.repeatNextLink ? new URL(`${url.pathname}${url.search}`, this.c.origin).toString() : nextLink;
  }

  private allowGraphCall(limit: GraphLimit, req: RouteRequest, res: RouteResponse): boolean {
    const now = this.c.clock();
    const calls = this.graphCalls;
    while (calls.length > 0 && calls[0]! <= now - limit.windowInMs) calls.shift();
    if (calls.length < limit.perWindow) {
      calls.push(now);
      return true;
    }
    this.graphThrottled++;
    const waitInMs = Math.max(1, calls[calls.length - limit.perWindow]! + limit.windowInMs - now);
    if (limit.retryAfterInMs) res.setHeader('retry-after-ms', String(Math.ceil(waitInMs)));
    else res.setHeader('Retry-After', String(Math.max(1, Math.ceil(waitInMs / 1000))));
    graphError(now, req, res, 429, 'TooManyRequests', 'Too many requests.');
    return false;
  }

  /** Two sliding windows per app, as the legacy API enforces them (https://learn.microsoft.com/defender-xdr/api-list-incidents). */
  private allowLegacyCall(res: RouteResponse): boolean {
    const limits = this.o.legacyLimits ?? { perMinute: 50, perHour: 1500 };
    const minute = limits.minuteInMs ?? 60_000;
    const hour = limits.hourInMs ?? 3_600_000;
    const now = this.c.clock();
    while (this.legacyCalls.length > 0 && this.legacyCalls[0]! <= now - hour) this.legacyCalls.shift();
    const lastMinute = this.legacyCalls.filter((t) => t > now - minute);
    const overMinute = lastMinute.length >= limits.perMinute;
    const overHour = this.legacyCalls.length >= limits.perHour;
    if (!overMinute && !overHour) {
      this.legacyCalls.push(now);
      return true;
    }
    const resetAt = overHour
      ? this.legacyCalls[this.legacyCalls.length - limits.perHour]! + hour
      : lastMinute[lastMinute.length - limits.perMinute]! + minute;
    const seconds = Math.max(1, Math.ceil((resetAt - now) / 1000));
    res.setHeader('Retry-After', String(seconds));
    json(res, 429, {
      error: {
        code: '429',
        message: `API calls quota exceeded! Maximum allowed ${overHour ? `${limits.perHour} per 01:00:00` : `${limits.perMinute} per 00:01:00`} for the key Destination+TenantID+AppID. You can send requests again in ${seconds} seconds.`,
        target: randomUUID(),
      },
    });
    return false;
  }

  /**
   * One page of the incidents a list request matches, in its order, and whether more follow. Pages of one
   * query differ only in `$skip` and `$top`, so the full result is kept until the store changes; and a Graph
   * query ordered by `lastUpdateDateTime asc` whose filter bounds that field (a conjunction, as the exporter
   * sends) is answered from a binary search of the sorted store. Paging a large tenant stays cheap.
   */
  private query(
    api: 'graph' | 'legacy',
    url: URL,
    predicate: (i: Incident) => boolean,
    { skip, top, wantCount }: { skip: number; top: number; wantCount: boolean },
  ): { page: Incident[]; hasMore: boolean; count: number | undefined } {
    const orderby =
      api === 'graph' && this.c.quirks.graphOrderBy !== 'ignore'
        ? (url.searchParams.get('$orderby') ?? undefined)
        : undefined;
    const field = api === 'graph' ? 'lastUpdateDateTime' : 'lastUpdateTime';
    const exact = timeBounds(url.searchParams.get('$filter'), field);
    // A coarse filter matches the whole millisecond of each bound: widen the scan to it.
    const bounds =
      exact && this.c.quirks.filterPrecision === 'ms'
        ? {
            from: exact.from === undefined ? undefined : exact.from - (exact.from % 10_000n),
            to: exact.to === undefined ? undefined : exact.to - (exact.to % 10_000n) + 9_999n,
          }
        : exact;
    if (bounds) {
      // A filter that bounds the update time (a conjunction, as the exporter sends) is answered from a binary
      // search of the store sorted by update time; the rows found are then put in the order asked for.
      const byUpdate = this.sorted(ASCENDING_UPDATE);
      const inOrder = isAscendingUpdate(orderby);
      const matching: Incident[] = [];
      for (let i = lowerBound(byUpdate.ticks, bounds.from); i < byUpdate.incidents.length; i++) {
        if (bounds.to !== undefined && byUpdate.ticks[i]! > bounds.to) break;
        const incident = byUpdate.incidents[i]!;
        if (!predicate(incident)) continue;
        matching.push(incident);
        if (inOrder && !wantCount && matching.length > skip + top) break;
      }
      if (!inOrder) matching.sort(order(orderby));
      const page = matching.slice(skip, skip + top);
      return {
        page,
        hasMore: skip + page.length < matching.length,
        count: wantCount ? matching.length : undefined,
      };
    }
    const sorted = this.sorted(orderby);
    const params = [...url.searchParams].filter(([k]) => !['$skip', '$top'].includes(k.toLowerCase()));
    const key = `${api} ${url.pathname} ${orderby ?? ''} ${JSON.stringify(params)}`;
    let cached = this.queryCache;
    if (
      !cached ||
      cached.key !== key ||
      cached.store !== this.c.store ||
      cached.revision !== this.c.store.revision
    ) {
      // Filtering keeps the order, so one sort serves every query until the store changes.
      cached = {
        key,
        store: this.c.store,
        revision: this.c.store.revision,
        matching: sorted.incidents.filter(predicate),
      };
      this.queryCache = cached;
    }
    const page = cached.matching.slice(skip, skip + top);
    return { page, hasMore: skip + page.length < cached.matching.length, count: cached.matching.length };
  }

  /** The store in one order (kept until the store changes), with each incident's update time in ticks. */
  private sorted(orderby: string | undefined): { incidents: Incident[]; ticks: bigint[] } {
    if (this.sortCache?.store !== this.c.store || this.sortCache.revision !== this.c.store.revision)
      this.sortCache = { store: this.c.store, revision: this.c.store.revision, orders: new Map() };
    const key = orderby ?? '';
    let sorted = this.sortCache.orders.get(key);
    if (!sorted) {
      const incidents = this.c.store.all().sort(order(orderby));
      sorted = { incidents, ticks: incidents.map((i) => lastUpdateOf(i).ticks) };
      this.sortCache.orders.set(key, sorted);
    }
    return sorted;
  }
}

const ASCENDING_UPDATE = 'lastUpdateDateTime asc';

function isAscendingUpdate(orderby: string | undefined): boolean {
  return /^lastUpdateDateTime\s+asc$/i.test((orderby ?? '').trim());
}

/** The application permissions each API accepts, as its 403 names them. */
const REQUIRED_ROLES: Record<'graph' | 'legacy', readonly string[]> = {
  graph: ['SecurityIncident.Read.All', 'SecurityIncident.ReadWrite.All'],
  legacy: ['Incident.ReadWrite.All', 'Incident.Read.All'],
};

const GRAPH_FIELDS: Record<string, (i: Incident) => string | null> = {
  lastUpdateDateTime: (i) => i.lastUpdateTime,
  createdDateTime: (i) => i.createdTime,
  status: (i) => i.status,
  severity: (i) => i.severity,
  assignedTo: (i) => i.assignedTo,
  classification: (i) => i.classification,
  determination: (i) => i.determination,
};

const LEGACY_FIELDS: Record<string, (i: Incident) => string | null> = {
  lastUpdateTime: (i) => i.lastUpdateTime,
  createdTime: (i) => i.createdTime,
  status: (i) => i.status,
  assignedTo: (i) => i.assignedTo,
};

/** Default order newest created first; Graph also orders by either timestamp, id breaking ties. */
function order(orderby: string | undefined): (a: Incident, b: Incident) => number {
  const [field = 'createdDateTime', direction = 'desc'] = (orderby ?? '').trim().split(/\s+/).filter(Boolean);
  const key =
    field === 'lastUpdateDateTime'
      ? (i: Incident) => lastUpdateOf(i).ticks
      : (i: Incident) => createdOf(i).ticks;
  const sign = direction.toLowerCase() === 'asc' ? 1 : -1;
  const keys = new Map<Incident, bigint>();
  const keyOf = (i: Incident): bigint => {
    let k = keys.get(i);
    if (k === undefined) keys.set(i, (k = key(i)));
    return k;
  };
  return (a, b) => {
    const ka = keyOf(a);
    const kb = keyOf(b);
    if (ka !== kb) return ka < kb ? -sign : sign;
    return (a.id - b.id) * sign;
  };
}

/**
 * The range of the update time (`field`) a filter allows, when it is a plain conjunction: a scan of the store
 * sorted by that time may start and stop there (the filter itself still decides each incident).
 */
function timeBounds(
  filter: string | null,
  field: string,
): { from: bigint | undefined; to: bigint | undefined } | undefined {
  if (!filter) return undefined;
  if (/\bor\b|\bnot\b|[()]/i.test(filter)) return undefined;
  let from: bigint | undefined;
  let to: bigint | undefined;
  for (const m of filter.matchAll(new RegExp(`\\b${field}\\s+(ge|gt|eq|lt|le)\\s+(\\S+)`, 'gi'))) {
    const ticks = parseTimestamp(m[2])?.ticks;
    if (ticks === undefined) return undefined;
    const op = m[1]!.toLowerCase();
    if (op !== 'lt' && op !== 'le' && (from === undefined || ticks > from)) from = ticks;
    if (op !== 'ge' && op !== 'gt' && (to === undefined || ticks < to)) to = ticks;
  }
  return from === undefined && to === undefined ? undefined : { from, to };
}

/** The first index whose value is at or after `value` (0 when there is no bound). */
function lowerBound(values: readonly bigint[], value: bigint | undefined): number {
  if (value === undefined) return 0;
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
