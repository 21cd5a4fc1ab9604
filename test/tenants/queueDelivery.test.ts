import { InvocationContext } from '@azure/functions';
import { duplicates } from '../support/world';
import { TenantsWorld } from '../support/tenantsWorld';

function queueContext(logs: string[], dequeueCount = 1): InvocationContext {
  return new InvocationContext({
    invocationId: `inv-${dequeueCount}-${logs.length}`,
    functionName: 'exportTenant',
    triggerMetadata: { dequeueCount },
    logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`),
  });
}

describe('the queue function exportTenant', () => {
  let world: TenantsWorld;
  beforeAll(async () => {
    world = await TenantsWorld.start({ customers: 2, incidents: 40 });
  });
  afterAll(() => world.close());

  it('is harmless when two messages for one tenant are handled at once: every version exactly once', async () => {
    const [a] = world.sim.customers.map((t) => t.tenantId) as [string];
    const messages = [
      { tenantId: a, cycleId: 'x', queuedAt: '' },
      { tenantId: a, cycleId: 'y', queuedAt: '' },
      { tenantId: a, cycleId: 'z', queuedAt: '' },
    ];
    // Round 1: three messages for one tenant in one batch, handled concurrently by one worker's handler.
    await world.queueHost.enqueue(messages);
    const first = await world.drain();
    expect(first.failures).toEqual([]);
    expect(first.completed).toHaveLength(3);
    // However the runs interleaved, each ended as a run that exported or one that found the checkpoint taken.
    for (const done of first.completed)
      expect(['succeeded', 'concurrent']).toContain((done.result as { outcome: string }).outcome);

    world.sim.tenant(a).store.touchRandom(10);
    world.clock.advance(2_000);
    // Round 2: the same, with a fresh handler per message, as on different instances.
    await world.queueHost.enqueue(messages);
    const second = await world.queueHost.drain((entry, context) => world.queueHandler()(entry, context));
    expect(second.failures).toEqual([]);

    const versions = await world.versions(a);
    expect(duplicates(versions)).toEqual([]);
    const exported = new Set(versions.map((v) => `${v.id}@${Date.parse(v.lastUpdate)}`));
    for (const incident of world.sim.tenant(a).store.all())
      expect(exported).toContain(`${incident.id}@${Date.parse(incident.lastUpdateTime)}`);
  });

  it('drops a message for a tenant no longer listed, and one that is not a tenant message, without retrying', async () => {
    const handler = world.queueHandler();
    const logs: string[] = [];
    await expect(
      handler({ tenantId: '11111111-2222-4333-8444-555555555555' }, queueContext(logs)),
    ).resolves.toBeUndefined();
    await expect(handler('not json', queueContext(logs))).resolves.toBeUndefined();
    await expect(handler({ tenantId: 42 }, queueContext(logs))).resolves.toBeUndefined();
    expect(logs.join('\n')).toMatch(
      /warning Dropped the message for tenant 11111111-.*not in DEFENDER_TENANTS/,
    );
    expect(logs.join('\n')).toMatch(/error Dropped a message on tenants-.* it is not JSON/);
    expect(logs.join('\n')).toMatch(/its 'tenantId' is not a GUID/);
  });

  it("records the message's try in the run manifest from the trigger's dequeueCount", async () => {
    const [, b] = world.sim.customers.map((t) => t.tenantId) as [string, string];
    const summary = await world.queueHandler()({ tenantId: b }, queueContext([], 3));
    expect(summary).toMatchObject({
      outcome: 'succeeded',
      tenantId: b,
      tenantName: 'customer-1',
      delivery: { queue: world.config.queue, attempt: 3, maxAttempts: 5 },
    });
    expect((await world.manifests(b)).at(-1)?.delivery).toEqual({
      queue: world.config.queue,
      attempt: 3,
      maxAttempts: 5,
    });
  });
});
