import { randomBytes, randomUUID } from 'node:crypto';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiTransport, ApiTransportRequest, ApiTransportResponse } from '../source/apiClient';
import type { Socket } from 'node:net';
import { ClientSecretCredential, type TokenCredential } from '@azure/identity';
import { parseTimestamp } from '../export/timestamp';
import { createLoopbackCertificate } from './certificates';
import { IncidentStore, lastUpdateOf, toGraph, toLegacy, type Incident } from './incidentStore';
import { compileFilter, FilterSyntaxError } from './odataFilter';
import { Random } from './random';
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

/** Paging misbehaviours of the incidents APIs, reported or possible (all off by default). */
export interface PagingQuirks {
  /**
   * Graph omits `@odata.nextLink` on a full page although more rows follow: always, or with this probability.
   * (Not the legacy API: there a capped page without a nextLink cannot be told from the last one.)
   */
  omitNextLinkOnFullPage?: 'always' | number;
  /** No `@odata.nextLink` once it would reach `$skip >= skipCap` (a deep-paging cap). */
  skipCap?: number;
  /** The `@odata.nextLink` repeats the request's own URL (same rows again). */
  repeatNextLink?: boolean;
  /** 'ms': `$filter` compares datetimes truncated to milliseconds, while payloads carry 7 fractional digits. */
  filterPrecision?: 'exact' | 'ms';
  /** The legacy API returns at most this many rows per page (whatever `$top` asks) and a nextLink when more exist. */
  legacyServerPageCap?: number;
}

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
  private readonly quirkRandom: Random;
  afterPage: ((api: 'graph' | 'legacy', pageIndex: number) => void) | undefined;
  /** Every access token issued (tests check that none leaks). */
  readonly issuedTokens: string[] = [];

  private readonly tokens = new Map<string, { audience: string; expiresAt: number; clientId: string }>();
  private readonly counters: Record<SimulatedApi, number> = { entra: 0, keyvault: 0, graph: 0, legacy: 0 };
  private readonly pages: Record<'graph' | 'legacy', number> = { graph: 0, legacy: 0 };
  private readonly legacyCalls: number[] = [];
  private sortCache:
    | {
        store: IncidentStore;
        revision: number;
        orderby: string | undefined;
        incidents: Incident[];
        ticks: bigint[];
      }
    | undefined;
  private queryCache:
    { key: string; store: IncidentStore; revision: number; matching: Incident[] } | undefined;
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
    this.quirkRandom = new Random((options.seed ?? 1) + 1);
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
      if (!res.headersSent)
        this.json(res, 500, { error: { code: 'InternalServerError', message: String(e) } });
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
      this.json(res, 404, { error: { code: 'NotFound', message: `no route ${path}` } });
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
        return this.incidents(api, req, res, url, fault);
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
      this.json(res, this.entraDiscoveryStatus, {
        error: 'temporarily_unavailable',
        error_description: 'The service is temporarily unavailable.',
      });
      return;
    }
    if (rest[0] === 'v2.0') {
      const base = `${this.origin}/${tenant}`;
      this.json(res, 200, {
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
    this.json(res, 200, {
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
    this.json(res, status, {
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
      this.json(res, 401, {
        error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
      });
      return;
    }
    const [, , name, version] = url.pathname.split('/');
    if (this.keyVaultForbidden) {
      this.json(res, 403, {
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
      this.json(res, 403, {
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
      this.json(res, 404, {
        error: {
          code: 'SecretNotFound',
          message: `A secret with (name/id) ${name} was not found in this key vault.`,
        },
      });
      return;
    }
    this.secretReads++;
    const secondsNow = Math.floor(this.clock() / 1000);
    this.json(res, 200, {
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

  // ---------------------------------------------------------------- incidents

  private incidents(
    api: 'graph' | 'legacy',
    req: RouteRequest,
    res: RouteResponse,
    url: URL,
    fault: Fault | undefined,
  ): void {
    const auth = this.tokenFor(req, this.origin);
    if (auth !== 'ok') {
      if (api === 'graph') {
        res.setHeader(
          'WWW-Authenticate',
          'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"',
        );
        this.graphError(
          req,
          res,
          401,
          'InvalidAuthenticationToken',
          'Access token has expired or is not yet valid.',
        );
      } else {
        this.json(res, 401, {
          error: { code: 'Unauthorized', message: 'Unauthorized', target: randomUUID() },
        });
      }
      return;
    }
    if (api === 'legacy' && !this.allowLegacyCall(res)) return;
    const byId = /^\/v1\.0\/security\/incidents\/([^/]+)$/.exec(url.pathname);
    if (api === 'graph' && byId) {
      const incident = this.store.get(decodeURIComponent(byId[1]!));
      if (!incident) this.graphError(req, res, 404, 'NotFound', `Incident ${byId[1]} was not found`);
      else {
        const expand = /alerts/.test(url.searchParams.get('$expand') ?? '');
        const includeUnknown = /include-unknown-enum-members/.test(String(req.headers.prefer ?? ''));
        this.json(
          res,
          200,
          toGraph(incident, {
            tenantId: this.tenantId,
            expandAlerts: expand,
            includeUnknownEnums: includeUnknown,
          }),
        );
      }
      return;
    }
    const query = new Map<string, string>();
    for (const [k, v] of url.searchParams) query.set(k.toLowerCase(), v);
    const maxTop = api === 'graph' ? 50 : 100;
    const top = query.has('$top') ? Number(query.get('$top')) : maxTop;
    const skip = Number(query.get('$skip') ?? 0);
    if (!Number.isInteger(top) || top < 0 || top > maxTop) {
      const message = `The limit of '${maxTop}' for Top query has been exceeded. The value from the incoming request is '${query.get('$top')}'.`;
      if (api === 'graph')
        this.graphError(req, res, 400, '', `The query specified in the URI is not valid. ${message}`);
      else
        this.json(res, 400, {
          error: { code: 'ODataError', message: `Invalid OData URI query: ${message}`, target: randomUUID() },
        });
      return;
    }
    if (api === 'legacy') {
      const unsupported = ['$orderby', '$expand', '$select', '$count'].find((k) => query.has(k));
      if (unsupported) {
        this.json(res, 400, {
          error: {
            code: 'ODataError',
            message: `Invalid OData URI query: ${unsupported} is not supported.`,
            target: randomUUID(),
          },
        });
        return;
      }
    }
    const fields = api === 'graph' ? GRAPH_FIELDS : LEGACY_FIELDS;
    let predicate: (i: Incident) => boolean = () => true;
    const filter = query.get('$filter');
    if (filter) {
      try {
        const compiled = compileFilter(
          filter,
          Object.keys(fields),
          api === 'graph' ? ['lastUpdateDateTime', 'createdDateTime'] : ['lastUpdateTime', 'createdTime'],
          this.quirks.filterPrecision,
        );
        // One view whose fields are computed on demand for the incident at hand: a filter reads one or two.
        let current: Incident | undefined;
        const view = Object.defineProperties(
          {},
          Object.fromEntries(
            Object.entries(fields).map(([name, get]) => [
              name,
              { get: () => get(current!), enumerable: true },
            ]),
          ),
        ) as Record<string, string | null>;
        predicate = (i) => {
          current = i;
          return compiled(view);
        };
      } catch (e) {
        if (!(e instanceof FilterSyntaxError)) throw e;
        if (api === 'graph')
          this.graphError(req, res, 400, 'BadRequest', `Invalid filter clause: ${e.message}`);
        else
          this.json(res, 400, {
            error: {
              code: 'ODataError',
              message: `Invalid OData URI query: ${e.message}`,
              target: randomUUID(),
            },
          });
        return;
      }
    }
    const wantCount = query.get('$count') === 'true';
    const cap = api === 'legacy' ? this.quirks.legacyServerPageCap : undefined;
    const served = cap !== undefined && cap < top ? cap : top;
    const { page, hasMore, count } = this.query(api, url, predicate, { skip, top: served, wantCount });
    const includeUnknown = /include-unknown-enum-members/.test(String(req.headers.prefer ?? ''));
    const expand = api === 'graph' && /alerts/.test(query.get('$expand') ?? '');
    const value = page.map((i) =>
      api === 'graph'
        ? toGraph(i, { tenantId: this.tenantId, expandAlerts: expand, includeUnknownEnums: includeUnknown })
        : toLegacy(i),
    );
    const next = new URL(url.pathname, this.origin);
    for (const [k, v] of url.searchParams) if (k.toLowerCase() !== '$skip') next.searchParams.set(k, v);
    next.searchParams.set('$skip', String(skip + page.length));
    let nextLink =
      hasMore && (api === 'graph' || this.options.legacyNextLink || served < top)
        ? next.toString()
        : undefined;
    nextLink = this.quirkyNextLink(
      nextLink,
      url,
      api === 'graph' && page.length === served,
      skip + page.length,
    );
    if (fault && 'kind' in fault && fault.kind === 'nextLink') nextLink = fault.url;
    const document: Record<string, unknown> = {
      '@odata.context':
        api === 'graph'
          ? `${this.origin}/v1.0/$metadata#security/incidents${expand ? '(alerts())' : ''}`
          : `${this.origin}/api/$metadata#Incidents`,
      ...(wantCount ? { '@odata.count': count } : {}),
      ...(nextLink ? { '@odata.nextLink': nextLink } : {}),
      value,
    };
    if (fault && 'kind' in fault && fault.kind === 'corrupt')
      fault.mutate(document as { value: Record<string, unknown>[] });
    const pageIndex = this.pages[api]++;
    res.onSent(() => this.afterPage?.(api, pageIndex));
    const text = JSON.stringify(document);
    const headers: Record<string, string> = {
      'Content-Type':
        api === 'graph'
          ? 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'
          : 'application/json; odata.metadata=minimal',
      'request-id': randomUUID(),
      'client-request-id': String(req.headers['client-request-id'] ?? randomUUID()),
    };
    if (fault && 'kind' in fault && fault.kind === 'truncate') {
      res.writeHead(200, headers);
      res.end(text);
      res.delivery = 'truncated';
      return;
    }
    res.writeHead(200, headers);
    res.end(text);
  }

  private quirkyNextLink(
    nextLink: string | undefined,
    url: URL,
    /** A full Graph page. */
    isFull: boolean,
    nextSkip: number,
  ): string | undefined {
    const q = this.quirks;
    if (!nextLink) return undefined;
    if (q.skipCap !== undefined && nextSkip >= q.skipCap) return undefined;
    const omit = q.omitNextLinkOnFullPage;
    if (isFull && (omit === 'always' || (omit !== undefined && this.quirkRandom.chance(omit))))
      return undefined;
    return q.repeatNextLink ? new URL(`${url.pathname}${url.search}`, this.origin).toString() : nextLink;
  }

  /** Two sliding windows per app, as the legacy API enforces them (api-contract.md §3.4). */
  private allowLegacyCall(res: RouteResponse): boolean {
    const limits = this.options.legacyLimits ?? { perMinute: 50, perHour: 1500 };
    const minute = limits.minuteInMs ?? 60_000;
    const hour = limits.hourInMs ?? 3_600_000;
    const now = this.clock();
    while (this.legacyCalls.length > 0 && this.legacyCalls[0]! <= now - hour) this.legacyCalls.shift();
    const lastMinute = this.legacyCalls.filter((t) => t > now - minute);
    const overMinute = lastMinute.length >= limits.perMinute;
    const overHour = this.legacyCalls.length >= limits.perHour;
    if (!overMinute && !overHour) {
      this.legacyCalls.push(now);
      return true;
    }
    const resetAt = overHour
      ? this.legacyCalls[this.legacyCalls.length - limits.perHour]! + hour
      : lastMinute[lastMinute.length - limits.perMinute]! + minute;
    const seconds = Math.max(1, Math.ceil((resetAt - now) / 1000));
    res.setHeader('Retry-After', String(seconds));
    this.json(res, 429, {
      error: {
        code: '429',
        message: `API calls quota exceeded! Maximum allowed ${overHour ? `${limits.perHour} per 01:00:00` : `${limits.perMinute} per 00:01:00`} for the key Destination+TenantID+AppID. You can send requests again in ${seconds} seconds.`,
        target: randomUUID(),
      },
    });
    return false;
  }

  /**
   * One page of the incidents a list request matches, in its order, and whether more follow. Pages of one
   * query differ only in `$skip` and `$top`, so the full result is kept until the store changes; and a Graph
   * query ordered by `lastUpdateDateTime asc` whose filter bounds that field (a conjunction, as the exporter
   * sends) is answered from a binary search of the sorted store. Paging a large tenant stays cheap.
   */
  private query(
    api: 'graph' | 'legacy',
    url: URL,
    predicate: (i: Incident) => boolean,
    { skip, top, wantCount }: { skip: number; top: number; wantCount: boolean },
  ): { page: Incident[]; hasMore: boolean; count: number | undefined } {
    const orderby = api === 'graph' ? (url.searchParams.get('$orderby') ?? undefined) : undefined;
    let sorted = this.sortCache;
    if (
      !sorted ||
      sorted.store !== this.store ||
      sorted.revision !== this.store.revision ||
      sorted.orderby !== orderby
    ) {
      const incidents = this.store.all().sort(order(orderby));
      sorted = {
        store: this.store,
        revision: this.store.revision,
        orderby,
        incidents,
        ticks: incidents.map((i) => lastUpdateOf(i).ticks),
      };
      this.sortCache = sorted;
    }
    const exact =
      api === 'graph' && !wantCount ? timeBounds(url.searchParams.get('$filter'), orderby) : undefined;
    // A coarse filter matches the whole millisecond of each bound: widen the scan to it.
    const bounds =
      exact && this.quirks.filterPrecision === 'ms'
        ? {
            from: exact.from === undefined ? undefined : exact.from - (exact.from % 10_000n),
            to: exact.to === undefined ? undefined : exact.to - (exact.to % 10_000n) + 9_999n,
          }
        : exact;
    if (bounds) {
      const page: Incident[] = [];
      let matched = 0;
      for (let i = lowerBound(sorted.ticks, bounds.from); i < sorted.incidents.length; i++) {
        if (bounds.to !== undefined && sorted.ticks[i]! > bounds.to) break;
        const incident = sorted.incidents[i]!;
        if (!predicate(incident) || matched++ < skip) continue;
        if (page.length === top) return { page, hasMore: true, count: undefined };
        page.push(incident);
      }
      return { page, hasMore: false, count: undefined };
    }
    const params = [...url.searchParams].filter(([k]) => !['$skip', '$top'].includes(k.toLowerCase()));
    const key = `${api} ${url.pathname} ${JSON.stringify(params)}`;
    let cached = this.queryCache;
    if (
      !cached ||
      cached.key !== key ||
      cached.store !== this.store ||
      cached.revision !== this.store.revision
    ) {
      // Filtering keeps the order, so one sort serves every query until the store changes.
      cached = {
        key,
        store: this.store,
        revision: this.store.revision,
        matching: sorted.incidents.filter(predicate),
      };
      this.queryCache = cached;
    }
    const page = cached.matching.slice(skip, skip + top);
    return { page, hasMore: skip + page.length < cached.matching.length, count: cached.matching.length };
  }

  private graphError(
    req: RouteRequest,
    res: RouteResponse,
    status: number,
    code: string,
    message: string,
  ): void {
    const requestId = randomUUID();
    this.json(res, status, {
      error: {
        code,
        message,
        ...(status === 400 ? { details: [] } : {}),
        innerError: {
          date: new Date(this.clock()).toISOString().slice(0, 19),
          'request-id': requestId,
          'client-request-id': String(req.headers['client-request-id'] ?? requestId),
        },
      },
    });
  }

  private json(res: RouteResponse, status: number, value: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(value));
  }
}

const GRAPH_FIELDS: Record<string, (i: Incident) => string | null> = {
  lastUpdateDateTime: (i) => i.lastUpdateTime,
  createdDateTime: (i) => i.createdTime,
  status: (i) => i.status,
  severity: (i) => i.severity,
  assignedTo: (i) => i.assignedTo,
  classification: (i) => i.classification,
  determination: (i) => i.determination,
};

const LEGACY_FIELDS: Record<string, (i: Incident) => string | null> = {
  lastUpdateTime: (i) => i.lastUpdateTime,
  createdTime: (i) => i.createdTime,
  status: (i) => i.status,
  assignedTo: (i) => i.assignedTo,
};

/** Default order newest created first; Graph also orders by either timestamp, id breaking ties. */
function order(orderby: string | undefined): (a: Incident, b: Incident) => number {
  const [field = 'createdDateTime', direction = 'desc'] = (orderby ?? '').trim().split(/\s+/).filter(Boolean);
  const key =
    field === 'lastUpdateDateTime'
      ? (i: Incident) => lastUpdateOf(i).ticks
      : (i: Incident) => parseTimestamp(i.createdTime)!.ticks;
  const sign = direction.toLowerCase() === 'asc' ? 1 : -1;
  const keys = new Map<Incident, bigint>();
  const keyOf = (i: Incident): bigint => {
    let k = keys.get(i);
    if (k === undefined) keys.set(i, (k = key(i)));
    return k;
  };
  return (a, b) => {
    const ka = keyOf(a);
    const kb = keyOf(b);
    if (ka !== kb) return ka < kb ? -sign : sign;
    return (a.id - b.id) * sign;
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * The range of `lastUpdateDateTime` a filter allows, when it is a plain conjunction over a store sorted by
 * that field ascending: a scan may start and stop there (the filter itself still decides each incident).
 */
function timeBounds(
  filter: string | null,
  orderby: string | undefined,
): { from: bigint | undefined; to: bigint | undefined } | undefined {
  if (!filter || !/^lastUpdateDateTime\s+asc$/i.test((orderby ?? '').trim())) return undefined;
  if (/\bor\b|\bnot\b|[()]/i.test(filter)) return undefined;
  let from: bigint | undefined;
  let to: bigint | undefined;
  for (const m of filter.matchAll(/lastUpdateDateTime\s+(ge|gt|eq|lt|le)\s+(\S+)/gi)) {
    const ticks = parseTimestamp(m[2])?.ticks;
    if (ticks === undefined) return undefined;
    const op = m[1]!.toLowerCase();
    if (op !== 'lt' && op !== 'le' && (from === undefined || ticks > from)) from = ticks;
    if (op !== 'ge' && op !== 'gt' && (to === undefined || ticks < to)) to = ticks;
  }
  return from === undefined && to === undefined ? undefined : { from, to };
}

/** The first index whose value is at or after `value` (0 when there is no bound). */
function lowerBound(values: readonly bigint[], value: bigint | undefined): number {
  if (value === undefined) return 0;
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
