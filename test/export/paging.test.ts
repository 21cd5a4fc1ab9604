import { parseTimestamp } from '../../src/export/timestamp';
import type { RunSummary } from '../../src/export/exportRun';
import { Scenario } from '../../src/sandbox/scenario';
import type { PagingQuirks } from '../../src/sandbox/simulatedTenant';
import { duplicates, World } from '../support/world';

/**
 * Incident sources against APIs that page badly: nextLinks missing, capped or repeating, pages shorter than
 * `$top`, full pages of items without an update time, filters compared at a coarser precision than the payload.
 * Each case asserts that every latest version is exported once, and that the run ends within a bounded number
 * of requests with a clear outcome.
 */
const HOUR = 3_600_000;

/** The latest version of every incident updated before `untilMs`, as the store holds it. */
function expectedVersions(world: World, untilMs: number): string[] {
  return world.tenant.store
    .all()
    .filter((i) => Number(parseTimestamp(i.lastUpdateTime)!.ticks / 10_000n) < untilMs)
    .map((i) => `${i.id}@${parseTimestamp(i.lastUpdateTime)!.ticks}`)
    .sort();
}

async function exportedVersions(world: World): Promise<string[]> {
  const exported = await world.exported();
  expect(duplicates(exported)).toEqual([]);
  return exported.map((v) => `${v.id}@${parseTimestamp(v.lastUpdate)!.ticks}`).sort();
}

/** A clock that moves a second per incidents page, so that a run that spins meets its time budget soon. */
function pageClock(world: World): { now: () => number } {
  let now = Date.now();
  world.tenant.afterPage = () => {
    now += 1_000;
  };
  return { now: () => now };
}

/**
 * Configures a world whose Graph run spins into a budget of EXPORT_MAX_RUN_DURATION=PT5M (300 pages) at the
 * most. Legacy runs keep the real clock: their rate limiter waits on it.
 */
function withBudget(world: World, api: 'graph' | 'legacy', composition: { pageSize?: number } = {}): void {
  world.configure({
    api,
    settings: { EXPORT_MAX_RUN_DURATION: 'PT5M', EXPORT_INCLUDE_ALERTS: 'false' },
    composition: { ...(api === 'graph' ? { clock: pageClock(world) } : {}), ...composition },
  });
}

/** Incidents sharing one instant with 7 fractional digits, created at distinct times. */
function crowd(world: World, count: number, atMs: number): string {
  const instant = new Date(atMs).toISOString().replace('Z', '1234Z');
  for (let i = 0; i < count; i++) world.tenant.store.add({ lastUpdateTime: instant });
  return instant;
}

