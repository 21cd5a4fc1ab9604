import { ConfigError } from '../../src/errors';
import { parseConfig } from '../../src/config';
import { World } from '../support/world';

const HOUR = 3_600_000;

/** The problems parseConfig reports for `settings` over a valid app and storage account. */
function problemsOf(settings: Record<string, string>): readonly string[] {
  try {
    parseConfig({
      DEFENDER_TENANT_ID: '11111111-1111-1111-1111-111111111111',
      DEFENDER_CLIENT_ID: '22222222-2222-2222-2222-222222222222',
      EXPORT_STORAGE_ACCOUNT_URL: 'https://st.blob.core.windows.net',
      ...settings,
    });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

/** A world in `credential` mode with a few incidents to export. */
async function startWorld(
  credential: 'federated' | 'certificate',
  settings: Record<string, string> = {},
): Promise<World> {
  const world = await World.start({ credential, settings });
  const now = Date.now();
  world.tenant.store.generate(5, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });
  return world;
}

describe('federated mode: what to fix', () => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  /** The values the federated credential must carry, as the message must give them. */
  function ficValues(): RegExp[] {
    const t = world.tenant;
    return [
      new RegExp(`issuer '${t.identityIssuer.replace(/[.]/g, '\\.')}'`),
      new RegExp(
        `subject '${t.identityPrincipalId}' \\(the principal ID of the managed identity AZURE_CLIENT_ID ${t.identityClientId}\\)`,
      ),
      /audience 'api:\/\/AzureADTokenExchange'/,
      new RegExp(`az ad app federated-credential create --id ${t.clientId}`),
    ];
  }

  it.each([
    ['no federated credential at all', '70021', () => []],
    [
      'another subject',
      '700213',
      (w: World) => [
        {
          issuer: w.tenant.identityIssuer,
          subject: '00000000-0000-0000-0000-000000000001',
          audiences: ['api://AzureADTokenExchange'],
        },
      ],
    ],
    [
      'another issuer',
      '700211',
      (w: World) => [
        {
          issuer: `${w.tenant.origin}/other/v2.0`,
          subject: w.tenant.identityPrincipalId,
          audiences: ['api://AzureADTokenExchange'],
        },
      ],
    ],
    [
      'another audience',
      '700212',
      (w: World) => [
        {
          issuer: w.tenant.identityIssuer,
          subject: w.tenant.identityPrincipalId,
          audiences: ['api://AzureADTokenExchangeUSGov'],
        },
      ],
    ],
  ])(
    'a missing or wrong federated credential (%s) names the identity and the values',
    async (_case, code, fics) => {
      world = await startWorld('federated');
      world.tenant.federatedCredentials = fics(world);
      const error = await world.run().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toContain(`AADSTS${code}`);
      for (const pattern of ficValues()) expect(error?.message).toMatch(pattern);
    },
  );

  it('an identity not assigned to the function app', async () => {
    world = await startWorld('federated');
    world.tenant.identityAssigned = false;
    await expect(world.run()).rejects.toThrow(
      new RegExp(
        `no user-assigned identity with client ID ${world.tenant.identityClientId}.*az functionapp identity assign`,
      ),
    );
    expect(world.tenant.requests.filter((r) => r.api === 'entra' && r.path.endsWith('/token'))).toEqual([]);
  });

  it('an expired assertion: what to check', async () => {
    world = await startWorld('federated');
    const stale = world.tenant.issueIdentityToken('api://AzureADTokenExchange', {
      issuedAt: Date.now() - 3 * HOUR,
    });
    world.tenant.intercept = ({ api }) =>
      api === 'identity'
        ? {
            status: 200,
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
              access_token: stale,
              expires_in: '3599',
              expires_on: String(Math.floor(Date.now() / 1000) + 3599),
              resource: 'api://AzureADTokenExchange',
              token_type: 'Bearer',
            }),
          }
        : undefined;
    await expect(world.run()).rejects.toThrow(/AADSTS700024.*clock/);
    expect(world.tenant.requests.filter((r) => r.api === 'identity').length).toBe(1);
  });

  it('reports a cross-cloud audience, federated without AZURE_CLIENT_ID and secret settings, all at once', () => {
    const problems = problemsOf({
      DEFENDER_CREDENTIAL: 'federated',
      DEFENDER_FEDERATION_AUDIENCE: 'api://AzureADTokenExchangeUSGov',
      DEFENDER_CLIENT_SECRET: 'abc~not-shown-0123456789',
      KEY_VAULT_URL: 'https://kv.vault.azure.net',
      KEY_VAULT_CERTIFICATE_NAME: 'cert',
    });
    const text = problems.join('\n');
    expect(problems).toHaveLength(5);
    expect(text).toMatch(
      /DEFENDER_FEDERATION_AUDIENCE is 'api:\/\/AzureADTokenExchangeUSGov', the usgov cloud's.*across clouds is not supported/,
    );
    expect(text).toMatch(/AZURE_CLIENT_ID is missing: DEFENDER_CREDENTIAL=federated needs/);
    expect(text).toMatch(/DEFENDER_CLIENT_SECRET is set, but DEFENDER_CREDENTIAL=federated uses no secret/);
    expect(text).toMatch(/KEY_VAULT_URL is set, but DEFENDER_CREDENTIAL=federated/);
    expect(text).toMatch(/KEY_VAULT_CERTIFICATE_NAME is set, but DEFENDER_CREDENTIAL=federated/);
    expect(text).not.toContain('not-shown');
  });
});

