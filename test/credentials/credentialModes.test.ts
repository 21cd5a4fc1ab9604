import { World } from '../support/world';

const HOUR = 3_600_000;

describe.each(['federated', 'certificate'] as const)('DEFENDER_CREDENTIAL=%s', (credential) => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  it('exports end to end through the real credentials', async () => {
    world = await World.start({ credential });
    const now = Date.now();
    world.tenant.store.generate(20, { from: new Date(now - 10 * HOUR), to: new Date(now - HOUR) });
    const summary = await world.run();
    expect(world.logs.lines.filter((l) => l.level !== 'info')).toEqual([]);
    expect(summary.outcome).toBe('succeeded');
    expect((await world.exported()).length).toBe(20);
  });
});
