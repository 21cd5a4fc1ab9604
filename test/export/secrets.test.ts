import { World, WORLD_CERTIFICATE } from '../support/world';

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
    const text = await haystack(world, errors);
    expect(text).toContain('export summary');
    for (const secret of [world.tenant.clientSecret, ...world.tenant.issuedTokens]) {
      expect(text.includes(secret)).toBe(false);
    }
  });

  it('in federated and certificate mode: no assertion, token, key or certificate secret either', async () => {
    world = await World.start({ credential: 'certificate' });
    const now = Date.now();
    world.tenant.store.generate(30, { from: new Date(now - 20 * HOUR), to: new Date(now - HOUR) });
    const errors: unknown[] = [];
    const capture = (p: Promise<unknown>) => p.catch((e: unknown) => errors.push(e));
    const certificatePem = world.tenant.secrets.get(WORLD_CERTIFICATE) ?? '';
    const keyLines = certificatePem
      .split('-----END PRIVATE KEY-----')[0]!
      .split('\n')
      .filter((line) => line.length > 20 && !line.startsWith('-----'));
    expect(keyLines.length).toBeGreaterThan(10);

    // Certificate mode: a run, then the certificate removed from the app (Entra refuses its assertions).
    await capture(world.run());
    world.tenant.appCertificates.length = 0;
    world.configure({ credential: 'certificate' });
    await capture(world.run());
    world.tenant.appCertificates.push(
      world.tenant.secrets.get(WORLD_CERTIFICATE)?.split('-----END PRIVATE KEY-----')[1]?.trim() ?? '',
    );
    world.configure({ credential: 'certificate' });
    world.tenant.intercept = ({ api }) =>
      api === 'graph'
        ? {
            status: 400,
            body: JSON.stringify({ error: { code: 'BadRequest', message: `echo ${certificatePem}` } }),
          }
        : undefined;
    await capture(world.run());
    world.tenant.intercept = undefined;
    expect(errors.length).toBe(2);

    // Federated mode: a run, then a federated credential that does not match, then an API echoing the token.
    world.configure({ credential: 'federated' });
    world.tenant.store.update(world.tenant.store.all()[0]!.id);
    world.advance(1100);
    await capture(world.run());
    world.tenant.federatedCredentials = [];
    world.configure({ credential: 'federated' });
    await capture(world.run());
    world.tenant.trustManagedIdentity();
    world.configure({ credential: 'federated' });
    world.tenant.intercept = ({ api }) =>
      api === 'graph'
        ? {
            status: 400,
            body: JSON.stringify({
              error: { code: 'BadRequest', message: `echo ${world.tenant.issuedTokens.join(' ')}` },
            }),
          }
        : undefined;
    await capture(world.run());

    expect(errors.length).toBe(4);
    const identityTokens = world.tenant.requests.filter((r) => r.api === 'identity').length;
    expect(identityTokens).toBeGreaterThan(0);
    const text = await haystack(world, errors);
    expect(text).toContain('export summary');
    expect(text).toContain('AADSTS700027');
    expect(text).toContain('AADSTS70021');
    // Every token the tenant issued: the app's access tokens and the managed identity's (the assertions).
    for (const secret of [...world.tenant.issuedTokens, certificatePem, ...keyLines]) {
      expect(text.includes(secret)).toBe(false);
    }
    // Not even the start of one (an error excerpt cuts a body short).
    for (const token of world.tenant.issuedTokens) {
      expect(text.includes(token.slice(0, token.indexOf('.') + 20))).toBe(false);
    }
  });
});

/** Everything a run leaves where people look: log lines, errors (with causes), blob names, metadata and bodies. */
async function haystack(world: World, errors: unknown[]): Promise<string> {
  const out: string[] = [world.logs.text];
  for (const e of errors) {
    const err = e as Error & Record<string, unknown>;
    out.push(
      err.message,
      String(err.stack),
      JSON.stringify(err),
      JSON.stringify(err.cause ?? null),
      JSON.stringify(err.responseExcerpt ?? ''),
    );
  }
  for await (const blob of world.container.listBlobsFlat({ includeMetadata: true })) {
    out.push(blob.name, JSON.stringify(blob.metadata));
    out.push((await world.container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'));
  }
  return out.join('\n');
}