describe('Graph without a trustworthy @odata.nextLink (item 8)', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
  });
  afterEach(async () => {
    await world.close();
  });

  it('does not take a full page without a nextLink for the end of the window', async () => {
    const now = Date.now();
    world.tenant.store.generate(120, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
    world.tenant.quirks = { omitNextLinkOnFullPage: 'always' };
    withBudget(world, 'graph');
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
    // Time slices that each fit one page: about one page per 50 versions, a few narrowed or sparse slices more.
    expect(summary.requests).toBeLessThan(12);
  });

  it.each<[string, PagingQuirks]>([
    ['a nextLink that stops at a $skip cap', { skipCap: 100 }],
    ['no nextLink on a full page', { omitNextLinkOnFullPage: 'always' }],
    ['a nextLink missing on some full pages', { omitNextLinkOnFullPage: 0.5 }],
  ])('reads a crowded instant completely despite %s', async (_, quirks) => {
    const now = Date.now();
    crowd(world, 230, now - 3 * HOUR);
    world.tenant.store.generate(40, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
    world.tenant.quirks = quirks;
    withBudget(world, 'graph');
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
    expect(summary.requests).toBeLessThan(40);
  });

  it('loses nothing of a crowded instant when its rows move while it is read', async () => {
    const now = Date.now();
    crowd(world, 120, now - 3 * HOUR);
    world.tenant.store.generate(20, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
    const movers = world.tenant.store
      .all()
      .slice(0, 120)
      .filter((_, i) => i % 4 === 0);
    world.tenant.quirks = { omitNextLinkOnFullPage: 'always' };
    let pages = 0;
    world.tenant.afterPage = () => {
      // Inside the instant's read, a quarter of the crowd is updated: it leaves the instant and the window.
      if (++pages === 3)
        for (const i of movers) world.tenant.store.update(i.id, { lastUpdateTime: new Date() });
    };
    const until = Date.now() - 1000;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(pages).toBeGreaterThan(3);
    expect(await exportedVersions(world)).toEqual(expect.arrayContaining(expectedVersions(world, until)));
    // The moved ones come with their new version in the next run.
    world.advance(1100);
    world.tenant.afterPage = undefined;
    expect((await world.run()).outcome).toBe('succeeded');
    expect(await exportedVersions(world)).toEqual(
      expect.arrayContaining(expectedVersions(world, Date.now() - 1000)),
    );
  });
});

describe('legacy pages shorter than $top with a nextLink (item 9)', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start({ api: 'legacy' });
    world.tenant.quirks = { legacyServerPageCap: 50 };
  });
  afterEach(async () => {
    await world.close();
  });

  it('narrows a chunk whose page came back capped with a nextLink', async () => {
    const now = Date.now();
    world.tenant.store.generate(300, { from: new Date(now - 40 * HOUR), to: new Date(now - HOUR) });
    withBudget(world, 'legacy');
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
    expect(summary.requests).toBeLessThan(120);
  });

  it('pages a crowded instant by the rows actually returned, to the last page', async () => {
    const now = Date.now();
    crowd(world, 150, now - 3 * HOUR);
    world.tenant.store.generate(30, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
    withBudget(world, 'legacy');
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
    expect(summary.requests).toBeLessThan(80);
  });
});

describe('a full Graph page of items without an update time (item 11)', () => {
  let world: World;
  let script: Scenario;
  beforeEach(async () => {
    world = await World.start();
    script = new Scenario(world.tenant, {
      seed: 11,
      faultRate: 0,
      mutationRate: 0,
      maxLagInMs: 0,
      now: () => Date.now(),
    });
  });
  afterEach(async () => {
    await world.close();
  });

  it('quarantines them and moves on to the versions after them', async () => {
    const now = Date.now();
    world.tenant.store.generate(30, { from: new Date(now - 20 * HOUR), to: new Date(now - 10 * HOUR) });
    script.unplaceable(50, now - 9 * HOUR);
    world.tenant.store.generate(90, { from: new Date(now - 8 * HOUR), to: new Date(now - HOUR) });
    withBudget(world, 'graph');
    const summary = await world.run();
    expect(summary).toMatchObject({ outcome: 'succeeded', quarantined: 50 });
    const hidden = new Set(script.corrupted.map((v) => `${v.id}@${parseTimestamp(v.lastUpdateTime)!.ticks}`));
    expect(await exportedVersions(world)).toEqual(expectedVersions(world, now).filter((v) => !hidden.has(v)));
    expect(await world.blobNames('quarantine/')).toHaveLength(50);
    expect(summary.requests).toBeLessThan(60);
  });

  it('fails at once, naming the position and quarantine/, when it cannot step past them', async () => {
    const now = Date.now();
    world.tenant.store.generate(10, { from: new Date(now - 20 * HOUR), to: new Date(now - 10 * HOUR) });
    // 60 items at one instant, created at one instant: no filter can split them, and the nextLink repeats.
    const at = new Date(now - 9 * HOUR);
    for (const i of script.unplaceable(60, at.getTime()))
      world.tenant.store.update(i.id, { lastUpdateTime: at, createdTime: at.toISOString() });
    world.tenant.quirks = { repeatNextLink: true };
    withBudget(world, 'graph');
    const before = world.tenant.requests.length;
    await expect(world.run()).rejects.toThrow(new RegExp(`${at.toISOString().slice(0, 19)}.*quarantine/`));
    expect(world.tenant.requests.length - before).toBeLessThan(80);
    expect((await world.blobNames('quarantine/')).length).toBeGreaterThan(0);
  });
});

