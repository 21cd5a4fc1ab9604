import { defenderTime, type Incident } from './incidentStore';
import { Random } from './random';
import type { Fault, PagingQuirks, SimulatedRequest, SimulatedTenant } from './simulatedTenant';

export interface ScenarioOptions {
  readonly seed: number;
  /** Probability that an incidents API request is answered with a fault. */
  readonly faultRate: number;
  /** Probability that incidents change after a page was served (while the exporter pages). */
  readonly mutationRate: number;
  /** Updates become visible up to this long after their last-update time (indexing lag); keep it below the settle delay. */
  readonly maxLagInMs: number;
  /** Pages with `$expand=alerts` always fail with 500 (seen on large tenants). */
  readonly failExpandedPages?: boolean;
  /** Also inject hostile content: items without id or update time, a nextLink to another host. */
  readonly hostile?: boolean;
  /** The scenario's clock (epoch ms). */
  readonly now: () => number;
  /** A paging quirk of the API (see PagingQuirks), kept through the final clean run: it is how the API behaves. */
  readonly nextLinkQuirk?: 'none' | 'omitOnFullPage' | 'skipCap' | 'repeat';
  /** 'ms': the API compares `$filter` datetimes truncated to milliseconds. */
  readonly filterPrecision?: 'exact' | 'ms';
  /** The legacy API returns at most this many rows per page, with a nextLink when more exist. */
  readonly legacyServerPageCap?: number | null;
  /** What Graph does with `$orderby` (undocumented): honour, ignore (newest created first) or refuse it (400). */
  readonly graphOrderBy?: 'honour' | 'ignore' | 'refuse';
  /** This many incidents, changed now, that the API sends without an update time while the scenario runs. */
  readonly unplaceable?: number | null;
}

export type FaultKind =
  | 'throttle'
  | 'serverError'
  | 'unavailable'
  | 'reset'
  | 'hang'
  | 'truncated'
  | 'invalidJson'
  | 'missingValue'
  | 'missingField'
  | 'foreignNextLink'
  | 'expandFailure'
  | 'unplaceable';

/**
 * Scriptable, seedable misbehaviour of the simulated tenant: history (changes, ties, indexing lag), faults
 * (429 bursts, 5xx, resets, hangs, cut or invalid JSON) and hostile content (items without id or update time,
 * a nextLink to another host). Every run of a scenario can be replayed from its seed.
 */
export class Scenario {
  readonly injected: Partial<Record<FaultKind, number>> = {};
  /** Versions the API sent without a usable id or update time (the exporter must quarantine them). */
  readonly corrupted: { id: number; lastUpdateTime: string }[] = [];
  private readonly random: Random;
  private enabled = true;
  /** Ids the API sends without an update time (see {@link unplaceable}). */
  private readonly unplaceableIds = new Set<number>();

  constructor(
    private readonly tenant: SimulatedTenant,
    private readonly o: ScenarioOptions,
  ) {
    this.random = new Random(o.seed);
    tenant.intercept = (request) =>
      this.enabled ? (this.fault(request) ?? this.hideUpdateTimes(request)) : undefined;
    tenant.quirks = quirksOf(o);
    tenant.afterPage = () => {
      if (this.enabled && this.random.chance(o.mutationRate)) this.change(this.random.int(1, 3));
    };
    if (o.unplaceable) this.unplaceable(o.unplaceable);
  }

  /**
   * `count` incidents changed at consecutive instants from `from` (default: now) that the API sends without
   * their update time while the scenario runs: a run of items the exporter can only quarantine, a full page of
   * them when `count` reaches the page size.
   */
  unplaceable(count: number, from?: number): Incident[] {
    const start = from ?? this.o.now() - count;
    return Array.from({ length: count }, (_, i) => {
      const incident = this.tenant.store.add({ lastUpdateTime: new Date(start + i) });
      this.unplaceableIds.add(incident.id);
      return incident;
    });
  }

  /** Stops all faults and mutations (the final clean run). */
  disable(): void {
    this.enabled = false;
  }

  /** The last-update time of a change made now: up to `maxLagInMs` in the past (late indexing). */
  stamp(): string {
    return defenderTime(
      this.o.now() - this.random.int(0, Math.max(0, this.o.maxLagInMs - 1)),
      this.random.int(0, 9999),
    );
  }

  /** Creates or updates `count` incidents now. */
  change(count: number): Incident[] {
    const all = this.tenant.store.all();
    const changed: Incident[] = [];
    for (let i = 0; i < count; i++) {
      changed.push(
        all.length > 0 && this.random.chance(0.6)
          ? this.tenant.store.update(this.random.pick(all).id, { lastUpdateTime: this.stamp() })
          : this.tenant.store.add({ lastUpdateTime: this.stamp() }),
      );
    }
    return changed;
  }

