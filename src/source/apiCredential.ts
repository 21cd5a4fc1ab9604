import {
  ClientAssertionCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  type TokenCredential,
  type TokenCredentialOptions,
} from '@azure/identity';
import type { CredentialMode } from '../config';
import { ExportError, registerSecret } from '../errors';
import type { CertificateProvider } from './certificateProvider';
import type { SecretProvider } from './secretProvider';

/**
 * Port: how the app registration (tenantId, clientId) proves itself to Entra, in one credential mode. The token
 * provider builds the credential through it, re-builds it once when {@link isRejected} (a rotated secret or
 * renewed certificate is re-read), and asks it to {@link explain} Entra's refusals that are the mode's own.
 */
export interface ApiCredential {
  readonly mode: CredentialMode;
  /** What authenticates, for messages, e.g. "the client secret in Key Vault secret 'x' in https://…". */
  readonly location: string;
  /** The log line when Entra refused the credential and it is read again (see {@link isRejected}). */
  readonly rereading: string;
  /** A fresh SDK credential; `reread` first re-reads the secret or certificate. */
  create(options: { reread: boolean; abortSignal?: AbortSignal }): Promise<TokenCredential>;
  /** True when Entra refused the credential in a way one re-read may cure. */
  isRejected(message: string): boolean;
  /** What to fix, when Entra's refusal (its AADSTS codes) is this mode's; else undefined. */
  explain(message: string, codes: ReadonlySet<string>): Error | undefined;
}

/** What every mode's SDK credential is built with. */
export interface ApiCredentialOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly authorityHost: string;
  /** Extra credential options (tlsOptions for the local sandbox, retries). */
  readonly credentialOptions?: TokenCredentialOptions;
}

/** The options of an Entra credential at the configured authority. */
function entraOptions(
  o: ApiCredentialOptions,
): TokenCredentialOptions & { disableInstanceDiscovery: boolean } {
  const host = new URL(o.authorityHost).hostname;
  return {
    ...o.credentialOptions,
    authorityHost: o.authorityHost,
    // Instance discovery calls login.microsoftonline.com; a loopback authority is the local sandbox.
    disableInstanceDiscovery: host === '127.0.0.1' || host === 'localhost',
  };
}

function codeList(codes: ReadonlySet<string>, fallback = ''): string {
  return codes.size > 0 ? `AADSTS${[...codes].join(', AADSTS')}` : fallback;
}

/** `secret` mode: a ClientSecretCredential with the secret from Key Vault (or DEFENDER_CLIENT_SECRET). */
export class SecretApiCredential implements ApiCredential {
  readonly mode = 'secret';
  readonly location: string;
  constructor(
    private readonly secrets: SecretProvider,
    private readonly o: ApiCredentialOptions,
  ) {
    this.location = `the client secret in ${secrets.location}`;
    this.rereading = `Entra rejected the client secret; re-reading ${secrets.location} in case it was rotated.`;
  }
  readonly rereading: string;

  async create(options: { reread: boolean; abortSignal?: AbortSignal }): Promise<TokenCredential> {
    const secret = await this.secrets.getClientSecret({
      forceRefresh: options.reread,
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    });
    return new ClientSecretCredential(this.o.tenantId, this.o.clientId, secret, entraOptions(this.o));
  }

  isRejected(message: string): boolean {
    return /AADSTS7000215|AADSTS7000222|invalid_client/.test(message);
  }

  explain(message: string, codes: ReadonlySet<string>): Error | undefined {
    if (!['7000215', '7000222', '7000218'].some((c) => codes.has(c)) && !/invalid_client/.test(message)) {
      return undefined;
    }
    const expired = codes.has('7000222') ? 'has expired' : 'is not valid';
    return new ExportError(
      `Entra rejected the client secret of DEFENDER_CLIENT_ID ${this.o.clientId}: it ${expired} (${codeList(codes, 'invalid_client')}), ` +
        `even after re-reading ${this.secrets.location}. Create a new client secret for the app registration and store its VALUE (not its ID) there, ` +
        'or switch to DEFENDER_CREDENTIAL=federated, which has no secret to expire (docs/deploy.md).',
    );
  }
}

/**
 * `certificate` mode: a ClientCertificateCredential with the certificate's PEM (key and certificate) from Key
 * Vault, in memory; MSAL signs the client assertion with the key (header `x5t#S256`, the certificate's
 * thumbprint, by which Entra finds the public certificate uploaded to the app).
 */
export class CertificateApiCredential implements ApiCredential {
  readonly mode = 'certificate';
  readonly location: string;
  constructor(
    private readonly certificates: CertificateProvider,
    private readonly o: ApiCredentialOptions,
  ) {
    this.location = `the certificate ${certificates.location}`;
    this.rereading = `Entra rejected the assertion signed with the certificate; re-reading ${certificates.location} in case it was renewed.`;
  }
  readonly rereading: string;

