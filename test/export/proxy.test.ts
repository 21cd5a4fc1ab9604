import { createServer, type AddressInfo } from 'node:net';
import { parseConfig } from '../../src/config';
import { describeProxy, proxyFor } from '../../src/source/proxy';
import { ConnectProxy } from '../support/connectProxy';
import { World } from '../support/world';

const HOUR = 3_600_000;

describe('HTTPS_PROXY for the incidents API', () => {
  let world: World;
  let proxy: ConnectProxy | undefined;
  beforeEach(async () => {
    world = await World.start();
    const now = Date.now();
    world.tenant.store.generate(30, { from: new Date(now - 10 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    await world.close();
  });

  async function started(credentials?: { user: string; password: string }): Promise<ConnectProxy> {
    proxy = await ConnectProxy.start(credentials);
    return proxy;
  }

  /** Counts the incidents API requests that reached the tenant. */
  const apiRequests = () => world.tenant.requests.filter((r) => r.api === 'graph').length;

  it('tunnels every incidents API connection through the proxy, with its credentials, and logs none', async () => {
    const proxy = await started({ user: 'svc-export', password: 'pr0xy-Passw0rd!' });
    world.configure({ settings: { HTTPS_PROXY: proxy.url } });
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await world.exported()).toHaveLength(30);
    expect(apiRequests()).toBeGreaterThan(0);
    const target = new URL(world.tenant.origin).host;
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(proxy.tunnels.every((t) => t === target)).toBe(true);
    expect(world.logs.text).toContain(`http://127.0.0.1:${proxy.port}`);
    expect(world.logs.text).not.toContain('pr0xy-Passw0rd!');
    expect(world.logs.text).not.toContain(encodeURIComponent('pr0xy-Passw0rd!'));
  });

  it('goes direct to a host that NO_PROXY covers', async () => {
    const proxy = await started();
    world.configure({ settings: { https_proxy: proxy.url, NO_PROXY: 'example.com, 127.0.0.1' } });
    expect((await world.run()).outcome).toBe('succeeded');
    expect(apiRequests()).toBeGreaterThan(0);
    expect(proxy.tunnels).toEqual([]);
  });

  it('says a proxy is in use, naming it without credentials, when it cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    world.configure({
      settings: { HTTPS_PROXY: `http://svc-export:pr0xy-Passw0rd!@127.0.0.1:${port}` },
      composition: { http: { maxAttempts: 2, timeoutInMs: 2_000, sleep: () => Promise.resolve() } },
    });
    const failure = world.run();
    await expect(failure).rejects.toThrow(
      new RegExp(`proxy http://127\\.0\\.0\\.1:${port} \\(HTTPS_PROXY\\).*ECONNREFUSED`),
    );
    await expect(failure).rejects.not.toThrow(/pr0xy-Passw0rd|svc-export/);
    expect(world.logs.text).not.toContain('pr0xy-Passw0rd!');
  });

  it('says the proxy refused the tunnel, not that the API answered, when it denies CONNECT', async () => {
    const proxy = await started();
    proxy.refuseWith = 403;
    world.configure({
      settings: { HTTPS_PROXY: proxy.url },
      composition: { http: { maxAttempts: 2, timeoutInMs: 2_000, sleep: () => Promise.resolve() } },
    });
    await expect(world.run()).rejects.toThrow(
      new RegExp(
        `proxy http://127\\.0\\.0\\.1:${proxy.port} \\(HTTPS_PROXY\\) refused the tunnel to 127\\.0\\.0\\.1:\\d+ \\(HTTP 403\\)`,
      ),
    );
    expect(apiRequests()).toBe(0);
  });
});

describe('proxyFor', () => {
  const settings = (
    noProxy: string,
    env: Record<string, string> = { HTTPS_PROXY: 'http://u:p@proxy:3128' },
  ) =>
    parseConfig({
      DEFENDER_TENANT_ID: '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87',
      DEFENDER_CLIENT_ID: '8f3c2a1e-5b7d-4c9a-9e21-3d4f5a6b7c8d',
      DEFENDER_CLIENT_SECRET: 'local-secret',
      EXPORT_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
      NO_PROXY: noProxy,
      ...env,
    }).proxy;

  it.each<[string, string, boolean]>([
    ['https://graph.microsoft.com/v1.0', '', true],
    ['https://graph.microsoft.com/v1.0', 'graph.microsoft.com', false],
    ['https://graph.microsoft.com/v1.0', 'GRAPH.microsoft.com', false],
    ['https://graph.microsoft.com/v1.0', '.microsoft.com', false],
    ['https://graph.microsoft.com/v1.0', '*.microsoft.com', false],
    ['https://microsoft.com', '.microsoft.com', false],
    ['https://graph.microsoft.com/v1.0', 'microsoft.com', true],
    ['https://notmicrosoft.com', '.microsoft.com', true],
    ['https://graph.microsoft.com/v1.0', '*', false],
  ])('%s with NO_PROXY=%p is proxied: %p', (target, noProxy, proxied) => {
    expect(proxyFor(new URL(target), settings(noProxy)) !== undefined).toBe(proxied);
  });

  it('takes HTTP_PROXY for https targets only when HTTPS_PROXY and ALL_PROXY are unset, as the Azure SDK', () => {
    const p = settings('', { HTTP_PROXY: 'http://web:8080', ALL_PROXY: 'http://all:8080' });
    expect(proxyFor(new URL('https://graph.microsoft.com'), p)?.variable).toBe('ALL_PROXY');
    expect(proxyFor(new URL('http://127.0.0.1:1'), p)?.variable).toBe('HTTP_PROXY');
    expect(describeProxy(proxyFor(new URL('https://x.org'), settings(''))!)).toBe(
      'proxy http://proxy:3128 (HTTPS_PROXY)',
    );
  });

  it('names a bad proxy variable without its credentials', () => {
    expect(() => settings('', { HTTPS_PROXY: 'socks5://svc:pa55w0rd-secret@proxy:1080' })).toThrow(
      /HTTPS_PROXY is 'socks5:\/\/proxy:1080': expected an http:\/\/ or https:\/\/ proxy URL/,
    );
  });
});
