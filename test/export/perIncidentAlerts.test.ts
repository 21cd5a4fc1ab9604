import { SimulatedTenant, type Fault, type SimulatedRequest } from '../../src/sandbox/simulatedTenant';
import { SCALED_LEGACY_LIMITS, World, type ExportedVersion } from '../support/world';

const HOUR = 3_600_000;
const LIST = '/v1.0/security/incidents';
const EXPAND_FAILS: Fault = {
  status: 500,
  body: '{"error":{"code":"InternalServerError","message":"An internal server error occurred."}}',
};

/** The incident id of a request for an incident's alerts, else undefined. */
function alertsOf(url: URL): string | undefined {
  return /^\/v1\.0\/security\/incidents\/([^/]+)\/alerts$/.exec(url.pathname)?.[1];
}

/** Expanded list pages always fail with 500 (as on large tenants); everything else as `also` says. */
function expandFails(also: (request: SimulatedRequest) => Fault | undefined = () => undefined) {
  return (request: SimulatedRequest): Fault | undefined =>
    request.api === 'graph' && request.url.pathname === LIST && request.url.searchParams.has('$expand')
      ? EXPAND_FAILS
      : also(request);
}

function byId(versions: readonly ExportedVersion[]): Map<string, string> {
  return new Map(versions.map((v) => [v.id, JSON.stringify(v.raw)]));
}

describe('Graph alerts read per incident when expanded pages fail', () => {
  let tenant: SimulatedTenant;
  const worlds: World[] = [];
  beforeEach(async () => {
    // Two alerts per page of an incident's alerts, so that most incidents take more than one page.
    tenant = await SimulatedTenant.start({ seed: 7, legacyLimits: SCALED_LEGACY_LIMITS, alertsPageSize: 2 });
    const now = Date.now();
    tenant.store.generate(40, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    for (const world of worlds.splice(0)) await world.container.deleteIfExists();
    await tenant.close();
  });

  /** A world on the shared tenant, with its own container. */
  function world(): World {
    const w = new World(tenant).configure();
    worlds.push(w);
    return w;
  }

  it('exports each incident as the same bytes as from an expanded page, alerts over several pages included', async () => {
    const expanded = world();
    tenant.intercept = undefined;
    expect((await expanded.run()).outcome).toBe('succeeded');
    const reference = await expanded.exported();
    expect(reference).toHaveLength(40);

    const perIncident = world();
    const before = tenant.requests.length;
    // Control annotations on the items of the pages without $expand and on the alerts pages' items, which the
    // items of an expanded page do not carry: none of them may reach the export.
    tenant.intercept = expandFails(({ url }) =>
      url.pathname === LIST
        ? {
            kind: 'corrupt',
            mutate: (document) => {
              for (const item of document.value) item['@odata.etag'] = 'W/"datetime\'2026-11-24\'"';
            },
          }
        : undefined,
    );
    const summary = await perIncident.run();
    expect(summary).toMatchObject({ outcome: 'succeeded', alertsUnavailable: 0 });
    expect(perIncident.logs.text).toMatch(/continues without it and reads alerts per incident/);
    const exported = await perIncident.exported();

    const expected = byId(reference);
    const actual = byId(exported);
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [id, bytes] of expected) expect(actual.get(id)).toBe(bytes);
    for (const version of exported) {
      expect(Object.keys(version.raw).filter((k) => k.includes('@odata'))).toEqual([]);
      expect(Object.keys(version.raw).at(-1)).toBe('alerts');
    }

    // The incident with the most alerts took more than one alerts page, by its nextLink.
    const most = tenant.store.all().reduce((a, b) => (b.alerts.length > a.alerts.length ? b : a));
    expect(most.alerts.length).toBeGreaterThan(2);
    const requests = tenant.requests.slice(before);
    const pages = requests.filter((r) => r.path === `${LIST}/${most.id}/alerts`);
    expect(pages.map((r) => r.query.$skip)).toEqual([
      undefined,
      ...Array.from({ length: Math.ceil(most.alerts.length / 2) - 1 }, (_, i) => String(2 * (i + 1))),
    ]);
    expect(
      (exported.find((v) => v.id === String(most.id))!.raw.alerts as unknown[]).map(
        (a) => (a as { id: string }).id,
      ),
    ).toEqual(most.alerts.map((a) => a.id));
    // The entity route with $expand is not used any more.
    expect(requests.filter((r) => /^\/v1\.0\/security\/incidents\/[^/]+$/.test(r.path))).toEqual([]);
  });

  it('strips the control annotations of an alerts page and of its items', async () => {
    const expanded = world();
    expect((await expanded.run()).outcome).toBe('succeeded');
    const reference = byId(await expanded.exported());

    const perIncident = world();
    const target = tenant.store.all()[0]!;
    tenant.intercept = expandFails(({ url }) => {
      if (alertsOf(url) !== String(target.id)) return undefined;
      const alerts = (JSON.parse(reference.get(String(target.id))!) as { alerts: Record<string, unknown>[] })
        .alerts;
      return {
        status: 200,
        body: JSON.stringify({
          '@odata.context': `${tenant.origin}/v1.0/$metadata#security/incidents('${target.id}')/alerts`,
          '@odata.count': alerts.length,
          value: alerts.map((a) => ({
            '@odata.etag': 'W/"1"',
            '@odata.id': `${tenant.origin}/v1.0/security/alerts_v2('${String(a.id)}')`,
            ...a,
            'evidence@odata.count': 2,
          })),
        }),
      };
    });
    expect(await perIncident.run()).toMatchObject({ outcome: 'succeeded', alertsUnavailable: 0 });
    const actual = byId(await perIncident.exported());
    expect(actual.get(String(target.id))).toBe(reference.get(String(target.id)));
  });

  it('exports an incident without its alerts when their nextLink leaves the origin or repeats, and counts it', async () => {
    const other = await SimulatedTenant.start();
    try {
      const perIncident = world();
      const [foreign, repeating] = tenant.store.all();
      tenant.intercept = expandFails(({ url }) => {
        const id = alertsOf(url);
        const page = (nextLink: string): Fault => ({
          status: 200,
          body: JSON.stringify({ '@odata.nextLink': nextLink, value: [{ id: 'da1' }] }),
        });
        if (id === String(foreign!.id)) return page(`${other.origin}${url.pathname}?$skip=1`);
        if (id === String(repeating!.id)) return page(url.toString());
        return undefined;
      });
      const summary = await perIncident.run();
      expect(summary).toMatchObject({ outcome: 'succeeded', alertsUnavailable: 2 });
      expect(other.requests).toEqual([]);
      const exported = await perIncident.exported();
      expect(exported).toHaveLength(40);
      const without = exported.filter((v) => !('alerts' in v.raw)).map((v) => v.id);
      expect(without.sort()).toEqual([String(foreign!.id), String(repeating!.id)].sort());
      expect(perIncident.logs.text).toMatch(
        new RegExp(
          `Exporting incident '${foreign!.id}' at \\S+ without its alerts: they could not be read \\(Alerts page \\S+ has an @odata.nextLink to another origin`,
        ),
      );
      expect(perIncident.logs.text).toMatch(
        new RegExp(`incident '${repeating!.id}' at \\S+ without its alerts: .*repeats a page`),
      );
      for (const v of exported) expect(Object.keys(v.raw).filter((k) => k.startsWith('@odata'))).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
