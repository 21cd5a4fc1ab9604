import type { CompositionOptions } from '../../src/composition/compositionRoot';
import { parseTimestamp } from '../../src/export/timestamp';
import type { CheckpointDocument } from '../../src/export/ports';
import { SimulatedTenant } from '../../src/sandbox/simulatedTenant';
import { crashingAfterCommit, duplicates, SCALED_LEGACY_LIMITS, World } from '../support/world';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A world whose tenant (the API) runs on a clock the test moves, and whose host runs `hostAheadInMs` ahead. */
async function worldWithClocks(
  api: 'graph' | 'legacy',
  hostAheadInMs: number,
  settings: Record<string, string> = {},
): Promise<{ world: World; clock: { now: number }; composition: Partial<CompositionOptions> }> {
  const clock = { now: Date.now() - 5 * HOUR };
  const tenant = await SimulatedTenant.start({
    seed: 11,
    clock: () => clock.now,
    legacyLimits: SCALED_LEGACY_LIMITS,
  });
  const composition: Partial<CompositionOptions> = {
    clock: { now: () => clock.now + hostAheadInMs },
    // Waits (retries, the legacy API's pacing) pass on the test's clock, not the machine's.
    http: {
      sleep: (ms) => {
        clock.now += ms;
        return Promise.resolve();
      },
    },
  };
  const world = await World.start({ tenant, api, settings, composition });
  return { world, clock, composition };
}

function versionsOf(exported: { id: string; lastUpdate: string }[]): string[] {
  return exported.map((v) => `${v.id}@${parseTimestamp(v.lastUpdate)!.ticks}`).sort();
}

/** The latest versions of the store that the exports lack. */
function missing(world: World, exported: { id: string; lastUpdate: string }[]): string[] {
  const have = new Set(versionsOf(exported));
  return world.tenant.store
    .all()
    .map((i) => `${i.id}@${parseTimestamp(i.lastUpdateTime)!.ticks}`)
    .filter((v) => !have.has(v));
}

describe.each(['graph', 'legacy'] as const)('clocks and late indexing (%s)', (api) => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  it('ends the window by the API’s clock when the host’s runs ahead, and warns', async () => {
    const setup = await worldWithClocks(api, 20 * MINUTE);
    world = setup.world;
    const { clock } = setup;
    world.tenant.store.generate(20, {
      from: new Date(clock.now - 3 * HOUR),
      to: new Date(clock.now - 10 * MINUTE),
    });
    const first = await world.run();
    expect(first.outcome).toBe('succeeded');
    expect(first.incidents).toBe(20);
    // Never past what the API has reached (its Date header is whole seconds, so allow one).
    expect(Date.parse(first.windowUntil)).toBeLessThanOrEqual(clock.now);
    expect(first.apiClockSkewInMs).toBeLessThan(-19 * MINUTE);
    expect(world.logs.text).toMatch(/host's clock is \d+ s ahead of the incidents API's clock/);

    // Updates the API stamps after the first run, by its own clock, are exported by the next one.
    clock.now += MINUTE;
    for (const incident of world.tenant.store.all().slice(0, 5)) world.tenant.store.update(incident.id);
    clock.now += 5_000;
    const second = await world.run();
    expect(second.incidents).toBe(5);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(missing(world, exported)).toEqual([]);
  });

  it('exports a version indexed later than the settle delay once, from the re-read window', async () => {
    const setup = await worldWithClocks(api, 0);
    world = setup.world;
    const { clock } = setup;
    world.tenant.store.generate(10, { from: new Date(clock.now - 3 * HOUR), to: new Date(clock.now - HOUR) });
    expect((await world.run()).incidents).toBe(10);

    // Two updates become visible 10 and 20 minutes after their time, long after the settle delay (1 s).
    clock.now += MINUTE;
    const [a, b] = world.tenant.store.all();
    world.tenant.store.update(a!.id, { lastUpdateTime: new Date(clock.now - 10 * MINUTE).toISOString() });
    world.tenant.store.update(b!.id, { lastUpdateTime: new Date(clock.now - 20 * MINUTE).toISOString() });
    world.tenant.store.generate(3, { from: new Date(clock.now - 40_000), to: new Date(clock.now - 30_000) });
    clock.now += 5_000;
    const second = await world.run();
    expect(second).toMatchObject({ outcome: 'succeeded', lateVersions: 2, incidents: 5 });
    clock.now += MINUTE;
    const third = await world.run();
    expect(third).toMatchObject({ outcome: 'succeeded', lateVersions: 0, incidents: 0 });
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(missing(world, exported)).toEqual([]);
  });

  it('remembers the late versions of a blob it adopts from a crashed run', async () => {
    const setup = await worldWithClocks(api, 0);
    world = setup.world;
    const { clock } = setup;
    world.tenant.store.generate(10, { from: new Date(clock.now - 3 * HOUR), to: new Date(clock.now - HOUR) });
    await world.run();
    clock.now += MINUTE;
    const [a] = world.tenant.store.all();
    world.tenant.store.update(a!.id, { lastUpdateTime: new Date(clock.now - 15 * MINUTE).toISOString() });
    clock.now += 5_000;

    world.configure({
      api,
      composition: { ...setup.composition, checkpointStore: crashingAfterCommit(world.container) },
    });
    await expect(world.run()).rejects.toThrow(/process killed/);
    world.configure({ api, composition: setup.composition });
    clock.now += MINUTE;
    const adopted = await world.run();
    expect(adopted).toMatchObject({ recoveredBlobs: 1, lateVersions: 0 });
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(missing(world, exported)).toEqual([]);
  });

  it('re-reads nothing with EXPORT_REREAD_WINDOW=PT0S', async () => {
    const setup = await worldWithClocks(api, 0, { EXPORT_REREAD_WINDOW: 'PT0S' });
    world = setup.world;
    const { clock } = setup;
    world.tenant.store.generate(10, { from: new Date(clock.now - 3 * HOUR), to: new Date(clock.now - HOUR) });
    await world.run();
    clock.now += MINUTE;
    world.tenant.store.update(world.tenant.store.all()[0]!.id, {
      lastUpdateTime: new Date(clock.now - 10 * MINUTE).toISOString(),
    });
    const requestsBefore = world.tenant.requests.length;
    clock.now += 5_000;
    const second = await world.run();
    expect(second).toMatchObject({ lateVersions: 0, incidents: 0 });
    // One window read, no re-read.
    expect(world.tenant.requests.length - requestsBefore).toBeLessThanOrEqual(3);
    const document = (await world.checkpoint())!.document as unknown as CheckpointDocument;
    expect(document.recent).toBeUndefined();
  });
});
