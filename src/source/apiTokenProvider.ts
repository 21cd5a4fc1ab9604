import type * as https from 'node:https';
import type { TokenCredential } from '@azure/identity';
import { ExportError, registerSecret } from '../errors';
import type { Logger } from '../logger';
import type { ApiCredential } from './apiCredential';
import { probeDiscovery } from './entraDiscovery';

export interface ApiTokenProviderOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly authorityHost: string;
  /** `<api origin>/.default` */
  readonly scope: string;
  /** The credential mode's way to authenticate the app (secret, federated managed identity, certificate). */
  readonly credential: ApiCredential;
  readonly logger: Logger;
  /** A CA (PEM) for the OpenID discovery probe: the local sandbox's. */
  readonly ca?: string;
  /** Agent for the OpenID discovery probe that explains a failed discovery (a proxy tunnel when one is set). */
  readonly discoveryAgent?: https.Agent;
}

/**
 * Client-credentials tokens for the incidents API, with the app's credential in its mode ({@link ApiCredential}).
 *
 * Two recoveries: after a 401 from the API, `forceRefresh` builds a fresh credential (MSAL would otherwise
 * serve the cached token until 5 minutes before expiry); and when Entra rejects the credential (a secret
 * invalid or expired, a certificate not registered, an assertion out of time) it is re-read once (Key Vault, a
 * fresh managed identity token), because an operator rotating a secret or renewing a certificate is the usual
 * cause.
 */
export class ApiTokenProvider {
  private credential: TokenCredential | undefined;

  constructor(private readonly o: ApiTokenProviderOptions) {}

  async getToken(options: { forceRefresh: boolean; abortSignal?: AbortSignal }): Promise<string> {
    if (options.forceRefresh) this.credential = undefined;
    try {
      return await this.tryGetToken(false, options.abortSignal);
    } catch (thrown) {
      const message = messageOf(thrown);
      // No consent is no bad credential: re-reading it cannot help.
      if (isMissingConsent(message) || !this.o.credential.isRejected(message)) {
        throw await this.explain(thrown, options.abortSignal);
      }
      this.o.logger.info(this.o.credential.rereading);
      this.credential = undefined;
      try {
        return await this.tryGetToken(true, options.abortSignal);
      } catch (again) {
        throw await this.explain(again, options.abortSignal);
      }
    }
  }

  private async tryGetToken(refreshSecret: boolean, abortSignal?: AbortSignal): Promise<string> {
    this.credential ??= await this.o.credential.create({
      reread: refreshSecret,
      ...(abortSignal ? { abortSignal } : {}),
    });
    const token = await this.credential.getToken(this.o.scope, abortSignal ? { abortSignal } : {});
    if (!token?.token)
      throw new ExportError(`Entra returned no access token for scope ${this.o.scope}.`, {
        isTransient: true,
      });
    registerSecret(token.token, { longLived: false }); // rotates out of the bounded set of recent tokens
    return token.token;
  }

  /**
   * Like {@link describe}; a failed OpenID discovery (MSAL's `endpoints_resolution_error`, which carries no
   * status or cause) is explained by fetching the discovery document once more: an unknown tenant, or Entra
   * down or unreachable.
   */
  private async explain(thrown: unknown, abortSignal?: AbortSignal): Promise<Error> {
    if (thrown instanceof ExportError || !/endpoints_resolution_error/.test(messageOf(thrown))) {
      return this.describe(thrown);
    }
    const ca = this.o.ca;
    const outcome = await probeDiscovery({
      authorityHost: this.o.authorityHost,
      tenantId: this.o.tenantId,
      ...(ca ? { ca } : {}),
      ...(this.o.discoveryAgent ? { agent: this.o.discoveryAgent } : {}),
      ...(abortSignal ? { abortSignal } : {}),
    });
    if (outcome.kind === 'unknown-tenant') {
      return new ExportError(
        `Entra at ${this.o.authorityHost} does not know tenant '${this.o.tenantId}' (${outcome.detail}). Check DEFENDER_TENANT_ID, and DEFENDER_AUTHORITY_HOST for sovereign clouds.`,
      );
    }
    const detail =
      outcome.kind === 'failing'
        ? outcome.detail
        : 'its OpenID configuration failed, then answered when fetched again';
    return new ExportError(
      `Entra (authority host ${this.o.authorityHost}) is unreachable or failing (${detail}); retry later or check DEFENDER_AUTHORITY_HOST and the network.`,
      { cause: thrown, isTransient: true },
    );
  }

  private describe(thrown: unknown): Error {
    if (thrown instanceof ExportError) return thrown;
    const message = messageOf(thrown);
    const codes = new Set((message.match(/AADSTS(\d+)/g) ?? []).map((c) => c.slice(6)));
    const at = `at ${this.o.authorityHost}`;
    // The app has no service principal in the tenant: never consented there, or the consent was revoked (the
    // enterprise application deleted). Entra says invalid_client, but the secret is fine.
    // https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
    if (isMissingConsent(message)) {
      return new ExportError(
        `The app ${this.o.clientId} has no service principal in tenant ${this.o.tenantId} (AADSTS7000229): an administrator of that tenant has not consented to it, or revoked the consent. ` +
          `Ask them to open ${this.o.authorityHost}/${this.o.tenantId}/adminconsent?client_id=${this.o.clientId} (defender-export tenants consent-url), or remove the tenant from DEFENDER_TENANTS.`,
      );
    }
    const own = this.o.credential.explain(message, codes);
    if (own) return own;
    if (codes.has('700016')) {
      return new ExportError(
        `DEFENDER_CLIENT_ID ${this.o.clientId} is not an application in tenant ${this.o.tenantId} (AADSTS700016). Check DEFENDER_CLIENT_ID and DEFENDER_TENANT_ID.`,
      );
    }
    if (codes.has('90002') || codes.has('900023')) {
      return new ExportError(
        `Entra ${at} does not know tenant '${this.o.tenantId}' (AADSTS${[...codes].join(', AADSTS')}). Check DEFENDER_TENANT_ID, and DEFENDER_AUTHORITY_HOST for sovereign clouds.`,
      );
    }
    if (codes.has('500011') || codes.has('70011')) {
      return new ExportError(
        `Entra refused scope ${this.o.scope} (AADSTS${[...codes].join(', ')}): DEFENDER_API_URL must be the API's own host, and the API must be available in the tenant.`,
      );
    }
    // Without an AADSTS code Entra did not refuse anything: the network or Entra failed, and a later run retries.
    return new ExportError(`Could not get a token for ${this.o.scope} from Entra ${at}: ${message}`, {
      cause: thrown,
      isTransient: codes.size === 0,
    });
  }
}

function messageOf(thrown: unknown): string {
  return typeof thrown === 'object' && thrown !== null && 'message' in thrown
    ? String((thrown as Error).message)
    : String(thrown);
}

/**
 * AADSTS7000229: the app has no service principal in the tenant (never consented, or the consent revoked). Entra
 * says invalid_client, but no new secret, certificate or federated credential fixes it.
 */
function isMissingConsent(message: string): boolean {
  return /AADSTS7000229/.test(message);
}
