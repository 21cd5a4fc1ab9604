import { randomBytes, randomUUID } from 'node:crypto';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiTransport, ApiTransportRequest, ApiTransportResponse } from '../source/apiClient';
import type { Socket } from 'node:net';
import {
  ClientSecretCredential,
  type ClientSecretCredentialOptions,
  type TokenCredential,
} from '@azure/identity';
import { createLoopbackCertificate } from './certificates';
import { IncidentStore } from './incidentStore';
import { IncidentsRoute, type PagingQuirks } from './incidentsRoute';
import { answerEntra, type EntraContext } from './entraRoute';
import { answerKeyVault, type KeyVaultContext } from './keyVaultRoute';
import { json } from './routeReplies';
import { RouteResponse, type RouteRequest } from './routeExchange';

export type SimulatedApi = 'entra' | 'keyvault' | 'graph' | 'legacy';

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
}

export type { PagingQuirks };

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
  /** The managed identity the sandbox's Function uses for Key Vault. */
  readonly identityClientId: string;
  private readonly identitySecret: string;
  readonly secretName: string;
  /** The incidents; a test may swap in a fresh store between cases. */
  store: IncidentStore;
  /** Secrets the app registration accepts; remove one to simulate rotation. */
  readonly validClientSecrets = new Set<string>();
  /** Key Vault contents. */
  readonly secrets = new Map<string, string>();
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
    { audience: string; expiresAt: number; clientId: string; roles: readonly string[] }
  >();
  private readonly counters: Record<SimulatedApi, number> = { entra: 0, keyvault: 0, graph: 0, legacy: 0 };
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
    this.identitySecret = `mi~${randomBytes(18).toString('base64url')}`;
    this.secretName = options.secretName ?? 'defender-client-secret';
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3599;
    this.store = options.store ?? new IncidentStore(options.seed ?? 1, this.clock);
    this.quirks = { ...options.quirks };
    this.appRoles = options.appRoles ?? ['SecurityIncident.Read.All', 'Incident.Read.All'];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tenant = this;
    this.entraContext = {
      tenantId: this.tenantId,
      clientId: this.clientId,
      identityClientId: this.identityClientId,
      identitySecret: this.identitySecret,
      validClientSecrets: this.validClientSecrets,
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

  /** Starts the tenant on a free port of 127.0.0.1. */
  static async start(options: SimulatedTenantOptions = {}): Promise<SimulatedTenant> {
    const tenant = SimulatedTenant.prepare(options);
    const { cert, key } = await createLoopbackCertificate();
    tenant.ca = cert;
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
    return tenant;
  }

  /**
   * A tenant without a server, reached only through {@link transport} (and {@link issueToken}): cheap enough to
   * make one per test case. `origin` is only the name its links and token audience carry.
   */
  static inMemory(options: SimulatedTenantOptions & { origin?: string } = {}): SimulatedTenant {
    const tenant = SimulatedTenant.prepare(options);
    tenant.origin = options.origin ?? 'https://127.0.0.1:1';
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

  /** A real SDK credential for the tenant's managed identity (Key Vault reads); tests shorten its retries. */
  managedIdentityCredential(
    options: Pick<ClientSecretCredentialOptions, 'retryOptions'> = {},
  ): TokenCredential {
    return new ClientSecretCredential(this.tenantId, this.identityClientId, this.identitySecret, {
      authorityHost: this.origin,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: this.ca },
      ...options,
    });
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
    if (!token || token.audience !== audience || token.expiresAt <= this.clock()) return 'invalid';
    return 'ok';
  }

  /** The application roles of the request's bearer token (none for an unknown one). */
  private tokenRoles(req: RouteRequest): readonly string[] {
    const header = req.headers.authorization;
    return (header?.startsWith('Bearer ') && this.tokens.get(header.slice(7))?.roles) || [];
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
