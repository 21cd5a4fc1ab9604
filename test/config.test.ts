import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultSecretProvider, StaticSecretProvider } from '../src/source/secretProvider';
import { ConfigError, redact, registerSecret } from '../src/errors';
import { FUNCTION_TIMEOUT_IN_MS, loadConfig, parseConfig, parseStorageConfig, SETTINGS } from '../src/config';
import { configProblems } from './support/configProblems';

const valid = {
  DEFENDER_TENANT_ID: '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87',
  DEFENDER_CLIENT_ID: '8f3c2a1e-5b7d-4c9a-9e21-3d4f5a6b7c8d',
  KEY_VAULT_URL: 'https://kv-soc.vault.azure.net',
  EXPORT_STORAGE_ACCOUNT_URL: 'https://stsoc.blob.core.windows.net',
};

const problems = configProblems;

describe('parseConfig', () => {
  it('applies the documented defaults', () => {
    const c = parseConfig(valid);
    expect(c).toMatchObject({
      api: 'graph',
      apiUrl: 'https://graph.microsoft.com',
      authorityHost: 'https://login.microsoftonline.com',
      keyVaultSecretName: 'defender-client-secret',
      container: 'defender-incidents',
      schedule: '0 0 * * * *',
      initialLookbackInMs: 48 * 3_600_000,
      settleDelayInMs: 5 * 60_000,
      maxRunDurationInMs: 25 * 60_000,
      format: 'json',
      compression: 'none',
      includeAlerts: true,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('uses the legacy host by default for DEFENDER_API=legacy', () => {
    expect(parseConfig({ ...valid, DEFENDER_API: 'Legacy' }).apiUrl).toBe(
      'https://api.security.microsoft.com',
    );
    expect(parseConfig({ ...valid, DEFENDER_API_URL: 'https://graph.microsoft.us/' }).apiUrl).toBe(
      'https://graph.microsoft.us',
    );
  });

  it('accepts the local-development alternatives', () => {
    const c = parseConfig({
      DEFENDER_TENANT_ID: 'contoso.onmicrosoft.com',
      DEFENDER_CLIENT_ID: valid.DEFENDER_CLIENT_ID,
      DEFENDER_CLIENT_SECRET: 's3cr3t',
      EXPORT_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
    });
    expect(c.keyVaultUrl).toBeUndefined();
    expect(c.clientSecret).toBe('s3cr3t');
  });

  it('reports every missing setting at once, by name', () => {
    const p = problems({});
    expect(p).toHaveLength(4);
    expect(p.join('\n')).toMatch(/DEFENDER_TENANT_ID is missing/);
    expect(p.join('\n')).toMatch(/DEFENDER_CLIENT_ID is missing/);
    expect(p.join('\n')).toMatch(/KEY_VAULT_URL is missing.*DEFENDER_CLIENT_SECRET/);
    expect(p.join('\n')).toMatch(/EXPORT_STORAGE_ACCOUNT_URL is missing.*EXPORT_STORAGE_CONNECTION_STRING/);
  });

  it.each<[string, string, RegExp]>([
    ['DEFENDER_TENANT_ID', 'not a tenant!', /DEFENDER_TENANT_ID is 'not a tenant!': expected a GUID/],
    ['DEFENDER_CLIENT_ID', 'abc', /DEFENDER_CLIENT_ID is 'abc': expected the application \(client\) ID/],
    ['DEFENDER_API', 'beta', /DEFENDER_API is 'beta': expected one of 'graph', 'legacy'/],
    ['DEFENDER_API_URL', 'http://graph.microsoft.com', /DEFENDER_API_URL .* expected an https:\/\/ URL/],
    ['DEFENDER_API_URL', 'https://graph.microsoft.com/?x=1', /DEFENDER_API_URL .* without query/],
    [
      'DEFENDER_AUTHORITY_HOST',
      'nope',
      /DEFENDER_AUTHORITY_HOST is 'nope': expected an absolute https:\/\/ URL/,
    ],
    ['DEFENDER_AUTHORITY_HOST', 'http://127.0.0.1:1', /DEFENDER_AUTHORITY_HOST .* Entra requires https/],
    ['KEY_VAULT_URL', 'kv-soc', /KEY_VAULT_URL is 'kv-soc'/],
    ['KEY_VAULT_SECRET_NAME', 'bad_name', /KEY_VAULT_SECRET_NAME is 'bad_name'/],
    ['AZURE_CLIENT_ID', 'x', /AZURE_CLIENT_ID is 'x'/],
    ['EXPORT_STORAGE_ACCOUNT_URL', 'ftp://x', /EXPORT_STORAGE_ACCOUNT_URL/],
    [
      'EXPORT_STORAGE_CONNECTION_STRING',
      'hello',
      /EXPORT_STORAGE_CONNECTION_STRING is not a storage connection string/,
    ],
    ['EXPORT_CONTAINER', 'Bad_Container', /EXPORT_CONTAINER is 'Bad_Container'/],
    ['EXPORT_SCHEDULE', '0 * * * *', /EXPORT_SCHEDULE .* 6 fields/],
    ['EXPORT_INITIAL_LOOKBACK', '48h', /EXPORT_INITIAL_LOOKBACK is '48h': expected an ISO-8601 duration/],
    [
      'EXPORT_INITIAL_LOOKBACK',
      'P365D',
      /EXPORT_INITIAL_LOOKBACK is 'P365D': expected a duration between PT1M and P180D/,
    ],
    ['EXPORT_SETTLE_DELAY', 'P2D', /EXPORT_SETTLE_DELAY is 'P2D'/],
    ['EXPORT_MAX_RUN_DURATION', 'PT1S', /EXPORT_MAX_RUN_DURATION is 'PT1S'/],
    ['EXPORT_STATE_CONTAINER', 'State_', /EXPORT_STATE_CONTAINER is 'State_'/],
    ['EXPORT_FORMAT', 'csv', /EXPORT_FORMAT is 'csv': expected one of 'json', 'jsonl'/],
    ['EXPORT_COMPRESSION', 'zip', /EXPORT_COMPRESSION is 'zip': expected one of 'none', 'gzip'/],
    ['EXPORT_INCLUDE_ALERTS', 'yes', /EXPORT_INCLUDE_ALERTS is 'yes': expected one of 'true', 'false'/],
  ])('names %s when it is %p', (name, value, pattern) => {
    const p = problems({ ...valid, [name]: value });
    expect(p.join('\n')).toMatch(pattern);
  });

  it('documents every setting it reads, and reads every setting it documents', () => {
    const source = readFileSync(join(__dirname, '..', 'src', 'config.ts'), 'utf8');
    const body = source.slice(source.indexOf('} as const satisfies'));
    const read = new Set([...body.matchAll(/\(\s*'([A-Z][A-Z_]+)'/g)].map((m) => m[1]!));
    expect([...read].sort()).toEqual(Object.keys(SETTINGS).sort());
  });
});

describe('EXPORT_MAX_RUN_DURATION and the function timeout', () => {
  it('shares FUNCTION_TIMEOUT_IN_MS with host.json functionTimeout', () => {
    const host = JSON.parse(readFileSync(join(__dirname, '..', 'host.json'), 'utf8')) as {
      functionTimeout: string;
    };
    const [h, m, s] = host.functionTimeout.split(':').map(Number);
    expect(((h! * 60 + m!) * 60 + s!) * 1000).toBe(FUNCTION_TIMEOUT_IN_MS);
  });

  it('rejects a budget the Functions host would cut short, naming the setting and host.json', () => {
    expect(parseConfig(valid).maxRunDurationInMs).toBe(25 * 60_000);
    expect(parseConfig({ ...valid, EXPORT_MAX_RUN_DURATION: 'PT25M' }).maxRunDurationInMs).toBe(25 * 60_000);
    const p = problems({ ...valid, EXPORT_MAX_RUN_DURATION: 'PT29M' }).join('\n');
    expect(p).toMatch(/EXPORT_MAX_RUN_DURATION is 'PT29M': expected a duration between PT30S and PT25M/);
    expect(p).toMatch(/host\.json functionTimeout \(00:30:00\)/);
    expect(problems({ ...valid, EXPORT_MAX_RUN_DURATION: 'PT4H' }).join('\n')).toMatch(/host\.json/);
  });

  it('lets the CLI, which no host.json stops, run for longer', () => {
    expect(
      parseConfig({ ...valid, EXPORT_MAX_RUN_DURATION: 'PT4H' }, { runner: 'cli' }).maxRunDurationInMs,
    ).toBe(4 * 3_600_000);
    expect(() => parseConfig({ ...valid, EXPORT_MAX_RUN_DURATION: 'P2D' }, { runner: 'cli' })).toThrow(
      /EXPORT_MAX_RUN_DURATION is 'P2D': expected a duration between PT30S and P1D/,
    );
  });
});

describe('configuration errors never echo a secret', () => {
  const SIG = 'k2J8vQzX%2FsecretSignature%3D';
  const PASTED = 'Q8x8Q~Zq3vR0aB1cD2eF3gH4iJ5kL6mN7oP8qR9s';

  function message(env: Record<string, string>): string {
    try {
      parseConfig(env);
    } catch (e) {
      if (e instanceof ConfigError) return `${e.message}\n${e.problems.join('\n')}`;
      throw e;
    }
    throw new Error('expected a ConfigError');
  }

  it('names a SAS in EXPORT_STORAGE_ACCOUNT_URL without printing its signature', () => {
    const m = message({
      ...valid,
      EXPORT_STORAGE_ACCOUNT_URL: `https://stsoc.blob.core.windows.net/?sv=2022-11-02&ss=b&srt=co&sp=rwl&sig=${SIG}`,
    });
    expect(m).toMatch(/EXPORT_STORAGE_ACCOUNT_URL .*https:\/\/stsoc\.blob\.core\.windows\.net\//);
    expect(m).toMatch(/a query string was given \(it may hold a SAS\): remove it/);
    expect(m).not.toContain(SIG);
    expect(m).not.toContain('sv=2022');
  });

  it('prints no credentials of a URL setting', () => {
    const m = message({ ...valid, KEY_VAULT_URL: `https://admin:${PASTED}@kv-soc.vault.azure.net` });
    expect(m).toMatch(/KEY_VAULT_URL .*https:\/\/kv-soc\.vault\.azure\.net.*credentials/);
    expect(m).not.toContain(PASTED);
    expect(m).not.toContain('admin');
  });

  it.each([
    'DEFENDER_CLIENT_ID',
    'DEFENDER_TENANT_ID',
    'AZURE_CLIENT_ID',
    'KEY_VAULT_URL',
    'EXPORT_CONTAINER',
    'EXPORT_MAX_RUN_DURATION',
    'DEFENDER_API',
    'KEY_VAULT_SECRET_NAME',
    'EXPORT_SCHEDULE',
  ])('describes a client secret pasted into %s without echoing it', (name) => {
    const m = message({ ...valid, [name]: PASTED });
    expect(m).toMatch(new RegExp(`${name} is a ${PASTED.length}-character value`));
    expect(m).not.toContain(PASTED);
    expect(m).not.toContain(PASTED.slice(0, 12));
  });

  it('runs its message through redact(), like every other error', () => {
    registerSecret('registered-secret-value-1234', { longLived: true });
    const e = new ConfigError(['EXPORT_X is registered-secret-value-1234']);
    expect(e.message).not.toContain('registered-secret-value-1234');
    expect(e.problems.join('')).not.toContain('registered-secret-value-1234');
  });

  it.each<[string, string, RegExp]>([
    [
      'a missing comma',
      `{\n  "Values": {\n    "DEFENDER_CLIENT_SECRET": "${PASTED}"\n    "X": 1\n  }\n}\n`,
      /local\.settings\.json is not valid JSON \(line 4, column 5\)\./,
    ],
    [
      'an unquoted value',
      `{\n  "Values": {\n    "DEFENDER_CLIENT_SECRET": ${PASTED}\n  }\n}\n`,
      /local\.settings\.json is not valid JSON( \(line 3, column 31\))?\./,
    ],
  ])('reports invalid JSON in local.settings.json (%s) without an excerpt', (_case, text, pattern) => {
    const dir = mkdtempSync(join(tmpdir(), 'settings-'));
    const path = join(dir, 'local.settings.json');
    writeFileSync(path, text);
    let thrown: unknown;
    try {
      loadConfig(path);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const m = (thrown as ConfigError).message;
    expect(m).toMatch(pattern);
    expect(m).not.toContain(PASTED.slice(0, 4));
    expect(m).not.toContain('DEFENDER_CLIENT_SECRET');
  });
});

describe('redaction registry', () => {
  const tokens = (run: string) => {
    for (let i = 0; i < 40; i++) registerSecret(`token-${run}-${i}-${'y'.repeat(20)}`);
  };

  it('keeps a long-lived secret registered however many tokens rotate through', () => {
    const secret = `client-secret~${'x'.repeat(8)}-${Date.now()}`;
    registerSecret(secret, { longLived: true });
    tokens('a');
    expect(redact(`the secret is ${secret}.`)).toBe('the secret is [REDACTED].');
    expect(redact(`token-a-39-${'y'.repeat(20)}`)).toBe('[REDACTED]');
  });

  it('keeps the client secret of either provider registered after 40 token refreshes', async () => {
    const local = `local~${randomBytes(12).toString('base64url')}`;
    new StaticSecretProvider(local);
    const vaulted = `vault~${randomBytes(12).toString('base64url')}`;
    await new KeyVaultSecretProvider({
      client: {
        getSecret: (name: string) =>
          Promise.resolve({ name, value: vaulted, properties: { name, vaultUrl: 'https://kv' } }),
      },
      vaultUrl: 'https://kv-soc.vault.azure.net',
      secretName: 'defender-client-secret',
      identityClientId: undefined,
    }).getClientSecret();
    tokens('b');
    expect(redact(`${local} ${vaulted}`)).toBe('[REDACTED] [REDACTED]');
  });
});

describe('DEFENDER_CREDENTIAL', () => {
  const federated = {
    ...valid,
    KEY_VAULT_URL: '',
    DEFENDER_CREDENTIAL: 'federated',
    AZURE_CLIENT_ID: '5a1c9e2f-3b4d-4e6f-8a7b-9c0d1e2f3a4b',
  };

  it('defaults to secret, exactly as before: the Key Vault secret', () => {
    expect(parseConfig(valid)).toMatchObject({
      credential: 'secret',
      keyVaultUrl: 'https://kv-soc.vault.azure.net',
      keyVaultSecretName: 'defender-client-secret',
      keyVaultCertificateName: undefined,
    });
  });

  it.each([
    ['https://login.microsoftonline.com', 'api://AzureADTokenExchange'],
    ['https://login.microsoftonline.us', 'api://AzureADTokenExchangeUSGov'],
    ['https://login.chinacloudapi.cn', 'api://AzureADTokenExchangeChina'],
  ])('federated on %s: audience %s, overridable', (authority, audience) => {
    expect(parseConfig({ ...federated, DEFENDER_AUTHORITY_HOST: authority })).toMatchObject({
      credential: 'federated',
      federationAudience: audience,
      keyVaultUrl: undefined,
    });
    expect(
      parseConfig({
        ...federated,
        DEFENDER_AUTHORITY_HOST: authority,
        DEFENDER_FEDERATION_AUDIENCE: 'api://contoso-exchange',
      }).federationAudience,
    ).toBe('api://contoso-exchange');
  });

  it('reports settings of another mode by name', () => {
    expect(
      problems({ ...valid, KEY_VAULT_CERTIFICATE_NAME: 'cert', DEFENDER_FEDERATION_AUDIENCE: 'api://x' }),
    ).toEqual([
      expect.stringMatching(/^DEFENDER_FEDERATION_AUDIENCE is set, but DEFENDER_CREDENTIAL=secret/),
      expect.stringMatching(
        /^KEY_VAULT_CERTIFICATE_NAME is set, but DEFENDER_CREDENTIAL=secret .*DEFENDER_CREDENTIAL=certificate/,
      ),
    ]);
    expect(problems({ ...valid, DEFENDER_CREDENTIAL: 'managed' })).toEqual([
      "DEFENDER_CREDENTIAL is 'managed': expected one of 'secret', 'federated', 'certificate'.",
    ]);
    expect(
      parseConfig({
        ...valid,
        DEFENDER_CREDENTIAL: 'certificate',
        KEY_VAULT_CERTIFICATE_NAME: 'defender-cert',
      }),
    ).toMatchObject({ credential: 'certificate', keyVaultCertificateName: 'defender-cert' });
  });
});

describe('parseStorageConfig', () => {
  it('needs only the storage settings, and applies the same defaults', () => {
    const c = parseStorageConfig({ EXPORT_STORAGE_ACCOUNT_URL: 'https://stsoc.blob.core.windows.net/' });
    expect(c).toEqual({
      managedIdentityClientId: undefined,
      storageAccountUrl: 'https://stsoc.blob.core.windows.net',
      storageConnectionString: undefined,
      stateContainer: 'defender-incidents',
      container: 'defender-incidents',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(parseStorageConfig(valid)).toMatchObject({ container: 'defender-incidents' });
  });

  it('reports every bad storage setting at once, with the messages of parseConfig', () => {
    let thrown: unknown;
    try {
      parseStorageConfig({ AZURE_CLIENT_ID: 'x', EXPORT_CONTAINER: 'Bad_Container', DEFENDER_API: 'beta' });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const p = (thrown as ConfigError).problems;
    expect(p).toHaveLength(3);
    expect(p.join('\n')).toMatch(/AZURE_CLIENT_ID is 'x'/);
    expect(p.join('\n')).toMatch(/EXPORT_STORAGE_ACCOUNT_URL is missing.*EXPORT_STORAGE_CONNECTION_STRING/);
    expect(p.join('\n')).toMatch(/EXPORT_CONTAINER is 'Bad_Container'/);
  });
});
