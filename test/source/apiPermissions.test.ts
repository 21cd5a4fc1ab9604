import { explainPermissionRefusal, readTokenClaims } from '../../src/source/apiPermissions';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';

/** A JWT-shaped token with these claims (the signature is never checked: the claims only explain a refusal). */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ typ: 'JWT', alg: 'RS256' })}.${part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk`;
}

/** Claims of an app-only token whose values other than roles, aud and tid must never be shown. */
function appToken(aud: string, roles?: unknown): string {
  return jwt({
    aud,
    tid: TENANT,
    appid: 'appid-claim-value',
    oid: 'oid-claim-value',
    sub: 'sub-claim-value',
    iss: 'https://sts.windows.net/issuer-claim-value/',
    ...(roles === undefined ? {} : { roles }),
  });
}

const graph = { api: 'graph' as const, clientId: CLIENT };
const legacy = { api: 'legacy' as const, clientId: CLIENT };

describe('readTokenClaims', () => {
  it('reads roles, audience and tenant of a JWT, and nothing else', () => {
    expect(readTokenClaims(appToken('https://graph.microsoft.com', ['SecurityIncident.Read.All']))).toEqual({
      roles: ['SecurityIncident.Read.All'],
      audience: 'https://graph.microsoft.com',
      tenantId: TENANT,
    });
    expect(readTokenClaims(appToken('https://graph.microsoft.com'))).toEqual({
      roles: undefined,
      audience: 'https://graph.microsoft.com',
      tenantId: TENANT,
    });
  });

  it('gives undefined for a token that is not a decodable JWT', () => {
    for (const token of [
      'opaque-access-token',
      'a.b',
      `x.${Buffer.from('not json').toString('base64url')}.y`,
      `x.${Buffer.from('["array"]').toString('base64url')}.y`,
      'x.has+invalid/characters.y',
      'e.n.c.r.ypted',
    ]) {
      expect(readTokenClaims(token)).toBeUndefined();
    }
  });

  it('cuts role names to printable text and ignores roles that are not strings', () => {
    expect(readTokenClaims(appToken('aud', ['Role\u0007\nX', 42, 'A'.repeat(200)]))?.roles).toEqual([
      'Role??X',
      'A'.repeat(80),
    ]);
  });
});

describe('explainPermissionRefusal', () => {
  it('without roles: admin consent has not been granted; where to grant it', () => {
    const text = explainPermissionRefusal(graph, appToken('https://graph.microsoft.com'), 403);
    expect(text).toMatch(
      /^DEFENDER_API=graph needs the application permission SecurityIncident\.Read\.All \(or SecurityIncident\.ReadWrite\.All\) on Microsoft Graph, and the token carries no application roles: admin consent has not been granted/,
    );
    expect(text).toContain("the token's audience is https://graph.microsoft.com, its tenant " + TENANT);
    expect(text).toContain(
      `DEFENDER_CLIENT_ID ${CLIENT}: Entra admin center > App registrations > the app > API permissions > Add a permission > Microsoft Graph > Application permissions > SecurityIncident.Read.All, then Grant admin consent`,
    );
    expect(text).toContain('https://learn.microsoft.com/en-us/graph/api/security-list-incidents#permissions');
    expect(text).toContain(
      'https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/grant-admin-consent',
    );
    // An empty roles claim says the same.
    expect(explainPermissionRefusal(graph, appToken('aud', []), 403)).toContain(
      'carries no application roles',
    );
  });

  it("names the other API's permission as such, both ways", () => {
    expect(explainPermissionRefusal(graph, appToken('aud', ['Incident.Read.All']), 403)).toContain(
      'the token carries Incident.Read.All, which is the permission of the legacy incidents API, not of Microsoft Graph',
    );
    const text = explainPermissionRefusal(legacy, appToken('aud', ['SecurityIncident.Read.All']), 403);
    expect(text).toMatch(
      /^DEFENDER_API=legacy needs the application permission Incident\.Read\.All \(or Incident\.ReadWrite\.All\) on Microsoft Threat Protection/,
    );
    expect(text).toContain(
      'the token carries SecurityIncident.Read.All, which is the permission of Microsoft Graph, not of the legacy incidents API',
    );
    expect(text).toContain(
      'Add a permission > APIs my organization uses > Microsoft Threat Protection > Application permissions > Incident.Read.All',
    );
    expect(text).toContain('https://learn.microsoft.com/en-us/defender-xdr/api-list-incidents#permissions');
  });

  it('lists unrelated roles, and says when the token does carry the permission', () => {
    expect(explainPermissionRefusal(graph, appToken('aud', ['User.Read.All', 'Mail.Read']), 403)).toContain(
      'the token carries only the application roles User.Read.All, Mail.Read, none of which Microsoft Graph accepts',
    );
    expect(explainPermissionRefusal(legacy, appToken('aud', ['Incident.ReadWrite.All']), 403)).toContain(
      'the token carries Incident.ReadWrite.All, which the legacy incidents API accepts: the refusal has another cause',
    );
  });

  it('says when the token is not a decodable JWT, and what a 401 after a refresh means', () => {
    const text = explainPermissionRefusal(graph, 'opaque-access-token', 401);
    expect(text).toMatch(/^the token was rejected even after a refresh: check that DEFENDER_API_URL/);
    expect(text).toContain(
      'the access token is not a decodable JWT, so the roles it carries cannot be shown',
    );
    expect(text).toContain('SecurityIncident.Read.All');
  });

  it('never shows the token, a part of it, or a claim other than roles, audience and tenant', () => {
    for (const roles of [undefined, ['Incident.Read.All'], ['User.Read.All']]) {
      const token = appToken('https://graph.microsoft.com', roles);
      const text = explainPermissionRefusal(graph, token, 403);
      for (const part of [token, ...token.split('.')]) expect(text.includes(part)).toBe(false);
      expect(text).not.toMatch(/claim-value/);
    }
  });
});
