import {
  createHash,
  createPrivateKey,
  generateKeyPair,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiTransport, ApiTransportRequest, ApiTransportResponse } from '../source/apiClient';
import type { Socket } from 'node:net';
import {
  ManagedIdentityCredential,
  type TokenCredential,
  type TokenCredentialOptions,
} from '@azure/identity';
import { createDefaultHttpClient, type HttpClient } from '@azure/core-rest-pipeline';
import { createAppCertificate, createLoopbackCertificate } from './certificates';
import type { FederatedCredential } from './clientAssertion';
import {
  answerIdentity,
  EXCHANGE_AUDIENCE,
  IDENTITY_TOKEN_PATH,
  type IdentityContext,
} from './identityRoute';
import { IncidentStore } from './incidentStore';
import { IncidentsRoute, type GraphLimit, type PagingQuirks } from './incidentsRoute';
import { answerEntra, type EntraContext } from './entraRoute';
import { answerKeyVault, type KeyVaultContext } from './keyVaultRoute';
import { json } from './routeReplies';
import { RouteResponse, type RouteRequest } from './routeExchange';

export type SimulatedApi = 'entra' | 'identity' | 'keyvault' | 'graph' | 'legacy';

import type { Fault } from './routeExchange';
export type { Fault };

export interface SimulatedRequest {
  readonly api: SimulatedApi;
  readonly url: URL;
  /** Per-API request count, from 0. */
  readonly index: number;
}

export interface SimulatedTenantOptions {
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  secretName?: string;
  seed?: number;
  /** Incidents generated at start, updated over the last 72 hours. */
  incidents?: number;
  /** The tenant's clock (epoch ms): token expiry and default update times. */
  clock?: () => number;
  tokenLifetimeSeconds?: number;
  /** Legacy limits per app (https://learn.microsoft.com/defender-xdr/api-list-incidents). */
  legacyLimits?: { perMinute: number; perHour: number; minuteInMs?: number; hourInMs?: number };
  /** A Graph rate limit enforced with 429 + Retry-After (see {@link GraphLimit}); none by default. */
  graphLimit?: GraphLimit;
  /** Emit `@odata.nextLink` on the legacy API too (it is undocumented there). */
  legacyNextLink?: boolean;
  store?: IncidentStore;
  port?: number;
  /** Added to every incidents API response (Graph and legacy), as the network and the service would. */
  latencyInMs?: number;
  quirks?: PagingQuirks;
  /** The application roles admin-consented to the app registration on the incidents APIs (see {@link SimulatedTenant.appRoles}). */
  appRoles?: readonly string[];
  /** Alerts per page of `GET /v1.0/security/incidents/{id}/alerts` when the request gives no `$top`. Default 50. */
  alertsPageSize?: number;
  /**
   * The tenant that holds the app registration, when this one is a customer tenant of a multi-tenant app: the
   * app's federated credentials and certificates, and the managed identity that signs the assertions, are the
   * home tenant's (Entra checks an assertion against the app object, wherever the service principal is).
   */
  appHome?: SimulatedTenant;
}

export type { GraphLimit, PagingQuirks };

/** The name of the app's certificate in the simulated vault, in `certificate` mode. */
export const SANDBOX_CERTIFICATE = 'defender-export-cert';

/**
 * A simulated Defender tenant: Entra (OIDC discovery and client-credentials tokens, entraRoute.ts), Key Vault
 * (challenge flow and secrets, keyVaultRoute.ts), Microsoft Graph `/v1.0/security/incidents` and the legacy
 * `/api/incidents` (incidentsRoute.ts), both facades over one {@link IncidentStore}. {@link start} serves it on
 * one HTTPS server bound to 127.0.0.1 (the tests and `npm start`); {@link inMemory} and {@link transport} answer
 * the same routes without a socket. Scenario hooks ({@link intercept}, {@link afterPage}) inject faults and changes.
 */
