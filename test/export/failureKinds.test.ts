import { ApiError, ExportError } from '../../src/errors';
import { World } from '../support/world';

const HOUR = 3_600_000;

describe('a failed run says whether a later run gets past it or an operator must act', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start({ settings: { EXPORT_INCLUDE_ALERTS: 'false' } });
    const now = Date.now();
    world.tenant.store.generate(20, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    await world.close();
  });

  it('ends a 503 storm with a transient failure', async () => {
    world.tenant.intercept = ({ api }) => (api === 'graph' ? { status: 503 } : undefined);
    const thrown = await world.run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(ApiError);
    expect(thrown).toMatchObject({ status: 503, isTransient: true });
    expect(world.logs.summaries.at(-1)).toMatchObject({
      outcome: 'failed',
      failureKind: 'api',
      transient: true,
    });
  });

  it('ends a Key Vault 403 with a failure the operator must fix', async () => {
    world.tenant.keyVaultForbidden = true;
    const thrown = await world.run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(ExportError);
    expect(thrown).toMatchObject({ isTransient: false });
    expect((thrown as Error).message).toMatch(/refused to read secret .*\(403/);
    expect(world.logs.summaries.at(-1)).toMatchObject({
      outcome: 'failed',
      failureKind: 'export',
      transient: false,
    });
  });
});