describe('a nextLink that repeats inside a crowded instant (item 12)', () => {
  it('reads the instant completely without following it', async () => {
    const world = await World.start();
    try {
      const now = Date.now();
      crowd(world, 150, now - 3 * HOUR);
      world.tenant.store.generate(30, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
      world.tenant.quirks = { repeatNextLink: true };
      withBudget(world, 'graph');
      const summary: RunSummary = await world.run();
      expect(summary.outcome).toBe('succeeded');
      expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
      expect(summary.requests).toBeLessThan(40);
    } finally {
      await world.close();
    }
  });
});

describe.each(['graph', 'legacy'] as const)(
  'a %s $filter compared at millisecond precision (item 13)',
  (api) => {
    it('drops what a coarse bound lets through and exports every version once', async () => {
      const world = await World.start({ api });
      try {
        const base = Date.now() - 6 * HOUR;
        // Several versions in each of 30 milliseconds, at 7 fractional digits, and a crowd in one of them
        // with an earlier row of the same millisecond created long before it (listed last by the legacy API).
        for (let ms = 0; ms < 30; ms++) {
          for (const fraction of ['1234', '5', '6543']) {
            const iso = new Date(base + ms * 7).toISOString().replace('Z', `${fraction}Z`);
            world.tenant.store.add({ lastUpdateTime: iso });
          }
        }
        const at = base + 5 * HOUR;
        crowd(world, 7, at);
        world.tenant.store.add({
          lastUpdateTime: new Date(at).toISOString().replace('Z', '0001Z'),
          createdTime: new Date(at - 20 * HOUR).toISOString(),
        });
        world.tenant.quirks = { filterPrecision: 'ms' };
        withBudget(world, api, { pageSize: 5 });
        const summary = await world.run();
        expect(summary.outcome).toBe('succeeded');
        expect(await exportedVersions(world)).toEqual(expectedVersions(world, Date.now()));
        // A second run starts from the checkpoint and does not trip over the coarse lower bound either.
        expect((await world.run()).outcome).toBe('succeeded');
        expect(await exportedVersions(world)).toEqual(expectedVersions(world, Date.now()));
      } finally {
        await world.close();
      }
    });
  },
);

describe('Graph whatever it does with the undocumented $orderby', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
  });
  afterEach(async () => {
    await world.close();
  });

  it.each(['honour', 'ignore', 'refuse'] as const)(
    'exports every version once when the API would %s it, and says how it paged',
    async (graphOrderBy) => {
      const now = Date.now();
      crowd(world, 120, now - 3 * HOUR);
      world.tenant.store.generate(200, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
      world.tenant.quirks = { graphOrderBy };
      withBudget(world, 'graph');
      const summary = await world.run();
      expect(summary).toMatchObject({ outcome: 'succeeded', paging: 'timeSlices' });
      expect(await exportedVersions(world)).toEqual(expectedVersions(world, now));
      const listed = world.tenant.requests.filter((r) => r.api === 'graph');
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.filter((r) => '$orderby' in r.query)).toEqual([]);
      expect(world.logs.summaries.at(-1)).toMatchObject({ paging: 'timeSlices' });
    },
  );

  it('has modes that act on a request that sends $orderby (so the cases above test something)', async () => {
    const now = Date.now();
    world.tenant.store.generate(30, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
    const token = world.tenant.issueToken(world.tenant.clientId, world.tenant.origin);
    const list = async (): Promise<{ status: number; ids: string[] }> => {
      const url = new URL('/v1.0/security/incidents', world.tenant.origin);
      url.searchParams.set('$orderby', 'lastUpdateDateTime asc');
      const res = await world.tenant.transport({
        method: 'GET',
        url,
        headers: { Authorization: `Bearer ${token}` },
        abortSignal: new AbortController().signal,
      });
      const body = JSON.parse(res.body.toString('utf8')) as { value?: { id: string }[] };
      return { status: res.status, ids: (body.value ?? []).map((i) => i.id) };
    };
    const honoured = await list();
    world.tenant.quirks = { graphOrderBy: 'ignore' };
    const ignored = await list();
    world.tenant.quirks = { graphOrderBy: 'refuse' };
    const refused = await list();
    expect([honoured.status, ignored.status, refused.status]).toEqual([200, 200, 400]);
    expect(ignored.ids).not.toEqual(honoured.ids);
    expect([...ignored.ids].sort()).toEqual([...honoured.ids].sort());
  });
});
