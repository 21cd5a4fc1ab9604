import { SimulatedTenant, type SimulatedTenantOptions } from './simulatedTenant';
import type { RouteRequest } from './routeExchange';

export interface SimulatedTenantsOptions {
  /** How many customer tenants. */
  readonly customers: number;
  /** Options of every tenant (clock, latency, legacy limits); `seed` is offset per customer. */
  readonly tenant?: Omit<
    SimulatedTenantOptions,
    'tenantId' | 'clientId' | 'clientSecret' | 'port' | 'appHome'
  >;
  /** Incidents generated in each customer tenant, updated over the last 72 hours. */
  readonly incidents?: number;
  readonly port?: number;
}

/**
 * An MSSP's world on one HTTPS server of 127.0.0.1: its home tenant (the multi-tenant app registration, the
 * Key Vault with the app's secret, the Function's managed identity) and several customer tenants, each with its
 * own incidents, in which the app is admin-consented (one client ID and one secret serve all, as for a real
 * multi-tenant app). Like the real services, the server tells the tenants apart by what a request carries:
 * Entra by the tenant in its path, the incidents APIs by the bearer token (a token names and is known to the one
 * tenant that issued it; an unknown token goes to the home tenant, which refuses it). Key Vault is the home's.
 */
export class SimulatedTenants {
  private constructor(
    readonly home: SimulatedTenant,
    readonly customers: readonly SimulatedTenant[],
  ) {}

  static async start(options: SimulatedTenantsOptions): Promise<SimulatedTenants> {
    const home = await SimulatedTenant.start({
      ...options.tenant,
      ...(options.port !== undefined ? { port: options.port } : {}),
    });
    const customers = Array.from({ length: options.customers }, (_, i) => {
      const customer = SimulatedTenant.inMemory({
        ...options.tenant,
        seed: (options.tenant?.seed ?? 1) + 1 + i,
        clientId: home.clientId,
        clientSecret: home.clientSecret,
        appHome: home,
        origin: home.origin,
        ...(options.incidents ? { incidents: options.incidents } : {}),
      });
      customer.ca = home.ca;
      return customer;
    });
    const world = new SimulatedTenants(home, customers);
    home.router = (request) => world.route(request);
    return world;
  }

  /**
   * The Function's settings for this MSSP: DEFENDER_TENANTS with a container per customer (`<prefix><index>`,
   * named `customer-<index>`), the home tenant's app, its credential in `credential` mode (DEFENDER_CREDENTIAL:
   * the vault's secret or certificate, or the managed identity as the app's federated credential, see
   * {@link SimulatedTenant.credentialSettings}), and the given storage and queue.
   */
  settings(
    storage: {
      readonly connectionString: string;
      readonly containerPrefix: string;
      readonly queue: string;
    },
    credential = 'secret',
  ): Record<string, string> {
    return {
      DEFENDER_TENANTS: JSON.stringify(
        this.customers.map((t, i) => ({
          tenantId: t.tenantId,
          container: `${storage.containerPrefix}${i}`,
          name: `customer-${i}`,
        })),
      ),
      DEFENDER_CLIENT_ID: this.home.clientId,
      DEFENDER_API_URL: this.origin,
      DEFENDER_AUTHORITY_HOST: this.origin,
      ...this.home.credentialSettings(credential),
      EXPORT_STORAGE_CONNECTION_STRING: storage.connectionString,
      EXPORT_QUEUE: storage.queue,
    };
  }

  /** The customer tenant with this ID. */
  tenant(tenantId: string): SimulatedTenant {
    const found = this.customers.find((t) => t.tenantId.toLowerCase() === tenantId.toLowerCase());
    if (!found) throw new Error(`no simulated tenant ${tenantId}`);
    return found;
  }

  get origin(): string {
    return this.home.origin;
  }

  get ca(): string {
    return this.home.ca;
  }

  close(): Promise<void> {
    return this.home.close();
  }

  private route(request: RouteRequest): SimulatedTenant {
    const path = request.url.pathname;
    const entraTenant =
      /^\/([^/]+)\/(?:v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(path)?.[1];
    if (entraTenant !== undefined) {
      return this.customers.find((t) => t.tenantId.toLowerCase() === entraTenant.toLowerCase()) ?? this.home;
    }
    const authorization = request.headers.authorization;
    const token =
      typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : '';
    if (token && !path.startsWith('/secrets/')) {
      return this.customers.find((t) => t.holdsToken(token)) ?? this.home;
    }
    return this.home;
  }
}