  async create(options: { reread: boolean; abortSignal?: AbortSignal }): Promise<TokenCredential> {
    const certificate = await this.certificates.getCertificate({
      forceRefresh: options.reread,
      ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    });
    return new ClientCertificateCredential(
      this.o.tenantId,
      this.o.clientId,
      { certificate },
      entraOptions(this.o),
    );
  }

  isRejected(message: string): boolean {
    return /AADSTS700027/.test(message);
  }

  explain(message: string, codes: ReadonlySet<string>): Error | undefined {
    if (codes.has('700027')) {
      const expired = /key used is expired/i.test(message);
      return new ExportError(
        `Entra rejected the client assertion signed with ${this.certificates.location} for DEFENDER_CLIENT_ID ${this.o.clientId} (AADSTS700027: ${
          expired
            ? 'the certificate uploaded to the app has expired'
            : 'the certificate is not uploaded to the app registration, or not this version'
        }), even after re-reading it. Upload its public certificate to the app: az keyvault certificate download --vault-name <vault> --name <certificate> --file cert.pem, ` +
          `then az ad app credential reset --id ${this.o.clientId} --cert @cert.pem --append.`,
      );
    }
    if (codes.has('700024')) {
      return new ExportError(
        `Entra found the client assertion outside its validity (AADSTS700024): check this host's clock. A later run retries.`,
        { isTransient: true },
      );
    }
    return undefined;
  }
}

/** The claims of the managed identity's token that a federated credential must match. */
interface PresentedClaims {
  readonly issuer: string | undefined;
  readonly subject: string | undefined;
}

export interface FederatedApiCredentialOptions extends ApiCredentialOptions {
  /** The user-assigned managed identity (a ManagedIdentityCredential for AZURE_CLIENT_ID). */
  readonly identity: TokenCredential;
  readonly identityClientId: string;
  /** The token exchange audience, e.g. api://AzureADTokenExchange (the scope is it plus `/.default`). */
  readonly audience: string;
}

/**
 * `federated` mode: no secret. The managed identity's token for the token exchange audience is the client
 * assertion of a ClientAssertionCredential (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity);
 * Entra accepts it when the app registration has a federated identity credential with its issuer, subject (the
 * identity's principal ID) and audience. A refusal names the values the credential must carry, read from the
 * token's own claims (`iss`, `sub`), which are not secret; the token is registered for redaction.
 */
export class FederatedApiCredential implements ApiCredential {
  readonly mode = 'federated';
  readonly location: string;
  private presented: PresentedClaims | undefined;
  private identityFailure: Error | undefined;

  constructor(private readonly o: FederatedApiCredentialOptions) {
    this.location = `the managed identity AZURE_CLIENT_ID ${o.identityClientId} as a federated credential`;
  }
  readonly rereading = '';

  create(options: { reread: boolean; abortSignal?: AbortSignal }): Promise<TokenCredential> {
    const abortSignal = options.abortSignal;
    const identity = this.o.identity;
    return Promise.resolve(
      new ClientAssertionCredential(
        this.o.tenantId,
        this.o.clientId,
        () => this.assertion(identity, abortSignal),
        entraOptions(this.o),
      ),
    );
  }

  /** The managed identity's token for the exchange audience: the assertion MSAL sends as `client_assertion`. */
  private async assertion(identity: TokenCredential, abortSignal: AbortSignal | undefined): Promise<string> {
    this.identityFailure = undefined;
    let token: string | undefined;
    try {
      token = (await identity.getToken(`${this.o.audience}/.default`, abortSignal ? { abortSignal } : {}))
        ?.token;
    } catch (thrown) {
      this.identityFailure = this.describeIdentityFailure(thrown);
      throw this.identityFailure;
    }
    if (!token) {
      this.identityFailure = new ExportError(
        `The managed identity AZURE_CLIENT_ID ${this.o.identityClientId} returned no token for ${this.o.audience}.`,
        { isTransient: true },
      );
      throw this.identityFailure;
    }
    registerSecret(token, { longLived: false });
    this.presented = claimsOf(token);
    return token;
  }

  /**
   * Nothing to re-read: the identity's token cannot be fetched afresh on demand, because @azure/msal-node
   * (7.2.3) keeps managed identity tokens in a process-wide cache and @azure/identity passes no forceRefresh;
   * MSAL renews them itself before they expire.
   */
  isRejected(): boolean {
    return false;
  }