  /** `count` incidents changed at exactly one instant (more than a page, often). */
  tie(count: number): Incident[] {
    const instant = this.stamp();
    const all = this.tenant.store.all();
    return Array.from({ length: count }, () =>
      all.length > 0 && this.random.chance(0.5)
        ? this.tenant.store.update(this.random.pick(all).id, { lastUpdateTime: instant })
        : this.tenant.store.add({ lastUpdateTime: instant }),
    );
  }

  /** An incident of about `bytes` (a 4 MB incident, say). */
  huge(bytes: number): Incident {
    const incident = this.tenant.store.add({ lastUpdateTime: this.stamp() });
    const alert = incident.alerts[0];
    if (alert) alert.description = 'Ünïcödé 🛡 '.repeat(Math.ceil(bytes / 14));
    return incident;
  }

  private hideUpdateTimes(request: SimulatedRequest): Fault | undefined {
    if (this.unplaceableIds.size === 0) return undefined;
    const path = request.url.pathname;
    if (path !== '/v1.0/security/incidents' && path !== '/api/incidents') return undefined;
    return {
      kind: 'corrupt',
      mutate: (document) => {
        for (const item of document.value) {
          const id = Number(item.id ?? item.incidentId);
          const lastUpdateTime = item.lastUpdateDateTime ?? item.lastUpdateTime;
          if (!this.unplaceableIds.has(id) || typeof lastUpdateTime !== 'string') continue;
          this.count('unplaceable');
          this.corrupted.push({ id, lastUpdateTime });
          delete item.lastUpdateDateTime;
          delete item.lastUpdateTime;
        }
      },
    };
  }

  private count(kind: FaultKind): void {
    this.injected[kind] = (this.injected[kind] ?? 0) + 1;
  }

  private fault(request: SimulatedRequest): Fault | undefined {
    if (request.api !== 'graph' && request.api !== 'legacy') return undefined;
    const isListPage =
      request.url.pathname === '/v1.0/security/incidents' || request.url.pathname === '/api/incidents';
    if (this.o.failExpandedPages && isListPage && request.url.searchParams.has('$expand')) {
      this.count('expandFailure');
      return {
        status: 500,
        body: '{"error":{"code":"InternalServerError","message":"An internal server error occurred."}}',
      };
    }
    if (!this.random.chance(this.o.faultRate)) return undefined;
    const kinds: FaultKind[] = [
      'throttle',
      'throttle',
      'serverError',
      'unavailable',
      'reset',
      'truncated',
      'invalidJson',
      'hang',
    ];
    if (this.o.hostile && isListPage)
      kinds.push('missingValue', 'missingField', 'missingField', 'foreignNextLink');
    const kind = this.random.pick(kinds);
    this.count(kind);
    switch (kind) {
      case 'throttle':
        return {
          status: 429,
          headers: { 'Retry-After': String(this.random.int(1, 3)) },
          body: '{"error":{"code":"TooManyRequests","message":"Too many requests. You can send requests again in 2 seconds."}}',
        };
      case 'serverError':
        return { status: this.random.pick([500, 502, 504]) };
      case 'unavailable':
        return { status: 503, headers: { 'Retry-After': '1' } };
      case 'reset':
        return { kind: 'reset' };
      case 'hang':
        return { kind: 'hang' };
      case 'truncated':
        return { kind: 'truncate' };
      case 'invalidJson':
        return { status: 200, body: '{"value":[{"id":"1","lastUpdateDateTime":' };
      case 'missingValue':
        return { status: 200, body: '{"@odata.context":"https://127.0.0.1/$metadata#security/incidents"}' };
      case 'foreignNextLink':
        return { kind: 'nextLink', url: 'https://127.0.0.2:1/v1.0/security/incidents?$skip=50' };
      default:
        return {
          kind: 'corrupt',
          mutate: (document) => {
            const item =
              document.value.length > 0
                ? document.value[this.random.int(0, document.value.length - 1)]
                : undefined;
            if (!item) return;
            const id = Number(item.id ?? item.incidentId);
            const lastUpdateTime = String(item.lastUpdateDateTime ?? item.lastUpdateTime);
            this.corrupted.push({ id, lastUpdateTime });
            if (this.random.chance(0.5)) {
              delete item.lastUpdateDateTime;
              delete item.lastUpdateTime;
            } else {
              delete item.id;
              delete item.incidentId;
            }
          },
        };
    }
  }
}

function quirksOf(o: ScenarioOptions): PagingQuirks {
  return {
    ...(o.nextLinkQuirk === 'omitOnFullPage' ? { omitNextLinkOnFullPage: 0.5 } : {}),
    ...(o.nextLinkQuirk === 'skipCap' ? { skipCap: 10 } : {}),
    ...(o.nextLinkQuirk === 'repeat' ? { repeatNextLink: true } : {}),
    ...(o.filterPrecision ? { filterPrecision: o.filterPrecision } : {}),
    ...(o.legacyServerPageCap ? { legacyServerPageCap: o.legacyServerPageCap } : {}),
    ...(o.graphOrderBy ? { graphOrderBy: o.graphOrderBy } : {}),
  };
}
