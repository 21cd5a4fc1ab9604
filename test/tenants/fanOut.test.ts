import { duplicates } from '../support/world';
import { TenantsWorld } from '../support/tenantsWorld';

describe('DEFENDER_TENANTS: the queue fan-out, three customers, one whose consent was revoked', () => {
  let world: TenantsWorld;
  beforeAll(async () => {
    world = await TenantsWorld.start({ customers: 3, incidents: 25 });
    world.sim.customers[2]!.hasConsent = false;
  });
  afterAll(() => world.close());

  it('exports the healthy tenants completely into their own containers, retries the failing one and poisons it', async () => {
    const [a, b, c] = world.sim.customers.map((t) => t.tenantId) as [string, string, string];
    const report = await world.cycle();

    for (const tenant of [a, b]) {
      const versions = await world.versions(tenant);
      const expected = world.sim.tenant(tenant).store.all();
      expect(versions.map((v) => v.id).sort()).toEqual(expected.map((i) => String(i.id)).sort());
      expect(duplicates(versions)).toEqual([]);
      // A record names the tenant that returned it: any other tenant's record here is a mix-up.
      expect(new Set(versions.map((v) => v.tenantId))).toEqual(new Set([tenant]));
    }
    expect(await world.versions(c)).toEqual([]);

    expect(report.completed.map((r) => (r.message as { tenantId: string }).tenantId).sort()).toEqual(
      [a, b].sort(),
    );
    expect(report.failures.map((f) => f.dequeueCount)).toEqual([1, 2, 3, 4, 5]);
    expect(report.failures.every((f) => /AADSTS7000229/.test(f.error) && f.error.includes(c))).toBe(true);
    expect(report.poisoned).toEqual([expect.objectContaining({ tenantId: c })]);
    expect(await world.queueHost.poisoned()).toEqual([expect.objectContaining({ tenantId: c })]);

    const tries = await world.manifests(c);
    expect(tries.map((m) => [m.outcome, m.delivery?.attempt, m.delivery?.next])).toEqual([
      ['failed', 1, 'retry'],
      ['failed', 2, 'retry'],
      ['failed', 3, 'retry'],
      ['failed', 4, 'retry'],
      ['failed', 5, 'poison'],
    ]);
    expect(tries.every((m) => m.tenantId === c && m.tenantName === 'customer-2')).toBe(true);
    const summaries = world.logs.lines.filter((l) => l.text.includes('export summary'));
    expect(
      summaries.some(
        (l) => l.text.includes(`"tenantId":"${a}"`) && l.text.includes('"tenantName":"customer-0"'),
      ),
    ).toBe(true);
  });

  it('exports each tenant exactly once over later cycles, once the consent is given again', async () => {
    const [a, , c] = world.sim.customers.map((t) => t.tenantId) as [string, string, string];
    world.sim.customers[2]!.hasConsent = true;
    world.sim.tenant(a).store.touchRandom(5);
    world.sim.tenant(c).store.touchRandom(5);
    world.clock.advance(2_000);
    const report = await world.cycle();
    expect(report.failures).toEqual([]);
    for (const tenant of world.sim.customers.map((t) => t.tenantId)) {
      const versions = await world.versions(tenant);
      expect(duplicates(versions)).toEqual([]);
      expect(new Set(versions.map((v) => v.tenantId))).toEqual(new Set([tenant]));
      const ids = new Set(versions.map((v) => v.id));
      expect(
        world.sim
          .tenant(tenant)
          .store.all()
          .every((i) => ids.has(String(i.id))),
      ).toBe(true);
    }
  });
});
