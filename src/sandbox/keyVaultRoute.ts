import type { RouteRequest, RouteResponse } from './routeExchange';
import { json } from './routeReplies';

export const VAULT_AUDIENCE = 'https://vault.azure.net';

/** What the Key Vault route reads from its tenant. */
export interface KeyVaultContext {
  readonly tenantId: string;
  readonly origin: string;
  readonly keyVaultForbidden: boolean;
  readonly disabledSecrets: ReadonlySet<string>;
  readonly secrets: ReadonlyMap<string, string>;
  readonly secretContentTypes: ReadonlyMap<string, string>;
  clock(): number;
  tokenFor(req: RouteRequest, audience: string): 'ok' | 'missing' | 'invalid';
  countSecretRead(): void;
}

/** Key Vault of the simulated tenant: the bearer challenge, RBAC and disabled-secret refusals, and secret reads. */
export function answerKeyVault(t: KeyVaultContext, req: RouteRequest, res: RouteResponse, url: URL): void {
  if (t.tokenFor(req, VAULT_AUDIENCE) !== 'ok') {
    res.setHeader(
      'WWW-Authenticate',
      `Bearer authorization="${t.origin}/${t.tenantId}", resource="${VAULT_AUDIENCE}"`,
    );
    json(res, 401, {
      error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
    });
    return;
  }
  const [, , name, version] = url.pathname.split('/');
  if (t.keyVaultForbidden) {
    json(res, 403, {
      error: {
        code: 'Forbidden',
        message: `Caller is not authorized to perform action on resource.\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n`,
        innererror: { code: 'ForbiddenByRbac' },
      },
    });
    return;
  }
  if (name && t.disabledSecrets.has(name) && t.secrets.has(name)) {
    // What Key Vault answers for a disabled secret (https://learn.microsoft.com/azure/key-vault/general/rest-error-codes).
    json(res, 403, {
      error: {
        code: 'Forbidden',
        message: 'Operation get is not allowed on a disabled secret.',
        innererror: { code: 'SecretDisabled' },
      },
    });
    return;
  }
  const value = name ? t.secrets.get(name) : undefined;
  if (value === undefined) {
    json(res, 404, {
      error: {
        code: 'SecretNotFound',
        message: `A secret with (name/id) ${name} was not found in this key vault.`,
      },
    });
    return;
  }
  t.countSecretRead();
  const secondsNow = Math.floor(t.clock() / 1000);
  const contentType = t.secretContentTypes.get(name ?? '');
  const id = version || '4387e9f3d6e14c459867679a90fd0f79';
  json(res, 200, {
    value,
    contentType: contentType ?? 'text/plain',
    id: `${t.origin}/secrets/${name}/${id}`,
    // A certificate's secret is managed by Key Vault and points at the certificate's key.
    ...(contentType ? { managed: true, kid: `${t.origin}/keys/${name}/${id}` } : {}),
    attributes: {
      enabled: true,
      created: secondsNow,
      updated: secondsNow,
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
    },
  });
}