  explain(_message: string, codes: ReadonlySet<string>): Error | undefined {
    // Set during this attempt only: the identity's own failure, whatever wraps it, is what to fix.
    if (this.identityFailure) return this.identityFailure;
    const issuer = this.presented?.issuer ?? `${this.o.authorityHost}/<tenant of the identity>/v2.0`;
    const subject = this.presented?.subject ?? '<principal ID of the managed identity>';
    const issuerHost = this.presented?.issuer ? new URL(this.presented.issuer).host : undefined;
    const authority = new URL(this.o.authorityHost).host;
    if (issuerHost && issuerHost !== authority && ['700211', '50013', '70021'].some((c) => codes.has(c))) {
      return new ExportError(
        `The managed identity AZURE_CLIENT_ID ${this.o.identityClientId} is in another cloud than DEFENDER_AUTHORITY_HOST ${this.o.authorityHost} (its token's issuer is ${issuer}; ${codeList(codes)}): ` +
          'token exchange across clouds is not supported. Use an identity and an app registration in the same cloud, or DEFENDER_CREDENTIAL=certificate.',
      );
    }
    const what = codes.has('700213')
      ? 'no federated identity credential of the app matches its subject'
      : codes.has('700211')
        ? 'no federated identity credential of the app matches its issuer'
        : codes.has('700212')
          ? 'no federated identity credential of the app matches its audience'
          : codes.has('70021')
            ? 'the app has no federated identity credential that matches it'
            : undefined;
    if (what) {
      const parameters = JSON.stringify({
        name: 'defender-export',
        issuer,
        subject,
        audiences: [this.o.audience],
      });
      return new ExportError(
        `Entra refused the managed identity's token as the credential of DEFENDER_CLIENT_ID ${this.o.clientId} in tenant ${this.o.tenantId} (${codeList(codes)}: ${what}). ` +
          `The app registration needs a federated identity credential with issuer '${issuer}', subject '${subject}' (the principal ID of the managed identity AZURE_CLIENT_ID ${this.o.identityClientId}) and audience '${this.o.audience}': ` +
          `az ad app federated-credential create --id ${this.o.clientId} --parameters '${parameters}' (docs/deploy.md). The credential goes on the app in its home tenant, the identity's; another tenant needs the app multi-tenant and admin-consented there.`,
      );
    }
    if (codes.has('50013')) {
      return new ExportError(
        `Entra could not verify the managed identity's token (issuer ${issuer}; AADSTS50013) for DEFENDER_CLIENT_ID ${this.o.clientId}: check that the identity and the app registration are in the same cloud and DEFENDER_AUTHORITY_HOST is that cloud's.`,
      );
    }
    if (codes.has('700024')) {
      return new ExportError(
        `Entra found the managed identity's token outside its validity (AADSTS700024): check the clock of this host. A later run retries with a token the identity renews.`,
        { isTransient: true },
      );
    }
    return undefined;
  }

  private describeIdentityFailure(thrown: unknown): Error {
    const message =
      typeof thrown === 'object' && thrown !== null && 'message' in thrown
        ? String((thrown as Error).message)
        : String(thrown);
    const who = `the managed identity AZURE_CLIENT_ID ${this.o.identityClientId}`;
    if (/Identity not found|Unable to load the proper Managed Identity|not assigned/i.test(message)) {
      return new ExportError(
        `The function app has no user-assigned identity with client ID ${this.o.identityClientId} (the identity endpoint said: Identity not found). ` +
          'Assign the identity to the function app (az functionapp identity assign --name <app> --resource-group <group> --identities <identity resource ID>), and check that AZURE_CLIENT_ID is its client ID, not its principal ID.',
        { cause: thrown },
      );
    }
    if (/AADSTS500011|resource principal/i.test(message)) {
      return new ExportError(
        `${who} could not get a token for the audience ${this.o.audience} (AADSTS500011): that audience is another cloud's, and token exchange across clouds is not supported. ` +
          "Remove DEFENDER_FEDERATION_AUDIENCE (the default follows DEFENDER_AUTHORITY_HOST), or set it to this cloud's value.",
        { cause: thrown },
      );
    }
    if (
      /CredentialUnavailable|No managed identity endpoint|ENOTFOUND|EHOSTUNREACH|ECONNREFUSED|ETIMEDOUT|169\.254\.169\.254/i.test(
        `${(thrown as Error)?.name ?? ''} ${message}`,
      )
    ) {
      return new ExportError(
        `No managed identity is available here for ${who}: DEFENDER_CREDENTIAL=federated works only where the identity is assigned (the function app, or an Azure host that has it). ` +
          `On another machine use DEFENDER_CREDENTIAL=certificate or secret. The identity said: ${message}`,
        { cause: thrown, isTransient: !/CredentialUnavailable/.test((thrown as Error)?.name ?? '') },
      );
    }
    return new ExportError(`Could not get the token of ${who} for ${this.o.audience}: ${message}`, {
      cause: thrown,
      isTransient: true,
    });
  }
}

/** The issuer and subject a JWT carries (claims only: the signature is not checked, nothing is trusted). */
function claimsOf(token: string): PresentedClaims {
  try {
    const payload = JSON.parse(
      Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
    ) as Record<string, unknown>;
    return {
      issuer: typeof payload.iss === 'string' ? payload.iss : undefined,
      subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    };
  } catch {
    return { issuer: undefined, subject: undefined };
  }
}
