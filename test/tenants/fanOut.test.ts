import { duplicates } from '../support/world';
import { createExporter } from '../../src/composition/compositionRoot';
import { tenantConfigs } from '../../src/config';
import {
  createExportTenantHandler,
  type TenantExportersFactory,
} from '../../src/functions/exportTenantHandler';
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
    expect(await world.mixUps()).toEqual([]);

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

describe('DEFENDER_TENANTS: secrets and tokens', () => {
  it('appear in no log line, failure, queue message, blob or blob metadata of any tenant', async () => {
    const world = await TenantsWorld.start({ customers: 2, incidents: 10 });
    try {
      world.sim.customers[1]!.hasConsent = false;
      // A tenant whose API echoes the caller's token and the secret in its error.
      world.sim.customers[0]!.intercept = ({ api, index }) =>
        api === 'graph' && index === 0
          ? {
              status: 400,
              body: JSON.stringify({
                error: {
                  code: 'BadRequest',
                  message: `echo Bearer ${world.sim.customers[0]!.issuedTokens.at(-1)} client_secret=${world.sim.home.clientSecret}`,
                },
              }),
            }
          : undefined;
      const report = await world.cycle();
      const tenants = [world.sim.home, ...world.sim.customers];
      const tokens = tenants.flatMap((t) => t.issuedTokens);
      expect(world.sim.customers[0]!.issuedTokens.length).toBeGreaterThan(0);
      const haystack: string[] = [
        world.logs.text,
        JSON.stringify(report),
        JSON.stringify(await world.queueHost.poisoned()),
      ];
      for (const container of world.containers.values()) {
        if (!(await container.exists())) continue;
        for await (const blob of container.listBlobsFlat({ includeMetadata: true }))
          haystack.push(
            blob.name,
            JSON.stringify(blob.metadata),
            (await container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'),
          );
      }
      const text = haystack.join('\n');
      expect(text).toContain('export summary');
      for (const secret of [world.sim.home.clientSecret, ...tokens])
        expect(text.includes(secret)).toBe(false);
    } finally {
      await world.close();
    }
  });
});

describe('DEFENDER_TENANTS: a mix-up of tenants and containers', () => {
  it("is caught by the isolation check, and the next correctly wired run refuses the other tenant's checkpoint", async () => {
    const world = await TenantsWorld.start({ customers: 2, incidents: 10 });
    try {
      // A wiring fault on purpose: each tenant's exporter writes into the other tenant's container.
      const swapped: TenantExportersFactory = (config, options) => {
        const all = tenantConfigs(config);
        return new Map(
          all.map((c, i) => {
            const other = all[(i + 1) % all.length]!.container;
            return [c.tenantId, createExporter({ ...c, container: other, stateContainer: other }, options)];
          }),
        );
      };
      await world.cycle(createExportTenantHandler(() => world.config, swapped, world.composition()));
      expect((await world.mixUps()).sort()).toEqual(
        world.sim.customers
          .map((t, i) => `${t.tenantId} in ${world.config.tenants![(i + 1) % 2]!.container}`)
          .sort(),
      );

      world.clock.advance(2_000);
      const report = await world.cycle();
      expect(report.completed).toEqual([]);
      expect(report.failures.length).toBeGreaterThan(0);
      expect(
        report.failures.every((f) =>
          /belongs to tenant '[0-9a-f-]{36}', not DEFENDER_TENANT_ID/.test(f.error),
        ),
      ).toBe(true);
    } finally {
      await world.close();
    }
  });
});

describe('DEFENDER_TENANTS with DEFENDER_CREDENTIAL=federated: one managed identity, no secret, every tenant', () => {
  let world: TenantsWorld;
  beforeAll(async () => {
    world = await TenantsWorld.start({ customers: 3, incidents: 15, credential: 'federated' });
    world.sim.customers[2]!.hasConsent = false;
  });
  afterAll(() => world.close());

  it("exports each consented tenant with the identity's assertion, and never asks Key Vault", async () => {
    expect(Object.keys(world.settings).filter((name) => /SECRET|KEY_VAULT/.test(name))).toEqual([]);
    const [a, b, c] = world.sim.customers.map((t) => t.tenantId) as [string, string, string];
    const report = await world.cycle();
    for (const tenant of [a, b]) {
      const versions = await world.versions(tenant);
      expect(versions.map((v) => v.id).sort()).toEqual(
        world.sim
          .tenant(tenant)
          .store.all()
          .map((i) => String(i.id))
          .sort(),
      );
      // Each customer's Entra issued its token to an assertion, not to a secret.
      const tokens = world.sim
        .tenant(tenant)
        .requests.filter((r) => r.api === 'entra' && r.path.endsWith('/token'));
      expect(tokens.length).toBeGreaterThan(0);
    }
    expect(await world.mixUps()).toEqual([]);
    expect(report.poisoned).toEqual([expect.objectContaining({ tenantId: c })]);
    expect(report.failures.every((f) => /AADSTS7000229/.test(f.error))).toBe(true);
    const everyone = [world.sim.home, ...world.sim.customers];
    expect(everyone.flatMap((t) => t.requests.filter((r) => r.api === 'keyvault'))).toEqual([]);
    // The app's one federated credential (in its home tenant) served every customer tenant.
    expect(world.sim.home.requests.filter((r) => r.api === 'identity').length).toBeGreaterThan(0);
  });
});
