import { ApiError } from '../../src/errors';
import { ApiClient, type ApiClientOptions } from '../../src/source/apiClient';
import { SimulatedTenant, type Fault } from '../../src/sandbox/simulatedTenant';
import { TenantTokenProvider } from '../support/memory/tenantTokenProvider';
import { LogRecorder } from '../support/world';

/** The real ApiClient against the simulated tenant's routes in memory, with faults by request index. */
function setup(faults: Record<number, Fault>, options: Partial<ApiClientOptions> = {}) {
  const now = { ms: Date.UTC(2026, 2, 1, 12) };
  const tenant = SimulatedTenant.inMemory({ clock: () => now.ms });
  tenant.store.generate(3, { from: new Date(now.ms - 3_600_000), to: new Date(now.ms - 60_000) });
  tenant.intercept = (request) => (request.api === 'graph' ? faults[request.index] : undefined);
  const tokens = new TenantTokenProvider(tenant);
  const sleeps: number[] = [];
  const client = new ApiClient({
    allowedOrigin: tenant.origin,
    getToken: tokens.getToken,
    logger: new LogRecorder(),
    transport: tenant.transport,
    timeoutInMs: 20,
    maxAttempts: 3,
    random: () => 0.5,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    now: () => now.ms,
    ...options,
  });
  const get = () => client.getJson(`${tenant.origin}/v1.0/security/incidents?$top=10`);
  return { tenant, tokens, client, sleeps, get };
}

describe('ApiClient over an injected transport (the simulated tenant in memory)', () => {
  it('reads a page and the API clock from the Date header', async () => {
    const { client, get } = setup({});
    const page = (await get()) as { value: unknown[] };
    expect(page.value).toHaveLength(3);
    expect(client.serverNow()).toBe(Date.UTC(2026, 2, 1, 12) + 999);
    expect(client.stats.requests).toBe(1);
  });

  it('ends a hanging request at its timeout and tries again', async () => {
    const { client, get, sleeps } = setup({ 0: { kind: 'hang' } });
    expect(((await get()) as { value: unknown[] }).value).toHaveLength(3);
    expect(client.stats.requests).toBe(2);
    expect(sleeps).toEqual([500]);
  });

  it('retries a reset connection and a cut body, and gives up after maxAttempts', async () => {
    const ok = setup({ 0: { kind: 'reset' }, 1: { kind: 'truncate' } });
    expect(((await ok.get()) as { value: unknown[] }).value).toHaveLength(3);
    expect(ok.client.stats.retries).toBe(2);

    const broken = setup({ 0: { kind: 'reset' }, 1: { kind: 'reset' }, 2: { kind: 'reset' } });
    const thrown = await broken.get().catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(ApiError);
    expect((thrown as Error).message).toMatch(/failed after 3 attempts: ECONNRESET/);
  });

  it('waits as long as Retry-After says on a 429', async () => {
    const { get, sleeps, client } = setup({ 0: { status: 429, headers: { 'Retry-After': '7' } } });
    await get();
    expect(sleeps).toEqual([7000]);
    expect(client.stats.throttles).toBe(1);
  });

  it('gets a fresh token once after a 401, and the tokens it used are the tenant’s', async () => {
    const { get, tenant, tokens } = setup({});
    await get();
    tenant.revokeAllTokens();
    await get();
    expect(tokens.requests).toBe(2);
    expect(tenant.issuedTokens).toHaveLength(2);
  });

  it('explains a 401 after the refresh and a 403 from the token that was sent, and nothing else', async () => {
    const explained: { token: string; status: number }[] = [];
    const explainRefusal = (token: string, status: number) => {
      explained.push({ token, status });
      return `explained ${status}`;
    };
    const rejected = setup({ 0: { status: 401 }, 1: { status: 401 } }, { explainRefusal });
    await expect(rejected.get()).rejects.toThrow(/HTTP 401 .*\(explained 401\)$/);
    expect(explained).toEqual([{ token: rejected.tenant.issuedTokens.at(-1), status: 401 }]);
    expect(rejected.tenant.issuedTokens).toHaveLength(2);

    const forbidden = setup({ 0: { status: 403 } }, { explainRefusal });
    await expect(forbidden.get()).rejects.toThrow(/HTTP 403 .*\(explained 403\)$/);
    expect(explained.at(-1)).toEqual({ token: forbidden.tenant.issuedTokens.at(-1), status: 403 });

    const missing = setup({ 0: { status: 404 } }, { explainRefusal });
    await expect(missing.get()).rejects.toThrow(/HTTP 404 .*check DEFENDER_API_URL/);
    expect(explained).toHaveLength(2);
  });

  it('does not retry a 403, and an abort ends a hang at once', async () => {
    const forbidden = setup({ 0: { status: 403 } });
    await expect(forbidden.get()).rejects.toThrow(/HTTP 403/);
    expect(forbidden.client.stats.requests).toBe(1);

    const controller = new AbortController();
    const hanging = setup({ 0: { kind: 'hang' } }, { timeoutInMs: 60_000 });
    const request = hanging.client.getJson(`${hanging.tenant.origin}/v1.0/security/incidents`, {
      abortSignal: controller.signal,
    });
    controller.abort(new Error('run cancelled'));
    await expect(request).rejects.toThrow();
    expect(hanging.client.stats.retries).toBe(0);
  });
});
