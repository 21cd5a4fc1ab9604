import { randomUUID } from 'node:crypto';
import type { RouteResponse } from './routeExchange';
import { json } from './routeReplies';
import { VAULT_AUDIENCE } from './keyVaultRoute';
import { checkClientAssertion, JWT_BEARER, type AssertionContext } from './clientAssertion';

/** What the Entra routes read from their tenant. */
export interface EntraContext extends AssertionContext {
  readonly tenantId: string;
  readonly clientId: string;
  readonly validClientSecrets: ReadonlySet<string>;
  /** False when the tenant's administrator revoked the consent to the app (its service principal is gone). */
  readonly hasConsent: boolean;
  readonly entraDiscoveryStatus: number | undefined;
  readonly tokenLifetimeSeconds: number;
  readonly origin: string;
  clock(): number;
  issueToken(clientId: string, audience: string): string;
  countTokenRequest(): void;
}

/**
 * Entra ID of the simulated tenant: OpenID discovery and client-credentials tokens for the app registration, with
 * a client secret or a client assertion (a certificate's, or the managed identity's token as a federated
 * credential: clientAssertion.ts), and Entra's errors (unknown tenant, client, secret or assertion, bad scope).
 * The managed identity's own tokens come from its endpoint (identityRoute.ts), as in Azure.
 */
export function answerEntra(t: EntraContext, res: RouteResponse, url: URL, body: string): void {
  const [, tenant, ...rest] = url.pathname.split('/');
  const knownTenant = tenant?.toLowerCase() === t.tenantId.toLowerCase();
  if (!knownTenant) {
    aadError(
      t,
      res,
      400,
      'invalid_tenant',
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    );
    return;
  }
  if (rest[0] === 'v2.0' && t.entraDiscoveryStatus !== undefined) {
    json(res, t.entraDiscoveryStatus, {
      error: 'temporarily_unavailable',
      error_description: 'The service is temporarily unavailable.',
    });
    return;
  }
  if (rest[0] === 'v2.0') {
    const base = `${t.origin}/${tenant}`;
    json(res, 200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      issuer: `${base}/v2.0`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    });
    return;
  }
  t.countTokenRequest();
  const form = new URLSearchParams(body);
  const clientId = form.get('client_id') ?? '';
  const secret = form.get('client_secret') ?? '';
  const scope = form.get('scope') ?? '';
  if (form.get('grant_type') !== 'client_credentials') {
    aadError(t, res, 400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    return;
  }
  if (clientId !== t.clientId) {
    aadError(
      t,
      res,
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${t.tenantId}'.`,
    );
    return;
  }
  const assertion = form.get('client_assertion') ?? '';
  if (!secret && !assertion) {
    aadError(
      t,
      res,
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
    return;
  }
  if (assertion) {
    if (form.get('client_assertion_type') !== JWT_BEARER) {
      aadError(t, res, 400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
      return;
    }
    const refusal = checkClientAssertion(t, clientId, assertion, `${t.origin}/${tenant}/oauth2/v2.0/token`);
    if (refusal) {
      aadError(t, res, refusal.status, refusal.error, refusal.code, refusal.description);
      return;
    }
  } else if (!t.validClientSecrets.has(secret)) {
    aadError(
      t,
      res,
      401,
      'invalid_client',
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
    );
    return;
  }
  if (!t.hasConsent) {
    // The app registration lives in its home tenant; in a customer tenant it exists only as a service principal,
    // created by admin consent. Without it Entra refuses the client: invalid_client with AADSTS7000229
    // (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes). The status is inferred.
    aadError(
      t,
      res,
      400,
      'invalid_client',
      7000229,
      `The client application ${clientId} is missing service principal in the tenant ${t.tenantId}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
    );
    return;
  }
  const resource = scope
    .split(' ')
    .find((s) => s.endsWith('/.default'))
    ?.slice(0, -'/.default'.length);
  if (!resource || (resource !== t.origin && resource !== VAULT_AUDIENCE)) {
    aadError(
      t,
      res,
      400,
      'invalid_scope',
      70011,
      `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
    );
    return;
  }
  const token = t.issueToken(clientId, resource);
  json(res, 200, {
    token_type: 'Bearer',
    expires_in: t.tokenLifetimeSeconds,
    ext_expires_in: t.tokenLifetimeSeconds,
    access_token: token,
  });
}

function aadError(
  t: EntraContext,
  res: RouteResponse,
  status: number,
  error: string,
  code: number,
  description: string,
): void {
  const traceId = randomUUID();
  const timestamp = new Date(t.clock()).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
  json(res, status, {
    error,
    error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: randomUUID(),
    error_uri: `${t.origin}/error?code=${code}`,
  });
}
