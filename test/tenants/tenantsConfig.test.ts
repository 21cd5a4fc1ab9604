import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  configForTenant,
  findTenant,
  parseConfig,
  parseStorageConfig,
  QUEUE_MAX_DEQUEUE_COUNT,
  QUEUE_SETTINGS,
  tenantConfigs,
} from '../../src/config';
import { configProblems } from '../support/configProblems';

const A = '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87';
const B = '5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f';
const APP = '8f3c2a1e-5b7d-4c9a-9e21-3d4f5a6b7c8d';
const OTHER_APP = '2b4d6f80-9a1c-4e3b-8d5f-7a9c1e3b5d7f';

const base = {
  DEFENDER_CLIENT_ID: APP,
  KEY_VAULT_URL: 'https://kv-soc.vault.azure.net',
  EXPORT_STORAGE_ACCOUNT_URL: 'https://stsoc.blob.core.windows.net',
};

const problems = configProblems;

describe('DEFENDER_TENANTS', () => {
  const tenants = [
    { tenantId: A, container: 'contoso', name: 'Contoso' },
    { tenantId: B.toUpperCase(), container: 'fabrikam', api: 'legacy', clientId: OTHER_APP },
  ];
  const config = parseConfig({ ...base, DEFENDER_TENANTS: JSON.stringify(tenants) });

  it('needs no DEFENDER_TENANT_ID and fills in the defaults of each entry', () => {
    expect(config.tenants).toEqual([
      { tenantId: A, container: 'contoso', api: 'graph', clientId: APP, name: 'Contoso' },
      { tenantId: B, container: 'fabrikam', api: 'legacy', clientId: OTHER_APP, name: B },
    ]);
    expect(config.queue).toBe('defender-export-tenants');
  });

  it('gives each tenant the single-tenant config on its own container, its state there too', () => {
    const [contoso, fabrikam] = tenantConfigs(config) as [typeof config, typeof config];
    expect(contoso).toMatchObject({
      tenantId: A,
      tenantName: 'Contoso',
      clientId: APP,
      api: 'graph',
      apiUrl: 'https://graph.microsoft.com',
      container: 'contoso',
      stateContainer: 'contoso',
      tenants: undefined,
    });
    expect(fabrikam).toMatchObject({
      tenantId: B,
      clientId: OTHER_APP,
      api: 'legacy',
      apiUrl: 'https://api.security.microsoft.com',
      container: 'fabrikam',
      stateContainer: 'fabrikam',
    });
    // DEFENDER_API_URL, when set, serves every tenant (a proxying gateway, the sandbox).
    const custom = parseConfig({
      ...base,
      DEFENDER_API_URL: 'https://127.0.0.1:8443',
      DEFENDER_TENANTS: JSON.stringify(tenants),
    });
    expect(tenantConfigs(custom).map((c) => c.apiUrl)).toEqual([
      'https://127.0.0.1:8443',
      'https://127.0.0.1:8443',
    ]);
  });

  it('finds a tenant by name or ID, case-insensitively, and lists the known ones when it cannot', () => {
    expect(findTenant(config, 'contoso').tenantId).toBe(A);
    expect(findTenant(config, B.toUpperCase()).container).toBe('fabrikam');
    expect(() => findTenant(config, 'northwind')).toThrow(
      /'northwind' is not in DEFENDER_TENANTS: expected one of 'Contoso', '5d6e/,
    );
    expect(() => findTenant(parseConfig({ ...base, DEFENDER_TENANT_ID: A }), 'contoso')).toThrow(
      /needs DEFENDER_TENANTS/,
    );
    expect(configForTenant(config, findTenant(config, 'Contoso')).container).toBe('contoso');
  });

  it('is read by the storage settings too, for status and download', () => {
    const storage = parseStorageConfig({ ...base, DEFENDER_TENANTS: JSON.stringify(tenants) });
    expect(storage.tenants?.map((t) => t.container)).toEqual(['contoso', 'fabrikam']);
  });

  it('reports every bad entry at once, by index and key: GUIDs, containers, API, names, duplicates, unknown keys', () => {
    const p = problems({
      ...base,
      EXPORT_QUEUE: 'Bad_Queue',
      EXPORT_STATE_CONTAINER: 'state',
      DEFENDER_TENANTS: JSON.stringify([
        { tenantId: A, container: 'contoso', name: 'Contoso' },
        { tenantId: 'contoso.onmicrosoft.com', container: 'Bad_Container' },
        { tenantId: A.toUpperCase(), container: 'contoso', name: 'contoso' },
        { tenantId: B, container: 'fabrikam', api: 'beta', clientId: 'not-a-guid', contianer: 'x' },
        'a string',
        { container: 'northwind' },
      ]),
    }).join('\n');
    for (const pattern of [
      /DEFENDER_TENANTS\[1\]\.tenantId is 'contoso\.onmicrosoft\.com': expected the tenant ID, a GUID/,
      /DEFENDER_TENANTS\[1\]\.container is 'Bad_Container': expected 3-63 lowercase/,
      /DEFENDER_TENANTS\[2\]\.tenantId '0C8E3F5A.*' repeats DEFENDER_TENANTS\[0\]\.tenantId/i,
      /DEFENDER_TENANTS\[2\]\.container 'contoso' repeats DEFENDER_TENANTS\[0\]\.container/,
      /DEFENDER_TENANTS\[2\]\.name 'contoso' repeats DEFENDER_TENANTS\[0\]\.name/,
      /DEFENDER_TENANTS\[3\]\.api is 'beta': expected 'graph' or 'legacy'/,
      /DEFENDER_TENANTS\[3\]\.clientId is 'not-a-guid': expected the application \(client\) ID/,
      /DEFENDER_TENANTS\[3\] has the unknown key 'contianer'/,
      /DEFENDER_TENANTS\[4\] is not an object/,
      /DEFENDER_TENANTS\[5\]\.tenantId is missing/,
      /EXPORT_QUEUE is 'Bad_Queue'/,
      /EXPORT_STATE_CONTAINER is set together with DEFENDER_TENANTS/,
    ])
      expect(p).toMatch(pattern);
    expect(p).not.toMatch(/DEFENDER_TENANT_ID/);
  });

  it('says what is wrong with text that is not a list, and needs a client ID for every tenant', () => {
    expect(problems({ ...base, DEFENDER_TENANTS: '[{"tenantId": ' }).join('\n')).toMatch(
      /DEFENDER_TENANTS is not valid JSON/,
    );
    expect(problems({ ...base, DEFENDER_TENANTS: '{}' }).join('\n')).toMatch(/not a non-empty JSON array/);
    expect(problems({ ...base, DEFENDER_TENANTS: '[]' }).join('\n')).toMatch(/not a non-empty JSON array/);
    const withoutApp = { ...base, DEFENDER_CLIENT_ID: '' };
    expect(
      problems({
        ...withoutApp,
        DEFENDER_TENANTS: JSON.stringify([{ tenantId: A, container: 'contoso' }]),
      }).join('\n'),
    ).toMatch(/DEFENDER_CLIENT_ID is missing: .*multi-tenant app/);
    expect(() =>
      parseConfig({
        ...withoutApp,
        DEFENDER_TENANTS: JSON.stringify([{ tenantId: A, container: 'contoso', clientId: OTHER_APP }]),
      }),
    ).not.toThrow();
  });

  it('never quotes a value that may be a secret pasted into the list', () => {
    const secret = 'Xy8Q~abcdefghijklmnopqrstuvwxyz0123456789';
    const p = problems({
      ...base,
      DEFENDER_TENANTS: JSON.stringify([{ tenantId: secret, container: 'contoso' }]),
    });
    expect(p.join('\n')).not.toContain(secret);
    expect(p.join('\n')).toMatch(/DEFENDER_TENANTS\[0\]\.tenantId is a 41-character value/);
  });

  it('without it, nothing changes: DEFENDER_TENANT_ID is required and there is no tenant list', () => {
    expect(problems(base).join('\n')).toMatch(/DEFENDER_TENANT_ID is missing/);
    const single = parseConfig({ ...base, DEFENDER_TENANT_ID: A });
    expect(single.tenants).toBeUndefined();
    expect(tenantConfigs(single)).toEqual([single]);
  });
});

describe('host.json queues', () => {
  const host = JSON.parse(readFileSync(join(__dirname, '..', '..', 'host.json'), 'utf8')) as {
    extensions: { queues: Record<string, unknown> };
  };

  it('shares QUEUE_SETTINGS with host.json, and retries within the hour of the next cycle', () => {
    const q = host.extensions.queues;
    expect(q.maxDequeueCount).toBe(QUEUE_MAX_DEQUEUE_COUNT);
    const [h, m, s] = String(q.visibilityTimeout).split(':').map(Number);
    const retryInMs = ((h! * 60 + m!) * 60 + s!) * 1000;
    // Every try after the first waits the visibility timeout: all of them start before the next hourly cycle.
    expect((QUEUE_MAX_DEQUEUE_COUNT - 1) * retryInMs).toBeLessThan(60 * 60_000);
    expect(q.messageEncoding).toBe('base64');
    expect([q.batchSize, q.newBatchThreshold, q.maxDequeueCount]).toEqual([
      QUEUE_SETTINGS.batchSize,
      QUEUE_SETTINGS.newBatchThreshold,
      QUEUE_SETTINGS.maxDequeueCount,
    ]);
  });
});