export class SimulatedTenant {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The user-assigned managed identity of the sandbox's Function (Key Vault; the app's federated credential). */
  readonly identityClientId: string;
  /** Its principal (object) ID: the subject of its tokens, and of the federated credential that trusts it. */
  readonly identityPrincipalId: string;
  /** False: the identity is not assigned to the function app, and its endpoint answers "Identity not found". */
  identityAssigned = true;
  /**
   * The app registration's federated identity credentials: by default one that trusts the managed identity
   * (issuer {@link identityIssuer}, subject {@link identityPrincipalId}, audience api://AzureADTokenExchange).
   */
  federatedCredentials: FederatedCredential[];
  /** Public certificates (PEM) uploaded to the app registration; {@link createCertificate} adds one. */
  readonly appCertificates: string[] = [];
  readonly secretName: string;
  /** The incidents; a test may swap in a fresh store between cases. */
  store: IncidentStore;
  /** Secrets the app registration accepts; remove one to simulate rotation. */
  readonly validClientSecrets = new Set<string>();
  /** Key Vault contents (a certificate's secret too, under the certificate's name). */
  readonly secrets = new Map<string, string>();
  /** Content types of Key Vault secrets other than `text/plain` (a certificate's: PEM or PKCS#12). */
  readonly secretContentTypes = new Map<string, string>();
  keyVaultForbidden = false;
  /** Secrets that are disabled in the vault: Key Vault answers 403 Forbidden, inner error SecretDisabled. */
  readonly disabledSecrets = new Set<string>();
  /**
   * False once the tenant's administrator revoked the consent to the app (deleted its enterprise application):
   * Entra refuses the app's tokens with AADSTS7000229 (entraRoute.ts).
   */
  hasConsent = true;
  /**
   * Where the requests go, when this tenant's server serves several tenants ({@link SimulatedTenants}): the tenant
   * that answers a request. Default: this one.
   */
  router: ((request: RouteRequest) => SimulatedTenant) | undefined;
  /** When set, Entra's OpenID discovery answers this status (an outage of the authority). */
  entraDiscoveryStatus: number | undefined;
  tokenLifetimeSeconds: number;
  tokenRequests = 0;
  secretReads = 0;
  readonly requests: {
    api: SimulatedApi;
    method: string;
    path: string;
    query: Record<string, string>;
    hadAuthorization: boolean;
  }[] = [];
  intercept: ((request: SimulatedRequest) => Fault | undefined) | undefined;
  /** Paging misbehaviours; a test or scenario may change them between runs. */
  quirks: PagingQuirks;
  afterPage: ((api: 'graph' | 'legacy', pageIndex: number) => void) | undefined;
  /** Every access token issued (tests check that none leaks). */
  readonly issuedTokens: string[] = [];
  /**
   * The application roles admin-consented to the app registration, carried in the `roles` claim of the tokens
   * issued for the incidents APIs from now on (none: the claim is absent, as Entra leaves it). One origin plays
   * both APIs, so by default the app holds the read permission of each; Graph answers 403 without
   * SecurityIncident.Read(Write).All, the legacy API without Incident.Read(Write).All.
   */
  appRoles: readonly string[];

  private readonly tokens = new Map<
    string,
    {
      audience: string;
      expiresAt: number;
      clientId: string;
      roles: readonly string[];
      /** The managed identity's: dated and judged by the host's clock (see issueIdentityToken). */
      onHostClock?: boolean;
    }
  >();
  private readonly counters: Record<SimulatedApi, number> = {
    entra: 0,
    identity: 0,
    keyvault: 0,
    graph: 0,
    legacy: 0,
  };
  private signingKey: KeyObject | undefined;
  private readonly identityContext: IdentityContext;
  private readonly incidentsRoute: IncidentsRoute;
  private readonly entraContext: EntraContext;
  private readonly keyVaultContext: KeyVaultContext;
  private readonly sockets = new Set<Socket>();
  private readonly clock: () => number;
  private readonly options: SimulatedTenantOptions;
  private server: https.Server | undefined;
  origin = '';
  ca = '';

  private constructor(options: SimulatedTenantOptions) {
    this.options = options;
    this.clock = options.clock ?? Date.now;
    this.tenantId = options.tenantId ?? randomUUID();
    this.clientId = options.clientId ?? randomUUID();
    this.clientSecret = options.clientSecret ?? `sbx~${randomBytes(18).toString('base64url')}`;
    this.identityClientId = randomUUID();
    this.identityPrincipalId = randomUUID();
    this.secretName = options.secretName ?? 'defender-client-secret';
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3599;
    this.store = options.store ?? new IncidentStore(options.seed ?? 1, this.clock);
    this.quirks = { ...options.quirks };
    this.appRoles = options.appRoles ?? ['SecurityIncident.Read.All', 'Incident.Read.All'];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tenant = this;
    this.federatedCredentials = [];
    this.entraContext = {
      tenantId: this.tenantId,
      clientId: this.clientId,
      validClientSecrets: this.validClientSecrets,
      get federatedCredentials() {
        return (options.appHome ?? tenant).federatedCredentials;
      },
      get appCertificates() {
        return (options.appHome ?? tenant).appCertificates;
      },
      get identityIssuer() {
        return (options.appHome ?? tenant).identityIssuer;
      },
      identitySigningKey: () => (options.appHome ?? tenant).identitySigningKey(),
      get hasConsent() {
        return tenant.hasConsent;
      },
      get entraDiscoveryStatus() {
        return tenant.entraDiscoveryStatus;
      },
      get tokenLifetimeSeconds() {
        return tenant.tokenLifetimeSeconds;
      },
      get origin() {
        return tenant.origin;
      },
      clock: () => tenant.clock(),
      issueToken: (clientId, audience) => tenant.issueToken(clientId, audience),
      countTokenRequest: () => {
        tenant.tokenRequests++;
      },
    };
    this.identityContext = {
      tenantId: this.tenantId,
      identityClientId: this.identityClientId,
      get identityAssigned() {
        return tenant.identityAssigned;
      },
      get tokenLifetimeSeconds() {
        return tenant.tokenLifetimeSeconds;
      },
      issueIdentityToken: (resource) => tenant.issueIdentityToken(resource),
    };
    this.keyVaultContext = {
      tenantId: this.tenantId,
      get origin() {
        return tenant.origin;
      },
      get keyVaultForbidden() {
        return tenant.keyVaultForbidden;
      },
      disabledSecrets: this.disabledSecrets,
      secrets: this.secrets,
      secretContentTypes: this.secretContentTypes,
      clock: () => tenant.clock(),
      tokenFor: (req, audience) => tenant.tokenFor(req, audience),
      countSecretRead: () => {
        tenant.secretReads++;
      },
    };
    this.incidentsRoute = new IncidentsRoute(
      {
        get tenantId() {
          return tenant.tenantId;
        },
        get origin() {
          return tenant.origin;
        },
        get store() {
          return tenant.store;
        },
        get quirks() {
          return tenant.quirks;
        },
        get afterPage() {
          return tenant.afterPage;
        },
        clock: () => tenant.clock(),
        tokenFor: (req, audience) => tenant.tokenFor(req, audience),
        tokenRoles: (req) => tenant.tokenRoles(req),
      },
      options,
    );
    this.validClientSecrets.add(this.clientSecret);
    this.secrets.set(this.secretName, this.clientSecret);
  }

  /** Graph requests refused with 429 by {@link SimulatedTenantOptions.graphLimit}. */
  get graphThrottled(): number {
    return this.incidentsRoute.graphThrottled;
  }

  /** Starts the tenant on a free port of 127.0.0.1. */
  static async start(options: SimulatedTenantOptions = {}): Promise<SimulatedTenant> {
    const tenant = SimulatedTenant.prepare(options);
    const { cert, key } = await createLoopbackCertificate();
    tenant.ca = cert;
    tenant.signingKey = await sharedSigningKey();
    const server = https.createServer({ cert, key }, (req, res) => {
      void tenant.serve(req, res);
    });
    tenant.server = server;
    server.on('connection', (socket: Socket) => {
      tenant.sockets.add(socket);
      socket.on('close', () => tenant.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    tenant.origin = `https://127.0.0.1:${address.port}`;
    tenant.trustManagedIdentity();
    servingTenants.set(tenant.identityClientId.toLowerCase(), tenant);
    return tenant;
  }

  /**
   * A tenant without a server, reached only through {@link transport} (and {@link issueToken}): cheap enough to
   * make one per test case. `origin` is only the name its links and token audience carry.
   */
  static inMemory(options: SimulatedTenantOptions & { origin?: string } = {}): SimulatedTenant {
    const tenant = SimulatedTenant.prepare(options);
    tenant.origin = options.origin ?? 'https://127.0.0.1:1';
    tenant.trustManagedIdentity();
    return tenant;
  }

  private static prepare(options: SimulatedTenantOptions): SimulatedTenant {
    const tenant = new SimulatedTenant(options);
    if (options.incidents) {
      const now = tenant.clock();
      tenant.store.generate(options.incidents, {
        from: new Date(now - 72 * 3_600_000),
        to: new Date(now - 60_000),
      });
    }
    return tenant;
  }

  /** The HTTPS adapter: one request through {@link respond}, delivered as the route decided. */
  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    const answer = await this.respond({
      method: req.method ?? 'GET',
      url: new URL(req.url ?? '/', this.origin),
      headers: req.headers,
      body,
    });
    if (answer.delivery === 'reset') {
      req.socket.destroy();
      return;
    }
    if (answer.delivery === 'hang') return;
    if (answer.delivery === 'truncated') {
      res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length) });
      res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)));
      setImmediate(() => res.socket?.destroy());
      return;
    }
    res.on('finish', () => answer.sent());
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  }

  /**
   * Where the real `ManagedIdentityCredential` sends its token requests in the sandbox: an HTTP client (the
   * SDKs' own, over HTTPS with the tenant's CA) that sends each request to the tenant whose identity it names
   * (`client_id`), with its path and query. With no managed identity variables in the environment, the
   * credential asks the instance metadata service (IMDS, http://169.254.169.254/metadata/identity/oauth2/token),
   * which the tenant plays: no `process.env` is changed.
   *
   * One client for all tenants of the process, because @azure/msal-node (7.2.3) keeps the managed identity
   * source, with the network client of the first credential that used it, in a static field
   * (`ManagedIdentityClient.identitySource`): every later credential's requests go through that first client.
   */
  get identityEndpoint(): HttpClient {
    return identityEndpoint();
  }

  /**
   * The real SDK credential of the tenant's user-assigned managed identity (Key Vault reads; the assertion of
   * `federated` mode), talking to the simulated identity endpoint; tests shorten its retries.
   */
  managedIdentityCredential(options: Pick<TokenCredentialOptions, 'retryOptions'> = {}): TokenCredential {
    return new ManagedIdentityCredential({
      clientId: this.identityClientId,
      httpClient: this.identityEndpoint,
      tlsOptions: { ca: this.ca },
      ...options,
    });
  }

  /** The issuer of the managed identity's tokens: this tenant's v2.0 issuer (Entra's for the global cloud). */
  get identityIssuer(): string {
    return `${this.origin}/${this.tenantId}/v2.0`;
  }

  /**
   * The settings of one DEFENDER_CREDENTIAL mode against this tenant, as a deployment sets them: `secret` reads
   * the vault's client secret, `federated` names only the managed identity, `certificate` names the vault and
   * the certificate ({@link SANDBOX_CERTIFICATE} unless given; {@link createCertificate} makes it).
   */
  credentialSettings(mode: string, certificateName = SANDBOX_CERTIFICATE): Record<string, string> {
    switch (mode) {
      case 'federated':
        return { DEFENDER_CREDENTIAL: 'federated', AZURE_CLIENT_ID: this.identityClientId };
      case 'certificate':
        return {
          DEFENDER_CREDENTIAL: 'certificate',
          KEY_VAULT_URL: this.origin,
          KEY_VAULT_CERTIFICATE_NAME: certificateName,
        };
      case 'secret':
        return { KEY_VAULT_URL: this.origin };
      default:
        return { DEFENDER_CREDENTIAL: mode, KEY_VAULT_URL: this.origin };
    }
  }

  /** The app trusts the managed identity as a federated credential again (the default), replacing all others. */
  trustManagedIdentity(): void {
    this.federatedCredentials = [
      { issuer: this.identityIssuer, subject: this.identityPrincipalId, audiences: [EXCHANGE_AUDIENCE] },
    ];
  }

  /**
   * Creates a certificate in the vault, as `az keyvault certificate create` with a PEM policy does: its secret
   * (same name) holds the private key and the certificate in PEM, and, unless `upload` is false, the public
   * certificate is uploaded to the app registration. `exportable: false` leaves the key out of the secret, as
   * Key Vault does for a non-exportable key. Returns the certificate (PEM) and its SHA-256 thumbprint.
   */
  async createCertificate(
    name: string,
    options: { validForMs?: number; exportable?: boolean; upload?: boolean } = {},
  ): Promise<{ certificate: string; privateKey: string; thumbprint: string }> {
    const now = this.clock();
    const { cert, key } = await createAppCertificate(`CN=${name}`, {
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(now + (options.validForMs ?? 365 * 86_400_000)),
    });
    if (options.upload !== false) this.appCertificates.push(cert);
    const privateKey = createPrivateKey(key).export({ format: 'pem', type: 'pkcs8' }).toString();
    this.secrets.set(name, options.exportable === false ? cert : `${privateKey}${cert}`);
    this.secretContentTypes.set(name, 'application/x-pem-file');
    const thumbprint = createHash('sha256').update(new X509Certificate(cert).raw).digest('base64url');
    return { certificate: cert, privateKey, thumbprint };
  }

  /**
   * The key that signs the managed identity's tokens: one per process, made off the event loop when a tenant
   * starts (an RSA key takes up to a second on a busy machine); an in-memory tenant makes it on first use.
   */
  private identitySigningKey(): KeyObject {
    this.signingKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    return this.signingKey;
  }

  /**
   * A token of the managed identity for `resource`, as its endpoint issues it: a JWT signed (RS256) by the
   * tenant's key with the identity's principal ID as subject and object ID, recorded in {@link issuedTokens}.
   * `issuedAt` dates it (a test makes an expired one). Dated and judged by the host's clock, not the tenant's:
   * @azure/msal-node keeps managed identity tokens in a process-wide cache on the host's clock, so a test that
   * moves the tenant's clock on would otherwise be served tokens the tenant refuses.
   */
  issueIdentityToken(resource: string, options: { issuedAt?: number } = {}): string {
    const issuedAt = options.issuedAt ?? Date.now();
    const expiresAt = issuedAt + this.tokenLifetimeSeconds * 1000;
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = [
      part({ typ: 'JWT', alg: 'RS256', kid: 'sandbox-identity' }),
      part({
        aud: resource,
        iss: this.identityIssuer,
        iat: Math.floor(issuedAt / 1000),
        nbf: Math.floor(issuedAt / 1000),
        exp: Math.floor(expiresAt / 1000),
        azp: this.identityClientId,
        appid: this.identityClientId,
        idtyp: 'app',
        oid: this.identityPrincipalId,
        sub: this.identityPrincipalId,
        tid: this.tenantId,
        ver: '2.0',
      }),
    ].join('.');
    const signature = sign('sha256', Buffer.from(signed), this.identitySigningKey()).toString('base64url');
    const token = `${signed}.${signature}`;
    this.tokens.set(token, {
      audience: resource,
      expiresAt,
      clientId: this.identityClientId,
      roles: [],
      onHostClock: true,
    });
    this.issuedTokens.push(token);
    return token;
  }

  /**
   * An access token for `audience` (this tenant's origin, or Key Vault's), as the token endpoint issues it after
   * checking the client: for in-memory tests that do not run MSAL. Recorded in {@link issuedTokens}. Shaped as
   * Entra's app-only access tokens (a JWT whose payload carries `aud`, `tid`, `appid` and, for the app on the
   * incidents APIs, `roles`: https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference),
   * with a random signature: only this tenant checks it, by lookup.
   */
  issueToken(clientId: string, audience: string): string {
    const issuedAt = this.clock();
    const expiresAt = issuedAt + this.tokenLifetimeSeconds * 1000;
    const roles = clientId === this.clientId && audience === this.origin ? [...this.appRoles] : [];
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = [
      part({ typ: 'JWT', alg: 'RS256', kid: 'sandbox' }),
      part({
        aud: audience,
        iss: `https://sts.windows.net/${this.tenantId}/`,
        iat: Math.floor(issuedAt / 1000),
        nbf: Math.floor(issuedAt / 1000),
        exp: Math.floor(expiresAt / 1000),
        appid: clientId,
        idtyp: 'app',
        oid: randomUUID(),
        ...(roles.length > 0 ? { roles } : {}),
        sub: randomUUID(),
        tid: this.tenantId,
        ver: '1.0',
      }),
      randomBytes(32).toString('base64url'),
    ].join('.');
    this.tokens.set(token, { audience, expiresAt, clientId, roles });
    this.issuedTokens.push(token);
    return token;
  }

  /** True when this tenant issued `token` (an access token, without `Bearer `) and it is still known. */
  holdsToken(token: string): boolean {
    return this.tokens.has(token);
  }

  /** Every issued token stops working, as after a revocation. */
  revokeAllTokens(): void {
    this.tokens.clear();
  }

  async close(): Promise<void> {
    servingTenants.delete(this.identityClientId.toLowerCase());
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Answers one request in memory, with the same routes, faults and hooks as over HTTPS: a reset rejects with a
   * network error, a cut body rejects as a connection closed early, and a hang waits for `abortSignal`.
   */
  readonly transport: ApiTransport = async (request: ApiTransportRequest): Promise<ApiTransportResponse> => {
    const res = await this.respond({
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v])),
      body: '',
    });
    request.abortSignal.throwIfAborted();
    switch (res.delivery) {
      case 'reset':
        throw new Error('ECONNRESET socket hang up');
      case 'truncated':
        throw new Error('the connection closed before the response was complete');
      case 'hang':
        return new Promise<never>((_, reject) => {
          const abort = () => reject(new Error('aborted'));
          if (request.abortSignal.aborted) abort();
          else request.abortSignal.addEventListener('abort', abort, { once: true });
        });
      default:
        res.sent();
        return { status: res.status, headers: { ...res.headers }, body: res.body };
    }
  };

  /** One request through the routes; never throws (a route that fails answers 500). */
  async respond(req: RouteRequest): Promise<RouteResponse> {
    const target = this.router?.(req);
    if (target && target !== this) return target.respond(req);
    const res = new RouteResponse();
    try {
      await this.handle(req, res);
    } catch (e) {
      if (!res.headersSent) json(res, 500, { error: { code: 'InternalServerError', message: String(e) } });
    }
    return res;
  }

  private async handle(req: RouteRequest, res: RouteResponse): Promise<void> {
    // The services' clock is the tenant's, as a real one's `Date` header is theirs (not the host's).
    res.setHeader('Date', new Date(this.clock()).toUTCString());
    const url = req.url;
    const path = url.pathname;
    const api: SimulatedApi | undefined = path.startsWith('/v1.0/security/incidents')
      ? 'graph'
      : path.startsWith('/api/incidents')
        ? 'legacy'
        : path.startsWith('/secrets/')
          ? 'keyvault'
          : path === IDENTITY_TOKEN_PATH
            ? 'identity'
            : /^\/[^/]+\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.test(path)
              ? 'entra'
              : undefined;
    if (!api) {
      json(res, 404, { error: { code: 'NotFound', message: `no route ${path}` } });
      return;
    }
    const body = req.body;
    this.requests.push({
      api,
      method: req.method ?? 'GET',
      path,
      query: Object.fromEntries(url.searchParams),
      hadAuthorization: Boolean(req.headers.authorization),
    });
    const index = this.counters[api]++;
    if ((api === 'graph' || api === 'legacy') && this.options.latencyInMs) {
      await new Promise((resolve) => setTimeout(resolve, this.options.latencyInMs));
    }
    const fault = this.intercept?.({ api, url, index });
    if (
      fault &&
      !(
        'kind' in fault &&
        (fault.kind === 'truncate' || fault.kind === 'nextLink' || fault.kind === 'corrupt')
      )
    ) {
      this.applyFault(res, fault);
      return;
    }
    switch (api) {
      case 'entra':
        return answerEntra(this.entraContext, res, url, body);
      case 'keyvault':
        return answerKeyVault(this.keyVaultContext, req, res, url);
      case 'identity':
        return answerIdentity(this.identityContext, req, res, url);
      default:
        return this.incidentsRoute.handle(api, req, res, url, fault);
    }
  }

  private applyFault(res: RouteResponse, fault: Fault): void {
    if ('status' in fault) {
      res.writeHead(fault.status, { 'Content-Type': 'application/json; charset=utf-8', ...fault.headers });
      res.end(
        fault.body ?? JSON.stringify({ error: { code: String(fault.status), message: 'Injected fault' } }),
      );
    } else if (fault.kind === 'reset' || fault.kind === 'hang') {
      // 'hang': never answer; close() destroys the socket, a client's timeout ends the request.
      res.delivery = fault.kind;
    }
  }

  private tokenFor(req: RouteRequest, audience: string): 'ok' | 'missing' | 'invalid' {
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) return 'missing';
    const token = this.tokens.get(header.slice(7));
    const now = token?.onHostClock ? Date.now() : this.clock();
    if (!token || token.audience !== audience || token.expiresAt <= now) return 'invalid';
    return 'ok';
  }

  /** The application roles of the request's bearer token (none for an unknown one). */
  private tokenRoles(req: RouteRequest): readonly string[] {
    const header = req.headers.authorization;
    return (header?.startsWith('Bearer ') && this.tokens.get(header.slice(7))?.roles) || [];
  }
}

