import { ApiError } from '../../src/errors';
import { World } from '../support/world';

const HOUR = 3_600_000;

/** The claims of a token the simulated tenant issued (it issues JWTs shaped as Entra's). */
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

const CASES = [
  {
    api: 'graph' as const,
    needs:
      /DEFENDER_API=graph needs the application permission SecurityIncident\.Read\.All \(or SecurityIncident\.ReadWrite\.All\) on Microsoft Graph/,
    apiMessage:
      /HTTP 403 Forbidden: Missing application roles\. API required roles: SecurityIncident\.Read\.All,SecurityIncident\.ReadWrite\.All, application roles: /,
    wrongRole: 'Incident.Read.All',
    wrongRoleSays:
      /the token carries Incident\.Read\.All, which is the permission of the legacy incidents API, not of Microsoft Graph/,
    docs: 'https://learn.microsoft.com/en-us/graph/api/security-list-incidents#permissions',
  },
  {
    api: 'legacy' as const,
    needs:
      /DEFENDER_API=legacy needs the application permission Incident\.Read\.All \(or Incident\.ReadWrite\.All\) on Microsoft Threat Protection/,
    apiMessage:
      /HTTP 403 Forbidden: The application does not have any of the required application permissions \(Incident\.ReadWrite\.All, Incident\.Read\.All\) to access the resource\./,
    wrongRole: 'SecurityIncident.Read.All',
    wrongRoleSays:
      /the token carries SecurityIncident\.Read\.All, which is the permission of Microsoft Graph, not of the legacy incidents API/,
    docs: 'https://learn.microsoft.com/en-us/defender-xdr/api-list-incidents#permissions',
  },
];

describe.each(CASES)('a token without the incidents permission ($api)', (c) => {
  let world: World;
  beforeEach(async () => {
    world = await World.start({ api: c.api });
    const now = Date.now();
    world.tenant.store.generate(20, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
  });
  afterEach(async () => {
    await world.close();
  });

  /** Runs once; the error it failed with, after checking what every failure here must say and never say. */
  async function failedRun(): Promise<ApiError> {
    const thrown = await world.run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(ApiError);
    const error = thrown as ApiError;
    expect(error).toMatchObject({ status: 403, isTransient: false });
    expect(error.message).toMatch(c.apiMessage);
    expect(error.message).toMatch(c.needs);
    expect(error.message).toMatch(
      /Entra admin center > App registrations > the app > API permissions > .* then Grant admin consent/,
    );
    expect(error.message).toContain(c.docs);
    expect(error.message).toContain(
      'https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/grant-admin-consent',
    );
    expect(error.message).toContain(`DEFENDER_CLIENT_ID ${world.tenant.clientId}`);
    expect(world.logs.summaries.at(-1)).toMatchObject({
      outcome: 'failed',
      failureKind: 'api',
      transient: false,
    });
    // Only one request: a 403 is not retried.
    expect(world.tenant.requests.filter((r) => r.api === c.api)).toHaveLength(1);
    // Neither the token nor any part of it, nor a claim other than roles, audience and tenant, is shown.
    const tokens = world.tenant.issuedTokens.filter((t) => claimsOf(t).aud === world.tenant.origin);
    expect(tokens.length).toBeGreaterThan(0);
    const haystack = [
      world.logs.text,
      error.message,
      String(error.stack),
      JSON.stringify(error),
      error.responseExcerpt ?? '',
    ].join('\n');
    for (const token of tokens) {
      const [, payload, signature] = token.split('.');
      for (const leak of [token, payload!, signature!, String(claimsOf(token).oid)]) {
        expect(haystack.includes(leak)).toBe(false);
      }
    }
    expect(await world.exported()).toEqual([]);
    return error;
  }

  it('without any application role: says admin consent has not been granted', async () => {
    world.tenant.appRoles = [];
    const error = await failedRun();
    expect(error.message).toMatch(
      /the token carries no application roles: admin consent has not been granted/,
    );
    expect(error.message).toContain(`its tenant ${world.tenant.tenantId}`);
    expect(error.message).toContain(`the token's audience is ${world.tenant.origin}`);
  });

  it('with the other API’s role: names it as the other API’s permission; once granted, the next run exports', async () => {
    world.tenant.appRoles = [c.wrongRole];
    const error = await failedRun();
    expect(error.message).toMatch(c.wrongRoleSays);

    world.tenant.appRoles = [c.api === 'graph' ? 'SecurityIncident.Read.All' : 'Incident.Read.All'];
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(await world.exported()).toHaveLength(20);
  });
});
