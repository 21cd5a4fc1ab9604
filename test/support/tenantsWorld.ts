import { randomBytes } from 'node:crypto';
import type { InvocationContext } from '@azure/functions';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { createTenantExporters, type CompositionOptions } from '../../src/composition/compositionRoot';
import { parseConfig, type CredentialMode, type ExportConfig } from '../../src/config';
import { EXPORT_PREFIX } from '../../src/export/blobLayout';
import type { RunSummary } from '../../src/export/exportRun';
import { createExportTenantHandler } from '../../src/functions/exportTenantHandler';
import { fanOutCycle } from '../../src/sandbox/fanOutCycle';
import { readExportBlob } from '../../src/operations/exportReader';
import { LocalQueueHost, type DrainReport } from '../../src/sandbox/localQueueHost';
import { SimulatedTenants } from '../../src/sandbox/simulatedTenants';
import { azuriteConnectionString, LogRecorder, SCALED_LEGACY_LIMITS, WorldClock } from './world';

/** An incident version found in a container, with the tenant its record names. */
export interface FoundVersion {
  readonly id: string;
  readonly lastUpdate: string;
  readonly tenantId: string;
  readonly blob: string;
}

/**
 * A test world of DEFENDER_TENANTS: the simulated MSSP (home tenant, customers), a fresh container per customer
 * and a fresh queue on the shared Azurite, the Function's two handlers wired by the composition root, and a
 * local queue host in place of the Functions host.
 */
export class TenantsWorld {
  readonly logs = new LogRecorder();
  config!: ExportConfig;
  settings!: Record<string, string>;
  queueHost!: LocalQueueHost;
  readonly containers = new Map<string, ContainerClient>();
  private cycles = 0;

  private constructor(
    readonly sim: SimulatedTenants,
    readonly clock: WorldClock,
  ) {}

  static async start(
    options: {
      customers?: number;
      incidents?: number;
      settings?: Record<string, string>;
      /** DEFENDER_CREDENTIAL of the multi-tenant app (default secret). */
      credential?: CredentialMode;
    } = {},
  ): Promise<TenantsWorld> {
    const clock = new WorldClock();
    const sim = await SimulatedTenants.start({
      customers: options.customers ?? 3,
      incidents: options.incidents ?? 25,
      tenant: { seed: 7, clock: clock.now, legacyLimits: SCALED_LEGACY_LIMITS },
    });
    const world = new TenantsWorld(sim, clock);
    const service = BlobServiceClient.fromConnectionString(azuriteConnectionString());
    const suffix = randomBytes(4).toString('hex');
    world.settings = {
      ...sim.settings(
        {
          connectionString: azuriteConnectionString(),
          containerPrefix: `c${suffix}-`,
          queue: `tenants-${suffix}`,
        },
        options.credential,
      ),
      EXPORT_SETTLE_DELAY: 'PT1S',
      EXPORT_INITIAL_LOOKBACK: 'P4D',
      ...options.settings,
    };
    world.config = parseConfig(world.settings);
    for (const t of world.config.tenants ?? [])
      world.containers.set(t.tenantId, service.getContainerClient(t.container));
    world.queueHost = await LocalQueueHost.start(azuriteConnectionString(), world.config.queue);
    return world;
  }

  /** The composition of the handlers: the home tenant's CA and managed identity, short waits on the world clock. */
  composition(): Omit<CompositionOptions, 'logger'> {
    return {
      clock: this.clock,
      ca: this.sim.ca,
      identityEndpoint: this.sim.home.identityEndpoint,
      azureCredential: this.sim.home.managedIdentityCredential({
        retryOptions: { maxRetries: 1, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
      }),
      http: {
        sleep: (ms) => {
          this.clock.advance(ms);
          return new Promise((resolve) => setImmediate(resolve));
        },
        timeoutInMs: 2_000,
      },
      azureRetry: { maxTries: 2, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
    };
  }

  /** One cycle through the queue path: the timer's messages sent as the binding does, then drained. */
  cycle(handler = this.queueHandler()): Promise<DrainReport> {
    return fanOutCycle({
      config: this.config,
      queueHost: this.queueHost,
      handler,
      cycleId: `cycle-${++this.cycles}`,
      now: this.clock.now,
      log: (level, text) => this.logs.info(`[${level}] ${text}`),
    });
  }

  queueHandler(): (entry: unknown, context: InvocationContext) => Promise<RunSummary | undefined> {
    return createExportTenantHandler(() => this.config, createTenantExporters, this.composition());
  }

  drain(handler = this.queueHandler()): Promise<DrainReport> {
    return this.queueHost.drain(handler, { log: (level, text) => this.logs.info(`[${level}] ${text}`) });
  }

  /** Every incident version in a tenant's container, with the tenant its record names. */
  async versions(tenantId: string): Promise<FoundVersion[]> {
    const container = this.containers.get(tenantId);
    if (!container || !(await container.exists())) return [];
    const out: FoundVersion[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: EXPORT_PREFIX })) {
      for (const raw of (await readExportBlob(container, blob.name)) as Record<string, unknown>[])
        out.push({
          id: String(raw.id),
          lastUpdate: String(raw.lastUpdateDateTime),
          tenantId: String(raw.tenantId),
          blob: blob.name,
        });
    }
    return out;
  }

  /**
   * Every record found in a container other than its tenant's, as `<record's tenant> in <container>`: the
   * records name the tenant that returned them (Graph's `tenantId`), so any here is a mix-up.
   */
  async mixUps(): Promise<string[]> {
    const found: string[] = [];
    for (const tenantId of this.containers.keys())
      for (const v of await this.versions(tenantId))
        if (v.tenantId !== tenantId)
          found.push(`${v.tenantId} in ${this.containers.get(tenantId)!.containerName}`);
    return [...new Set(found)];
  }

  /** The run manifests in a tenant's container, oldest first. */
  async manifests(tenantId: string): Promise<RunSummary[]> {
    const container = this.containers.get(tenantId);
    if (!container || !(await container.exists())) return [];
    const out: RunSummary[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: 'runs/' }))
      out.push(
        JSON.parse(
          (await container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'),
        ) as RunSummary,
      );
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  async close(): Promise<void> {
    for (const container of this.containers.values()) await container.deleteIfExists();
    await this.queueHost.queue.deleteIfExists();
    await this.queueHost.poisonQueue.deleteIfExists();
    await this.sim.close();
  }
}