let signingKey: Promise<KeyObject> | undefined;

/** The RSA key of the simulated identities' tokens, generated once per process in the thread pool. */
function sharedSigningKey(): Promise<KeyObject> {
  signingKey ??= new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048 }, (error, _publicKey, privateKey) =>
      error ? reject(error) : resolve(privateKey),
    );
  });
  return signingKey;
}

/** The started tenants, by the client ID of their managed identity, newest last. */
const servingTenants = new Map<string, SimulatedTenant>();
let sharedIdentityEndpoint: HttpClient | undefined;

/** The one HTTP client of the simulated identity endpoints (see {@link SimulatedTenant.identityEndpoint}). */
function identityEndpoint(): HttpClient {
  if (sharedIdentityEndpoint) return sharedIdentityEndpoint;
  const inner = createDefaultHttpClient();
  sharedIdentityEndpoint = {
    sendRequest: (request) => {
      const target = new URL(request.url);
      const clientId = (target.searchParams.get('client_id') ?? '').toLowerCase();
      // An identity no tenant has goes to the newest tenant, which answers "Identity not found".
      const tenant = servingTenants.get(clientId) ?? [...servingTenants.values()].at(-1);
      if (!tenant) throw new Error('No simulated tenant is serving: start one first.');
      request.url = `${tenant.origin}${target.pathname}${target.search}`;
      request.tlsSettings = { ...request.tlsSettings, ca: tenant.ca };
      return inner.sendRequest(request);
    },
  };
  return sharedIdentityEndpoint;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
