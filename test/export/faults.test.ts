import { createServer, type AddressInfo } from 'node:net';
import { BlobCheckpointStore } from '../../src/sink/blobExportStore';
import { CHECKPOINT_BLOB } from '../../src/export/blobLayout';
import { ApiError } from '../../src/errors';
import type { CheckpointDocument } from '../../src/export/ports';
import { IncidentStore } from '../../src/sandbox/incidentStore';
import { SimulatedTenant } from '../../src/sandbox/simulatedTenant';
import { duplicates, World } from '../support/world';

const HOUR = 3_600_000;

describe('faults and recovery (Graph)', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
    const now = Date.now();
    world.tenant.store.generate(120, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    await world.close();
  });

  it('honours Retry-After on 429 and 503', async () => {
    world.tenant.intercept = ({ api, index }) =>
      api === 'graph' && index === 0
        ? {
            status: 429,
            headers: { 'Retry-After': '3' },
            body: '{"error":{"code":"TooManyRequests","message":"Too many requests."}}',
          }
        : api === 'graph' && index === 1
          ? { status: 503, headers: { 'Retry-After': '2' } }
          : undefined;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(summary.throttles).toBe(1);
    expect(world.sleeps.slice(0, 2)).toEqual([3000, 2000]);
    expect((await world.exported()).length).toBe(120);
  });

  it('backs off on other 5xx, resets and a cut body, then succeeds', async () => {
    const faults = [
      { status: 500 },
      { kind: 'reset' as const },
      { status: 502 },
      { kind: 'truncate' as const },
      { status: 504 },
    ];
    world.tenant.intercept = ({ api, index }) => (api === 'graph' ? faults[index] : undefined);
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(summary.retries).toBe(5);
    expect(world.sleeps.every((ms) => ms >= 0 && ms <= 60_000)).toBe(true);
    expect(world.logs.lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect((await world.exported()).length).toBe(120);
  });

  it('times out a hung request and retries it', async () => {
    world.configure({ composition: { http: { timeoutInMs: 300, sleep: () => Promise.resolve() } } });
    world.tenant.intercept = ({ api, index }) =>
      api === 'graph' && index === 0 ? { kind: 'hang' } : undefined;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(summary.retries).toBe(1);
  });

  it('fails when retries run out, and leaves the checkpoint where the data is', async () => {
    world.configure({ settings: { EXPORT_INCLUDE_ALERTS: 'false' } });
    await world.run();
    const before = await world.checkpoint();
    world.tenant.store.touchRandom(3);
    world.advance(1100);
    world.tenant.intercept = ({ api }) => (api === 'graph' ? { status: 500 } : undefined);
    await expect(world.run()).rejects.toThrow(/HTTP 500.*gave up after 6 attempts/);
    expect((await world.checkpoint())!.etag).toBe(before!.etag);
    expect(world.logs.summaries.at(-1)).toMatchObject({ outcome: 'failed' });
    expect((await world.blobNames('runs/')).length).toBe(2);
  });

  it('gets one fresh token after a 401', async () => {
    let revoked = false;
    world.tenant.afterPage = () => {
      if (!revoked) {
        revoked = true;
        world.tenant.revokeAllTokens();
      }
    };
    world.tenant.store.generate(100, {
      from: new Date(Date.now() - 20 * HOUR),
      to: new Date(Date.now() - 2 * HOUR),
    });
    const tokensBefore = world.tenant.tokenRequests;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(world.tenant.tokenRequests - tokensBefore).toBeGreaterThanOrEqual(2);
    expect((await world.exported()).length).toBe(220);
  });

  it('fails on a second 401 with a message that names the fix', async () => {
    world.tenant.intercept = ({ api }) =>
      api === 'graph'
        ? {
            status: 401,
            body: '{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}',
          }
        : undefined;
    const error = await world.run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as Error).message).toMatch(/DEFENDER_API_URL/);
    expect(await world.checkpoint()).toMatchObject({ document: { checkpoint: { idsAtWatermark: [] } } });
  });

  it('re-reads a rotated secret from Key Vault once', async () => {
    await world.run();
    // The operator rotates the secret: the old one stops working, Key Vault holds the new one.
    world.tenant.validClientSecrets.clear();
    world.tenant.validClientSecrets.add('rotated-secret-value-123');
    world.tenant.secrets.set(world.tenant.secretName, 'rotated-secret-value-123');
    const reads = world.tenant.secretReads;
    world.tenant.store.touchRandom(2);
    world.advance(1100);
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(world.tenant.secretReads - reads).toBe(1);
    expect(world.logs.text).toMatch(/re-reading Key Vault secret/);
  });

  it('names the secret, the vault and the fix when the secret is wrong everywhere', async () => {
    world.tenant.validClientSecrets.clear();
    await expect(world.run()).rejects.toThrow(
      /rejected the client secret of DEFENDER_CLIENT_ID .*AADSTS7000215.*Key Vault secret 'defender-client-secret' in https:\/\/127\.0\.0\.1/,
    );
    expect(await world.blobNames()).toEqual([]);
  });

  it('names the vault, the secret and the role on a Key Vault 403', async () => {
    world.tenant.keyVaultForbidden = true;
    await expect(world.run()).rejects.toThrow(
      /Key Vault https:\/\/127\.0\.0\.1:\d+ refused to read secret 'defender-client-secret' \(403 Forbidden\).*'Key Vault Secrets User'/,
    );
  });

  it('says a disabled Key Vault secret is disabled, not that a role is missing', async () => {
    world.tenant.disabledSecrets.add(world.tenant.secretName);
    const failure = world.run();
    await expect(failure).rejects.toThrow(
      /secret 'defender-client-secret' in vault https:\/\/127\.0\.0\.1:\d+ is disabled: enable it or set a new version/,
    );
    await expect(failure).rejects.not.toThrow(/Key Vault Secrets User/);
  });

  it('names the secret and the setting on a Key Vault 404', async () => {
    world.configure({ settings: { KEY_VAULT_SECRET_NAME: 'missing-secret' } });
    await expect(world.run()).rejects.toThrow(
      /Secret 'missing-secret' was not found in Key Vault .*KEY_VAULT_SECRET_NAME/,
    );
  });

  it('names DEFENDER_TENANT_ID when the tenant does not exist', async () => {
    world.configure({ settings: { DEFENDER_TENANT_ID: '11111111-2222-3333-4444-555555555555' } });
    await expect(world.run()).rejects.toThrow(
      /does not know tenant '11111111-2222-3333-4444-555555555555' \(HTTP 400 AADSTS90002\)\. Check DEFENDER_TENANT_ID/,
    );
  });

  it('says Entra is failing, not that the tenant is unknown, when OpenID discovery answers 503', async () => {
    world.tenant.entraDiscoveryStatus = 503;
    world.configure({ settings: { KEY_VAULT_URL: '', DEFENDER_CLIENT_SECRET: world.tenant.clientSecret } });
    const failure = world.run();
    await expect(failure).rejects.toThrow(
      /Entra \(authority host https:\/\/127\.0\.0\.1:\d+\) is unreachable or failing \(.*503.*\); retry later or check DEFENDER_AUTHORITY_HOST and the network/,
    );
    await expect(failure).rejects.not.toThrow(/does not know tenant/);
  });

  it('says Entra is unreachable, not that the tenant is unknown, when the authority host refuses connections', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    world.configure({
      settings: {
        KEY_VAULT_URL: '',
        DEFENDER_CLIENT_SECRET: world.tenant.clientSecret,
        DEFENDER_AUTHORITY_HOST: `https://127.0.0.1:${port}`,
      },
    });
    const failure = world.run();
    await expect(failure).rejects.toThrow(
      new RegExp(
        `Entra \\(authority host https://127\\.0\\.0\\.1:${port}\\) is unreachable or failing \\(.*ECONNREFUSED.*\\)`,
      ),
    );
    await expect(failure).rejects.not.toThrow(/does not know tenant/);
  });

  it('treats the tenant GUID case-insensitively when matching the checkpoint', async () => {
    await world.run();
    world.tenant.store.generate(5, { from: new Date(Date.now() - HOUR), to: new Date(Date.now() - 60_000) });
    world.configure({ settings: { DEFENDER_TENANT_ID: world.tenant.tenantId.toUpperCase() } });
    const second = await world.run();
    expect(second.outcome).toBe('succeeded');
    expect(duplicates(await world.exported())).toEqual([]);
  });

  it('refuses a domain in DEFENDER_TENANT_ID against a checkpoint with a GUID, naming both and the fix', async () => {
    await world.run();
    world.configure({ settings: { DEFENDER_TENANT_ID: 'contoso.onmicrosoft.com' } });
    await expect(world.run()).rejects.toThrow(
      new RegExp(
        `tenant '${world.tenant.tenantId}'.*DEFENDER_TENANT_ID is 'contoso\\.onmicrosoft\\.com'.*set DEFENDER_TENANT_ID to the tenant's GUID '${world.tenant.tenantId}'`,
      ),
    );
  });

  it('names DEFENDER_CLIENT_ID when the app does not exist', async () => {
    world.configure({ settings: { DEFENDER_CLIENT_ID: '11111111-2222-3333-4444-555555555555' } });
    await expect(world.run()).rejects.toThrow(
      /DEFENDER_CLIENT_ID 11111111-2222-3333-4444-555555555555 is not an application/,
    );
  });

  it('keeps the checkpoint on a malformed page and names what was wrong', async () => {
    await world.run();
    const before = await world.checkpoint();
    const blobsBefore = await world.blobNames();
    world.tenant.store.touchRandom(5);
    world.advance(1100);
    world.tenant.intercept = ({ api }) =>
      api === 'graph' ? { status: 200, body: '{"@odata.context":"x","items":[]}' } : undefined;
    await expect(world.run()).rejects.toThrow(
      /Malformed Microsoft Graph page https:\/\/127\.0\.0\.1:\d+\/v1\.0\/security\/incidents: the response has no 'value' array/,
    );
    expect((await world.checkpoint())!.etag).toBe(before!.etag);
    expect(await world.blobNames()).toEqual(blobsBefore);
    world.tenant.intercept = undefined;
    expect((await world.run()).incidents).toBe(5);
  });

  it('quarantines an incident it cannot place in time, says so, and keeps going', async () => {
    const hostile = { id: '1', displayName: 'no update time — «»' };
    world.tenant.intercept = ({ api, index }) =>
      api === 'graph' && index === 0
        ? { status: 200, body: JSON.stringify({ value: [hostile] }) }
        : undefined;
    const summary = await world.run();
    expect(summary).toMatchObject({ outcome: 'succeeded', quarantined: 1 });
    const [name] = await world.blobNames('quarantine/');
    expect(name).toMatch(/^quarantine\/\d{4}\/\d{2}\/\d{2}\/[0-9a-f]{24}\.json$/);
    const kept = JSON.parse(
      (await world.container.getBlockBlobClient(name!).downloadToBuffer()).toString('utf8'),
    );
    expect(kept).toMatchObject({
      record: hostile,
      reason: expect.stringMatching(/incident '1'\) has no valid 'lastUpdateDateTime'/),
    });
    expect(world.logs.text).toMatch(/warn Quarantined a malformed item/);
    expect(await world.blobNames('quarantine/')).toHaveLength(1);
  });

  it('keeps going when pages with $expand=alerts fail persistently, reading alerts per incident', async () => {
    world.tenant.intercept = ({ api, url }) =>
      api === 'graph' && url.pathname === '/v1.0/security/incidents' && url.searchParams.has('$expand')
        ? { status: 500, body: '{"error":{"code":"InternalServerError","message":"boom"}}' }
        : undefined;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    const exported = await world.exported();
    expect(exported).toHaveLength(120);
    expect(exported.every((v) => Array.isArray(v.raw.alerts) && (v.raw.alerts as unknown[]).length > 0)).toBe(
      true,
    );
    expect(world.logs.text).toMatch(/continues without it and reads alerts per incident/);
  });

  it('exports incidents whose alerts cannot be read at all, and reports them in the summary and the manifest', async () => {
    const unreadable = (id: string): boolean => Number(id) % 10 === 0;
    world.tenant.intercept = ({ api, url }) => {
      if (api !== 'graph') return undefined;
      const alertsOf = /^\/v1\.0\/security\/incidents\/([^/]+)\/alerts$/.exec(url.pathname);
      return (url.pathname === '/v1.0/security/incidents' && url.searchParams.has('$expand')) ||
        (alertsOf && unreadable(alertsOf[1]!))
        ? { status: 500, body: '{"error":{"code":"InternalServerError","message":"boom"}}' }
        : undefined;
    };
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    const exported = await world.exported();
    expect(exported).toHaveLength(120);
    const withoutAlerts = exported.filter((v) => !Array.isArray(v.raw.alerts)).map((v) => v.id);
    expect(withoutAlerts.length).toBeGreaterThan(0);
    expect(withoutAlerts.every(unreadable)).toBe(true);
    expect(summary.alertsUnavailable).toBe(withoutAlerts.length);
    expect(world.logs.summaries.at(-1)).toMatchObject({ alertsUnavailable: withoutAlerts.length });
    const [manifest] = await world.blobNames('runs/');
    const stored = JSON.parse(
      (await world.container.getBlockBlobClient(manifest!).downloadToBuffer()).toString('utf8'),
    ) as Record<string, unknown>;
    expect(stored.alertsUnavailable).toBe(withoutAlerts.length);
    const warnings = world.logs.text.split('\n').filter((l) => /exported without their alerts/.test(l));
    expect(warnings).toEqual([
      expect.stringMatching(new RegExp(`^warn ${withoutAlerts.length} incident version`)),
    ]);
  });

  it('reports no incident without alerts when the alerts come with the pages', async () => {
    const summary = await world.run();
    expect(summary.alertsUnavailable).toBe(0);
    expect(world.logs.text).not.toMatch(/without their alerts/);
  });

  it('never sends the token to a nextLink on another origin', async () => {
    const other = await SimulatedTenant.start();
    try {
      world.tenant.intercept = ({ api, index }) =>
        api === 'graph' && index === 0
          ? { kind: 'nextLink', url: `${other.origin}/v1.0/security/incidents?$skip=50` }
          : undefined;
      await expect(world.run()).rejects.toThrow(
        /nextLink to another origin \(https:\/\/127\.0\.0\.1:\d+\); it is not followed/,
      );
      expect(other.requests).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('follows no redirect, so the token never reaches another origin', async () => {
    const other = await SimulatedTenant.start();
    try {
      world.tenant.intercept = ({ api, url }) =>
        api === 'graph' || api === 'legacy'
          ? { status: 302, headers: { Location: `${other.origin}${url.pathname}${url.search}` } }
          : undefined;
      await expect(world.run()).rejects.toThrow(/302/);
      expect(other.requests).toEqual([]);
    } finally {
      await other.close();
    }
  });
});

describe('crashes and concurrent runs', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
    const now = Date.now();
    world.tenant.store.generate(150, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    await world.close();
  });

  it('adopts the blob of a run that died between blob commit and checkpoint write', async () => {
    // The first checkpoint write after a blob commit "crashes" the run.
    const real = new BlobCheckpointStore(world.container);
    let writes = 0;
    const crashing = {
      read: () => real.read(),
      write: async (document: CheckpointDocument, etag: string | undefined) => {
        if (document.lastBlob && writes++ === 0) throw new Error('process killed');
        return real.write(document, etag);
      },
    };
    world.configure({ composition: { checkpointStore: crashing } });
    await expect(world.run()).rejects.toThrow(/process killed/);
    const orphan = await world.blobNames();
    expect(orphan).toHaveLength(1);
    expect((await world.checkpoint())!.document.lastBlob).toBeUndefined();

    world.configure();
    const summary = await world.run();
    expect(summary.recoveredBlobs).toBe(1);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(150);
  });

  it('lets one of two concurrent runs win; the other stops without damage and says so', async () => {
    const second = new World(world.tenant);
    Object.assign(second, { container: world.container });
    second.configure();
    const [a, b] = await Promise.all([world.run('run-a'), second.run('run-b')]);
    const outcomes = [a.outcome, b.outcome].sort();
    expect(outcomes).toEqual(['concurrent', 'succeeded']);
    const loser = a.outcome === 'concurrent' ? world : second;
    expect(loser.logs.text).toMatch(/another/i);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(150);
  });

  it('fails the run, naming the lease, when the checkpoint blob is leased (not "another run")', async () => {
    expect((await world.run()).outcome).toBe('succeeded');
    const checkpoint = world.container.getBlockBlobClient(CHECKPOINT_BLOB);
    await checkpoint.getBlobLeaseClient().acquireLease(-1);
    const before = await world.checkpoint();
    await expect(world.run()).rejects.toThrow(
      new RegExp(
        `'${CHECKPOINT_BLOB}' in container '${world.container.containerName}' is leased \\(412 LeaseIdMissing\\).*az storage blob lease break`,
      ),
    );
    const summary = world.logs.summaries.at(-1)!;
    expect(summary.outcome).toBe('failed');
    expect(summary.reason).toMatch(/lease/);
    expect((await world.checkpoint())!.etag).toBe(before!.etag);
  });

  it('stops at the time budget and resumes in the next run', async () => {
    // Updates all over the first window (the lookback), so its first pages hold some at any time of day: with
    // updates only in the last 30 hours, the first two time slices after about 18:00 UTC are empty, and the run
    // spends its budget on them.
    world.tenant.store = new IncidentStore(7, world.clock.now);
    world.tenant.store.generate(150, {
      from: new Date(Date.now() - 47 * HOUR),
      to: new Date(Date.now() - HOUR),
    });
    let fakeNow = Date.now();
    const clock = { now: () => fakeNow };
    world.tenant.afterPage = () => {
      fakeNow += 60_000; // every page "takes" a minute
    };
    world.configure({
      settings: { EXPORT_MAX_RUN_DURATION: 'PT2M', EXPORT_INCLUDE_ALERTS: 'false' },
      composition: { clock, maxBlobBytes: 1 },
    });
    const first = await world.run();
    expect(first.outcome).toBe('partial');
    expect(first.reason).toMatch(/EXPORT_MAX_RUN_DURATION/);
    expect(first.incidents).toBeLessThan(150);
    expect(first.incidents).toBeGreaterThan(0);
    let runs = 1;
    for (; runs < 20 && (await world.run()).outcome === 'partial'; runs++);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(150);
    expect(runs).toBeGreaterThan(1);
  });
});
