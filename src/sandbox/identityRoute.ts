import type { RouteRequest, RouteResponse } from './routeExchange';
import { json } from './routeReplies';
import { VAULT_AUDIENCE } from './keyVaultRoute';

/** The path of the instance metadata service's token endpoint (IMDS), which the simulated identity serves. */
export const IDENTITY_TOKEN_PATH = '/metadata/identity/oauth2/token';

/** The token exchange audience of the global cloud, the only one this (global-cloud) tenant's identity serves. */
export const EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';

/** What the identity route reads from its tenant. */
export interface IdentityContext {
  readonly tenantId: string;
  readonly identityClientId: string;
  /** False: the identity is not assigned to the (simulated) function app. */
  readonly identityAssigned: boolean;
  readonly tokenLifetimeSeconds: number;
  issueIdentityToken(resource: string): string;
}

/**
 * The managed identity endpoint of the simulated function app, in the shape of the instance metadata service
 * (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#get-a-token-using-http):
 * `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…&client_id=…` with `Metadata: true`.
 * It issues tokens of the user-assigned identity for Key Vault and for the token exchange audience (the
 * assertion of `federated` mode); another client ID is an identity not assigned to the app.
 */
export function answerIdentity(t: IdentityContext, req: RouteRequest, res: RouteResponse, url: URL): void {
  if (String(req.headers.metadata ?? '').toLowerCase() !== 'true') {
    json(res, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    return;
  }
  const clientId = url.searchParams.get('client_id') ?? '';
  if (!t.identityAssigned || clientId.toLowerCase() !== t.identityClientId.toLowerCase()) {
    json(res, 400, { error: 'invalid_request', error_description: 'Identity not found' });
    return;
  }
  const resource = url.searchParams.get('resource') ?? '';
  if (resource !== VAULT_AUDIENCE && resource !== EXCHANGE_AUDIENCE) {
    json(res, 400, {
      error: 'invalid_resource',
      error_description: `AADSTS500011: The resource principal named ${resource} was not found in the tenant named ${t.tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    });
    return;
  }
  const token = t.issueIdentityToken(resource);
  // The host's clock, as the token's own dates (SimulatedTenant.issueIdentityToken).
  const now = Math.floor(Date.now() / 1000);
  json(res, 200, {
    access_token: token,
    client_id: t.identityClientId,
    expires_in: String(t.tokenLifetimeSeconds),
    expires_on: String(now + t.tokenLifetimeSeconds),
    ext_expires_in: String(t.tokenLifetimeSeconds),
    not_before: String(now),
    resource,
    token_type: 'Bearer',
  });
}
