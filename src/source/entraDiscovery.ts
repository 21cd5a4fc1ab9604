import * as https from 'node:https';

/** What Entra's OpenID discovery document answered, for telling an unknown tenant from an outage. */
export type DiscoveryOutcome =
  | { readonly kind: 'unknown-tenant'; readonly detail: string }
  | { readonly kind: 'failing'; readonly detail: string }
  | { readonly kind: 'available' };

export interface DiscoveryProbeOptions {
  readonly authorityHost: string;
  readonly tenantId: string;
  /** Extra CA (the local sandbox's certificate). */
  readonly ca?: string | Buffer | (string | Buffer)[];
  /** The agent to connect with (a proxy tunnel when the network needs one). */
  readonly agent?: https.Agent;
  readonly timeoutInMs?: number;
  readonly abortSignal?: AbortSignal;
}

/**
 * Fetches `<authority>/<tenant>/v2.0/.well-known/openid-configuration` once. MSAL reports every failure of this
 * document as the same `endpoints_resolution_error` without status or cause, whether the tenant does not exist
 * (Entra answers 400 AADSTS90002) or Entra cannot be reached; this probe tells them apart. See
 * https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
 */
export function probeDiscovery(o: DiscoveryProbeOptions): Promise<DiscoveryOutcome> {
  const url = new URL(
    `${o.authorityHost.replace(/\/+$/, '')}/${encodeURIComponent(o.tenantId)}/v2.0/.well-known/openid-configuration`,
  );
  return new Promise<DiscoveryOutcome>((resolve) => {
    const request = https.get(
      url,
      {
        ...(o.agent ? { agent: o.agent } : {}),
        ...(o.ca && !o.agent ? { ca: o.ca } : {}),
        ...(o.abortSignal ? { signal: o.abortSignal } : {}),
        timeout: o.timeoutInMs ?? 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('error', (e) => resolve({ kind: 'failing', detail: e.message }));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8').slice(0, 4000);
          const codes: string[] = body.match(/AADSTS\d+/g) ?? [];
          if (status >= 200 && status < 300) resolve({ kind: 'available' });
          else if (
            (status === 400 || status === 404) &&
            (codes.includes('AADSTS90002') || /invalid_tenant/.test(body))
          ) {
            resolve({ kind: 'unknown-tenant', detail: `HTTP ${status} ${codes[0] ?? 'invalid_tenant'}` });
          } else resolve({ kind: 'failing', detail: `HTTP ${status}${codes[0] ? ` ${codes[0]}` : ''}` });
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${o.timeoutInMs ?? 10_000} ms`)));
    request.on('error', (e: NodeJS.ErrnoException) =>
      resolve({ kind: 'failing', detail: e.code ?? e.message }),
    );
  });
}
