import { randomBytes, randomUUID } from 'node:crypto';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiTransport, ApiTransportRequest, ApiTransportResponse } from '../source/apiClient';
import type { Socket } from 'node:net';
import { ClientSecretCredential, type TokenCredential } from '@azure/identity';
import { createLoopbackCertificate } from './certificates';
import { IncidentStore } from './incidentStore';
import { IncidentsRoute, type PagingQuirks } from './incidentsRoute';
import { json } from './routeReplies';
import { RouteResponse, type RouteRequest } from './routeExchange';

export type SimulatedApi = 'entra' | 'keyvault' | 'graph' | 'legacy';

/** What a test can make the simulated tenant do instead of answering normally. */
export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'truncate' }
  | { kind: 'nextLink'; url: string }
  /** Answer normally, but let the test change the page document first (hostile content). */
  | { kind: 'corrupt'; mutate: (document: { value: Record<string, unknown>[] }) => void };

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
  /** Legacy limits per app (api-contract.md §3.4). */
  legacyLimits?: { perMinute: number; perHour: number; minuteInMs?: number; hourInMs?: number };
  /** Emit `@odata.nextLink` on the legacy API too (it is undocumented there). */
  legacyNextLink?: boolean;
  store?: IncidentStore;
  port?: number;
  /** Added to every incidents API response (Graph and legacy), as the network and the service would. */
  latencyInMs?: number;
  quirks?: PagingQuirks;
}

export type { PagingQuirks };

const VAULT_AUDIENCE = 'https://vault.azure.net';

