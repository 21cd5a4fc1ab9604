import { SimulatedTenants } from '../sandbox/simulatedTenants';

/** What the fan-out benchmark asks of its simulated MSSP. */
export interface BenchTenantsRequest {
  readonly customers: number;
  readonly incidentsPerTenant: number;
  readonly latencyInMs: number;
}

/** What it answers once every tenant's incidents exist. */
export interface BenchTenantsInfo {
  readonly origin: string;
  readonly ca: string;
  readonly tenantIds: readonly string[];
  readonly clientId: string;
  readonly clientSecret: string;
}

/**
 * The fan-out benchmark's simulated tenants (one server, a home tenant and the customers), in a process of
 * their own so that their memory is not counted against the exporter. Started by exportBench.ts over IPC.
 */
async function main(): Promise<void> {
  const request = await new Promise<BenchTenantsRequest>((resolve) =>
    process.once('message', (m) => resolve(m as BenchTenantsRequest)),
  );
  const sim = await SimulatedTenants.start({
    customers: request.customers,
    incidents: request.incidentsPerTenant,
    tenant: { seed: 42, latencyInMs: request.latencyInMs, tokenLifetimeSeconds: 3600 },
  });
  const info: BenchTenantsInfo = {
    origin: sim.origin,
    ca: sim.ca,
    tenantIds: sim.customers.map((t) => t.tenantId),
    clientId: sim.home.clientId,
    clientSecret: sim.home.clientSecret,
  };
  process.send?.(info);
  process.on('disconnect', () => {
    void sim.close().finally(() => process.exit(0));
  });
}

void main();