describe('certificate mode: what to fix', () => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  it('a certificate not found', async () => {
    world = await startWorld('certificate', { KEY_VAULT_CERTIFICATE_NAME: 'no-such-cert' });
    await expect(world.run()).rejects.toThrow(
      /Certificate 'no-such-cert' was not found in Key Vault .*az keyvault certificate create.*KEY_VAULT_CERTIFICATE_NAME/,
    );
  });

  it('an expired certificate, before Entra is asked', async () => {
    world = await startWorld('certificate', { KEY_VAULT_CERTIFICATE_NAME: 'old-cert' });
    await world.tenant.createCertificate('old-cert', { validForMs: -60_000 });
    await expect(world.run()).rejects.toThrow(
      /'old-cert' .*expired on .*Renew it.*az ad app credential reset/,
    );
    expect(world.tenant.requests.filter((r) => r.api === 'entra')).toEqual([]);
  });

  it('a certificate without its private key (not exportable)', async () => {
    world = await startWorld('certificate', { KEY_VAULT_CERTIFICATE_NAME: 'hsm-cert' });
    await world.tenant.createCertificate('hsm-cert', { exportable: false });
    await expect(world.run()).rejects.toThrow(/'hsm-cert' .*has no private key.*exportable/);
  });

  it('a certificate in PKCS#12', async () => {
    world = await startWorld('certificate');
    world.tenant.secretContentTypes.set('defender-export-cert', 'application/x-pkcs12');
    await expect(world.run()).rejects.toThrow(/PKCS#12.*application\/x-pem-file/);
  });

  it('a certificate not uploaded to the app: re-read once, then how to upload it', async () => {
    world = await startWorld('certificate', { KEY_VAULT_CERTIFICATE_NAME: 'new-cert' });
    await world.tenant.createCertificate('new-cert', { upload: false });
    const reads = world.tenant.secretReads;
    await expect(world.run()).rejects.toThrow(
      new RegExp(
        `AADSTS700027.*az ad app credential reset --id ${world.tenant.clientId} --cert @cert.pem --append`,
      ),
    );
    expect(world.tenant.secretReads - reads).toBe(2);
  });

  it('the identity lacking the Key Vault role', async () => {
    world = await startWorld('certificate');
    world.tenant.keyVaultForbidden = true;
    await expect(world.run()).rejects.toThrow(
      /refused to read certificate 'defender-export-cert'.*'Key Vault Secrets User'/,
    );
  });

  it('certificate without KEY_VAULT_URL or KEY_VAULT_CERTIFICATE_NAME, with a secret setting, reported at once', () => {
    const problems = problemsOf({
      DEFENDER_CREDENTIAL: 'certificate',
      KEY_VAULT_SECRET_NAME: 'defender-client-secret',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^KEY_VAULT_SECRET_NAME is set, but DEFENDER_CREDENTIAL=certificate/),
      expect.stringMatching(/^KEY_VAULT_URL is missing: DEFENDER_CREDENTIAL=certificate needs/),
      expect.stringMatching(/^KEY_VAULT_CERTIFICATE_NAME is missing/),
    ]);
  });
});