/**
 * A simulated Defender tenant on one HTTPS server bound to 127.0.0.1: Entra (OIDC discovery and client-credentials
 * tokens), Key Vault (challenge flow and secrets), Microsoft Graph `/v1.0/security/incidents` and the legacy
 * `/api/incidents`, both facades over one {@link IncidentStore}, following api-contract.md. Used by the tests
 * and by `npm start`; scenario hooks ({@link intercept}, {@link afterPage}) inject faults and changes.
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

  private readonly tokens = new Map<string, { audience: string; expiresAt: number; clientId: string }>();
  private readonly counters: Record<SimulatedApi, number> = { entra: 0, keyvault: 0, graph: 0, legacy: 0 };
  private readonly incidentsRoute: IncidentsRoute;
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
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tenant = this;
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

  /** A real SDK credential for the tenant's managed identity (Key Vault reads). */
  managedIdentityCredential(): TokenCredential {
    return new ClientSecretCredential(this.tenantId, this.identityClientId, this.identitySecret, {
      authorityHost: this.origin,
      disableInstanceDiscovery: true,
      tlsOptions: { ca: this.ca },
    });
  }

  /**
   * An access token for `audience` (this tenant's origin, or Key Vault's), as the token endpoint issues it after
   * checking the client: for in-memory tests that do not run MSAL. Recorded in {@link issuedTokens}.
   */
  issueToken(clientId: string, audience: string): string {
    const token = `sbx.${randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, {
      audience,
      expiresAt: this.clock() + this.tokenLifetimeSeconds * 1000,
      clientId,
    });
    this.issuedTokens.push(token);
    return token;
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
        return this.entra(res, url, body);
      case 'keyvault':
        return this.keyVault(req, res, url);
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

  // ---------------------------------------------------------------- Entra

  private entra(res: RouteResponse, url: URL, body: string): void {
    const [, tenant, ...rest] = url.pathname.split('/');
    const knownTenant = tenant?.toLowerCase() === this.tenantId.toLowerCase();
    if (!knownTenant) {
      this.aadError(
        res,
        400,
        'invalid_tenant',
        90002,
        `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      );
      return;
    }
    if (rest[0] === 'v2.0' && this.entraDiscoveryStatus !== undefined) {
      json(res, this.entraDiscoveryStatus, {
        error: 'temporarily_unavailable',
        error_description: 'The service is temporarily unavailable.',
      });
      return;
    }
    if (rest[0] === 'v2.0') {
      const base = `${this.origin}/${tenant}`;
      json(res, 200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        issuer: `${base}/v2.0`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      });
      return;
    }
    this.tokenRequests++;
    const form = new URLSearchParams(body);
    const clientId = form.get('client_id') ?? '';
    const secret = form.get('client_secret') ?? '';
    const scope = form.get('scope') ?? '';
    if (form.get('grant_type') !== 'client_credentials') {
      this.aadError(
        res,
        400,
        'unsupported_grant_type',
        70003,
        'The app requested an unsupported grant type.',
      );
      return;
    }
    const isApp = clientId === this.clientId;
    const isIdentity = clientId === this.identityClientId;
    if (!isApp && !isIdentity) {
      this.aadError(
        res,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.tenantId}'.`,
      );
      return;
    }
    if (!secret) {
      this.aadError(
        res,
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
      return;
    }
    if ((isApp && !this.validClientSecrets.has(secret)) || (isIdentity && secret !== this.identitySecret)) {
      this.aadError(
        res,
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      );
      return;
    }
    const resource = scope
      .split(' ')
      .find((s) => s.endsWith('/.default'))
      ?.slice(0, -'/.default'.length);
    if (!resource || (resource !== this.origin && resource !== VAULT_AUDIENCE)) {
      this.aadError(
        res,
        400,
        'invalid_scope',
        70011,
        `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
      );
      return;
    }
    const token = this.issueToken(clientId, resource);
    json(res, 200, {
      token_type: 'Bearer',
      expires_in: this.tokenLifetimeSeconds,
      ext_expires_in: this.tokenLifetimeSeconds,
      access_token: token,
    });
  }

  private aadError(
    res: RouteResponse,
    status: number,
    error: string,
    code: number,
    description: string,
  ): void {
    const traceId = randomUUID();
    const timestamp = new Date(this.clock()).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
    json(res, status, {
      error,
      error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: randomUUID(),
      error_uri: `${this.origin}/error?code=${code}`,
    });
  }

  private tokenFor(req: RouteRequest, audience: string): 'ok' | 'missing' | 'invalid' {
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) return 'missing';
    const token = this.tokens.get(header.slice(7));
    if (!token || token.audience !== audience || token.expiresAt <= this.clock()) return 'invalid';
    return 'ok';
  }

  // ---------------------------------------------------------------- Key Vault

  private keyVault(req: RouteRequest, res: RouteResponse, url: URL): void {
    if (this.tokenFor(req, VAULT_AUDIENCE) !== 'ok') {
      res.setHeader(
        'WWW-Authenticate',
        `Bearer authorization="${this.origin}/${this.tenantId}", resource="${VAULT_AUDIENCE}"`,
      );
      json(res, 401, {
        error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
      });
      return;
    }
    const [, , name, version] = url.pathname.split('/');
    if (this.keyVaultForbidden) {
      json(res, 403, {
        error: {
          code: 'Forbidden',
          message: `Caller is not authorized to perform action on resource.\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n`,
          innererror: { code: 'ForbiddenByRbac' },
        },
      });
      return;
    }
    if (name && this.disabledSecrets.has(name) && this.secrets.has(name)) {
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
    const value = name ? this.secrets.get(name) : undefined;
    if (value === undefined) {
      json(res, 404, {
        error: {
          code: 'SecretNotFound',
          message: `A secret with (name/id) ${name} was not found in this key vault.`,
        },
      });
      return;
    }
    this.secretReads++;
    const secondsNow = Math.floor(this.clock() / 1000);
    json(res, 200, {
      value,
      contentType: 'text/plain',
      id: `${this.origin}/secrets/${name}/${version || '4387e9f3d6e14c459867679a90fd0f79'}`,
      attributes: {
        enabled: true,
        created: secondsNow,
        updated: secondsNow,
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
      },
    });
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
