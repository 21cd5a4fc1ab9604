import { SimulatedTenant, type GraphLimit } from '../sandbox/simulatedTenant';

/** What the benchmark asks of its simulated tenant. */
export interface BenchTenantRequest {
  readonly incidents: number;
  readonly latencyInMs: number;
  readonly legacyLimits: { perMinute: number; perHour: number; minuteInMs: number; hourInMs: number };
  /** A Graph rate limit the tenant enforces with 429 + Retry-After (the backfill measurement). */
  readonly graphLimit?: GraphLimit;
  /** The incidents' last updates fall in [from, to] (epoch ms). */
  readonly from: number;
  readonly to: number;
}

/** What it answers once the incidents exist. */
export interface BenchTenantInfo {
  readonly origin: string;
  readonly ca: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
}

/**
 * The benchmark's simulated tenant, in a process of its own so that its memory (every incident of the
 * backlog) is not counted against the exporter. Started by exportBench.ts over IPC.
 */
async function main(): Promise<void> {
  const request = await new Promise<BenchTenantRequest>((resolve) =>
    process.once('message', (m) => resolve(m as BenchTenantRequest)),
  );
  const tenant = await SimulatedTenant.start({
    seed: 42,
    latencyInMs: request.latencyInMs,
    legacyLimits: request.legacyLimits,
    ...(request.graphLimit ? { graphLimit: request.graphLimit } : {}),
    tokenLifetimeSeconds: 3600,
  });
  tenant.store.generate(request.incidents, {
    from: new Date(request.from),
    to: new Date(request.to),
  });
  const info: BenchTenantInfo = {
    origin: tenant.origin,
    ca: tenant.ca,
    tenantId: tenant.tenantId,
    clientId: tenant.clientId,
    clientSecret: tenant.clientSecret,
  };
  process.send?.(info);
  process.on('disconnect', () => {
    void tenant.close().finally(() => process.exit(0));
  });
}

void main();
