import type { DefenderApi } from '../export/ports';

/**
 * What a 401 or 403 from the incidents API means for the app registration: which application permission the
 * API needs, which ones the access token that was sent carries, and where to grant admin consent. Pure; reads
 * only the `roles`, `aud` and `tid` claims of the token and never puts the token itself, or any other claim,
 * into the text (docs/incidents-api.md#permissions).
 */

/** The application permissions each API accepts, on which resource (docs/incidents-api.md#permissions). */
export const API_PERMISSIONS: Record<
  DefenderApi,
  {
    readonly label: string;
    readonly resource: string;
    /** Where the Entra admin center's "Add a permission" lists the resource. */
    readonly picker: string;
    readonly roles: readonly string[];
    readonly docs: string;
  }
> = {
  graph: {
    label: 'Microsoft Graph',
    resource: 'Microsoft Graph',
    picker: 'Microsoft Graph',
    roles: ['SecurityIncident.Read.All', 'SecurityIncident.ReadWrite.All'],
    docs: 'https://learn.microsoft.com/en-us/graph/api/security-list-incidents#permissions',
  },
  legacy: {
    label: 'the legacy incidents API',
    resource: 'Microsoft Threat Protection',
    picker: 'APIs my organization uses > Microsoft Threat Protection',
    roles: ['Incident.Read.All', 'Incident.ReadWrite.All'],
    docs: 'https://learn.microsoft.com/en-us/defender-xdr/api-list-incidents#permissions',
  },
};

const ADMIN_CONSENT_DOCS =
  'https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/grant-admin-consent';

/** The claims of an access token a diagnosis may show; `roles` is undefined when the token has no such claim. */
export interface TokenClaims {
  readonly roles: readonly string[] | undefined;
  readonly audience: string | undefined;
  readonly tenantId: string | undefined;
}

/**
 * The `roles`, `aud` and `tid` claims of a JWT access token (its base64url JSON payload, RFC 7519 §3), or
 * undefined when the token is not a decodable JWT (an opaque or encrypted token). The signature is not checked:
 * the claims only explain a refusal, they decide nothing. Values are cut to printable text.
 */
export function readTokenClaims(token: string): TokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1] ?? '')) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const claims = payload as Record<string, unknown>;
  const roles = Array.isArray(claims.roles)
    ? claims.roles.filter((r): r is string => typeof r === 'string').map((r) => printable(r, 80))
    : undefined;
  const aud: unknown = Array.isArray(claims.aud) ? (claims.aud as unknown[])[0] : claims.aud;
  return {
    roles,
    audience: typeof aud === 'string' ? printable(aud, 120) : undefined,
    tenantId: typeof claims.tid === 'string' ? printable(claims.tid, 64) : undefined,
  };
}

/**
 * Why the API refused the token (`status` 401 or 403), for the error a run stops on: the permission `api`
 * needs, what the token carries, and how to grant admin consent to the app registration `clientId`.
 */
export function explainPermissionRefusal(
  o: { readonly api: DefenderApi; readonly clientId: string },
  token: string,
  status: number,
): string {
  const needed = API_PERMISSIONS[o.api];
  const other = API_PERMISSIONS[o.api === 'graph' ? 'legacy' : 'graph'];
  const claims = readTokenClaims(token);
  const roles = claims?.roles ?? [];
  const granted = roles.find((r) => needed.roles.includes(r));
  const wrongApi = roles.find((r) => other.roles.includes(r));
  const about =
    claims === undefined
      ? 'the access token is not a decodable JWT, so the roles it carries cannot be shown'
      : `${
          granted !== undefined
            ? `the token carries ${granted}, which ${needed.label} accepts: the refusal has another cause (see the API's message)`
            : roles.length === 0
              ? 'the token carries no application roles: admin consent has not been granted, or the permission was added as a delegated one instead of an application one'
              : wrongApi !== undefined
                ? `the token carries ${wrongApi}, which is the permission of ${other.label}, not of ${needed.label}`
                : `the token carries only the application roles ${list(roles)}, none of which ${needed.label} accepts`
        }; the token's audience is ${claims.audience ?? 'not given'}, its tenant ${claims.tenantId ?? 'not given'}`;
  const rejected =
    status === 401
      ? 'the token was rejected even after a refresh: check that DEFENDER_API_URL is the API the app registration has permission for; '
      : '';
  const [role, alternative] = needed.roles;
  return (
    `${rejected}DEFENDER_API=${o.api} needs the application permission ${role} (or ${alternative}) on ${needed.resource}, ` +
    `and ${about}. Grant it to the app registration DEFENDER_CLIENT_ID ${printable(o.clientId, 64)}: Entra admin center > ` +
    `App registrations > the app > API permissions > Add a permission > ${needed.picker} > Application permissions > ${role}, ` +
    `then Grant admin consent (${needed.docs}, ${ADMIN_CONSENT_DOCS}); the next run gets a token with the role.`
  );
}

function list(roles: readonly string[]): string {
  const shown = roles.slice(0, 8).join(', ');
  return roles.length > 8 ? `${shown} and ${roles.length - 8} more` : shown;
}

function printable(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}
