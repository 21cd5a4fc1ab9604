import { World } from '../support/world';

const HOUR = 3_600_000;

describe('secrets and tokens', () => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  it('appear in no log line, error, blob or blob metadata', async () => {
    world = await World.start();
    const now = Date.now();
    world.tenant.store.generate(60, { from: new Date(now - 20 * HOUR), to: new Date(now - HOUR) });
    const errors: unknown[] = [];
    const capture = (p: Promise<unknown>) => p.catch((e: unknown) => errors.push(e));

    // A run with a retry and a token refresh, logged at debug.
    world.tenant.intercept = ({ api, index }) =>
      api === 'graph' && index === 0
        ? { status: 401 }
        : api === 'graph' && index === 1
          ? { status: 503, headers: { 'Retry-After': '1' } }
          : undefined;
    await capture(world.run());
    // Runs that fail: a forbidden vault, then a rejected secret, then an API that echoes the Authorization header.
    world.tenant.intercept = undefined;
    world.tenant.keyVaultForbidden = true;
    world.configure();
    await capture(world.run());
    world.tenant.keyVaultForbidden = false;
    world.tenant.validClientSecrets.clear();
    world.configure();
    await capture(world.run());
    world.tenant.validClientSecrets.add(world.tenant.clientSecret);
    world.configure();
    world.tenant.intercept = ({ api }) =>
      api === 'graph'
        ? {
            status: 400,
            body: JSON.stringify({
              error: {
                code: 'BadRequest',
                message: `echo Authorization: Bearer ${world.tenant.issuedTokens.at(-1)} client_secret=${world.tenant.clientSecret}`,
              },
            }),
          }
        : undefined;
    await capture(world.run());

    expect(errors.length).toBe(3);
    expect(world.tenant.issuedTokens.length).toBeGreaterThan(1);
    const haystack: string[] = [world.logs.text];
    for (const e of errors) {
      const err = e as Error & Record<string, unknown>;
      haystack.push(
        err.message,
        String(err.stack),
        JSON.stringify(err),
        JSON.stringify(err.cause ?? null),
        JSON.stringify(err.responseExcerpt ?? ''),
      );
    }
    for await (const blob of world.container.listBlobsFlat({ includeMetadata: true })) {
      haystack.push(blob.name, JSON.stringify(blob.metadata));
      haystack.push(
        (await world.container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'),
      );
    }
    const text = haystack.join('\n');
    expect(text).toContain('export summary');
    for (const secret of [world.tenant.clientSecret, ...world.tenant.issuedTokens]) {
      expect(text.includes(secret)).toBe(false);
    }
  });
});
