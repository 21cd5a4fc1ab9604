import { randomBytes } from 'node:crypto';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import {
  createExporter,
  type CompositionOptions,
  type Exporter,
} from '../../src/composition/compositionRoot';
import { parseConfig, type CredentialMode, type ExportConfig } from '../../src/config';
import { CHECKPOINT_BLOB, EXPORT_PREFIX, readBlobMetadata } from '../../src/export/blobLayout';
import type { RunSummary } from '../../src/export/exportRun';
import { BlobCheckpointStore } from '../../src/sink/blobExportStore';
import type { CheckpointStore, ExportBlobWriter, ExportSink } from '../../src/export/ports';
import { readExportBlob } from '../../src/operations/exportReader';
import type { Logger } from '../../src/logger';
import { parseTimestamp } from '../../src/export/timestamp';
import {
  SANDBOX_CERTIFICATE,
  SimulatedTenant,
  type SimulatedTenantOptions,
} from '../../src/sandbox/simulatedTenant';

/** The legacy API's 50/min and 1,500/h, with time running 100 times faster, on both sides. */
export const SCALED_LEGACY_LIMITS = { perMinute: 50, perHour: 1500, minuteInMs: 600, hourInMs: 36_000 };

/** Every line a logger received, with its level. */
export class LogRecorder implements Logger {
  readonly lines: { level: string; text: string }[] = [];
  debug = (m: string, ...a: unknown[]) => this.push('debug', m, a);
  info = (m: string, ...a: unknown[]) => this.push('info', m, a);
  warn = (m: string, ...a: unknown[]) => this.push('warn', m, a);
  error = (m: string, ...a: unknown[]) => this.push('error', m, a);
  private push(level: string, message: string, args: unknown[]): void {
    this.lines.push({
      level,
      text: [message, ...args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)))].join(' '),
    });
  }
  get text(): string {
    return this.lines.map((l) => `${l.level} ${l.text}`).join('\n');
  }
  /** The parsed `export summary` lines. */
  get summaries(): RunSummary[] {
    return this.lines
      .filter((l) => l.text.startsWith('export summary '))
      .map((l) => JSON.parse(l.text.slice(15)) as RunSummary);
  }
}

/** A version of an incident as found in the committed exports. */
export interface ExportedVersion {
  id: string;
  lastUpdate: string;
  blob: string;
  raw: Record<string, unknown>;
}

/** The certificate of `certificate` mode in a world's vault. */
export const WORLD_CERTIFICATE = SANDBOX_CERTIFICATE;

export interface WorldOptions {
  api?: 'graph' | 'legacy';
  /** DEFENDER_CREDENTIAL; the settings of each mode are filled in (default `secret`, from the vault). */
  credential?: CredentialMode;
  /** Settings over the defaults (tenant, vault, storage and a fresh container are filled in). */
  settings?: Record<string, string>;
  composition?: Partial<CompositionOptions>;
}

/** The Azurite connection string the jest global setup started. */
export function azuriteConnectionString(): string {
  const cs = process.env.AZURITE_CONNECTION_STRING;
  if (!cs)
    throw new Error(
      'AZURITE_CONNECTION_STRING is not set: run the tests through jest (test/support/globalSetup.ts).',
    );
  return cs;
}

/** A fresh container on the shared Azurite. */
export function freshContainer(
  prefix = 'test',
  connectionString = azuriteConnectionString(),
): ContainerClient {
  const name = `${prefix}-${randomBytes(6).toString('hex')}`;
  return BlobServiceClient.fromConnectionString(connectionString).getContainerClient(name);
}

/**
 * The clock of a world: the host's, plus the time a test moved it on. The simulated tenant (its `Date` header
 * and the update times it stamps) and the exporter both read it, so a test passes the settle delay with
 * {@link World.advance} instead of sleeping.
 */
export class WorldClock {
  private offsetInMs = 0;
  readonly now = (): number => Date.now() + this.offsetInMs;
  advance(ms: number): void {
    this.offsetInMs += ms;
  }
}

/**
 * A test world: the simulated tenant, a fresh container and the real exporter wired by the composition
 * root, exactly as the Function and the CLI wire it, with short retry waits.
 */
export class World {
  readonly logs = new LogRecorder();
  config!: ExportConfig;
  /** The settings the config was parsed from, as a local.settings.json would hold them. */
  settings!: Record<string, string>;
  exporter!: Exporter;
  readonly container: ContainerClient;
  readonly sleeps: number[] = [];

  constructor(
    readonly tenant: SimulatedTenant,
    private readonly connectionString: string = azuriteConnectionString(),
    /** The clock the tenant reads too (a tenant given to {@link start} keeps its own). */
    readonly clock: WorldClock = new WorldClock(),
  ) {
    this.container = freshContainer('test', connectionString);
  }

  /** Moves the world's time on (the tenant's and the exporter's), e.g. past EXPORT_SETTLE_DELAY. */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** A world on a new simulated tenant (or the given one) and the shared Azurite (or the given one). */
  static async start(
    options: WorldOptions & {
      tenant?: SimulatedTenant;
      connectionString?: string;
      /** Options of the new tenant over the defaults (e.g. a Graph rate limit), on the world's clock. */
      tenantOptions?: Partial<SimulatedTenantOptions>;
    } = {},
  ): Promise<World> {
    const clock = new WorldClock();
    const tenant =
      options.tenant ??
      (await SimulatedTenant.start({
        seed: 7,
        legacyLimits: SCALED_LEGACY_LIMITS,
        ...options.tenantOptions,
        clock: clock.now,
      }));
    if (options.credential === 'certificate' && !tenant.secrets.has(WORLD_CERTIFICATE)) {
      await tenant.createCertificate(WORLD_CERTIFICATE);
    }
    return new World(tenant, options.connectionString, clock).configure(options);
  }

  /** (Re)builds config and exporter on the same container. */
  configure(options: WorldOptions = {}): this {
    this.settings = {
      DEFENDER_TENANT_ID: this.tenant.tenantId,
      DEFENDER_CLIENT_ID: this.tenant.clientId,
      DEFENDER_API: options.api ?? 'graph',
      DEFENDER_API_URL: this.tenant.origin,
      DEFENDER_AUTHORITY_HOST: this.tenant.origin,
      ...this.tenant.credentialSettings(options.credential ?? 'secret'),
      EXPORT_STORAGE_CONNECTION_STRING: this.connectionString,
      EXPORT_CONTAINER: this.container.containerName,
      EXPORT_SETTLE_DELAY: 'PT1S',
      ...options.settings,
    };
    this.config = parseConfig(this.settings);
    this.exporter = createExporter(this.config, this.composition(options));
    return this;
  }

  /** The composition options of this world's exporter (the simulated tenant's CA and identity, short waits). */
  composition(options: WorldOptions = {}): CompositionOptions {
    return {
      logger: this.logs,
      clock: this.clock,
      ca: this.tenant.ca,
      azureCredential: this.tenant.managedIdentityCredential({
        retryOptions: { maxRetries: 1, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
      }),
      identityEndpoint: this.tenant.identityEndpoint,
      http: {
        // Waits (retry back-off, Retry-After, the legacy API's pacing) pass on the world's clock, not the host's.
        sleep: (ms) => {
          this.sleeps.push(ms);
          this.clock.advance(ms);
          return new Promise((resolve) => setImmediate(resolve));
        },
        timeoutInMs: 2_000,
      },
      azureRetry: { maxTries: 2, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
      legacyLimits: [
        { limit: SCALED_LEGACY_LIMITS.perMinute, windowInMs: SCALED_LEGACY_LIMITS.minuteInMs },
        { limit: SCALED_LEGACY_LIMITS.perHour, windowInMs: SCALED_LEGACY_LIMITS.hourInMs },
      ],
      ...options.composition,
    };
  }

  run(runId?: string): Promise<RunSummary> {
    return this.exporter.run(runId ? { runId } : {});
  }

  /** Every incident version in the committed export blobs. */
  /** The versions in the blobs a backfill wrote (run ID `backfill-…`), as `<id>@<ticks>`, sorted. */
  async backfilledVersions(): Promise<string[]> {
    const names = new Set<string>();
    for await (const blob of this.container.listBlobsFlat({ prefix: EXPORT_PREFIX, includeMetadata: true })) {
      if (blob.metadata?.runid?.startsWith('backfill-')) names.add(blob.name);
    }
    return (await this.exported())
      .filter((v) => names.has(v.blob))
      .map((v) => `${v.id}@${parseTimestamp(v.lastUpdate)!.ticks}`)
      .sort();
  }

  async exported(): Promise<ExportedVersion[]> {
    const out: ExportedVersion[] = [];
    const idField = this.config.api === 'graph' ? 'id' : 'incidentId';
    const tsField = this.config.api === 'graph' ? 'lastUpdateDateTime' : 'lastUpdateTime';
    for await (const blob of this.container.listBlobsFlat({ prefix: EXPORT_PREFIX })) {
      for (const raw of (await readExportBlob(this.container, blob.name)) as Record<string, unknown>[]) {
        out.push({ id: String(raw[idField]), lastUpdate: String(raw[tsField]), blob: blob.name, raw });
      }
    }
    return out;
  }

  /** Export blobs that hold incidents (not the empty blobs that carry the position over a quiet midnight). */
  async dataBlobNames(): Promise<string[]> {
    const names: string[] = [];
    for await (const blob of this.container.listBlobsFlat({ prefix: EXPORT_PREFIX, includeMetadata: true })) {
      const metadata = readBlobMetadata(blob.metadata ?? {});
      if (typeof metadata !== 'string' && metadata.recordCount > 0) names.push(blob.name);
    }
    return names;
  }

  async blobNames(prefix = EXPORT_PREFIX): Promise<string[]> {
    const names: string[] = [];
    for await (const blob of this.container.listBlobsFlat({ prefix })) names.push(blob.name);
    return names;
  }

  async checkpoint(): Promise<{ etag: string; document: Record<string, unknown> } | undefined> {
    const client = this.container.getBlockBlobClient(CHECKPOINT_BLOB);
    if (!(await client.exists())) return undefined;
    const body = await client.downloadToBuffer();
    const props = await client.getProperties();
    return { etag: props.etag ?? '', document: JSON.parse(body.toString('utf8')) as Record<string, unknown> };
  }

  async close(): Promise<void> {
    await this.container.deleteIfExists();
    await this.tenant.close();
  }
}

/** (id, last update) pairs that appear more than once. */
export function duplicates(versions: readonly Pick<ExportedVersion, 'id' | 'lastUpdate'>[]): string[] {
  const seen = new Map<string, number>();
  for (const v of versions) {
    const key = `${v.id}@${v.lastUpdate}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([k]) => k);
}

/**
 * A `wrapSink` for the composition root that wraps each blob writer (fault injection, observation) and passes
 * everything else through.
 */
export function wrapWriters(
  wrap: (writer: ExportBlobWriter, name: string) => ExportBlobWriter,
): (sink: ExportSink) => ExportSink {
  return (sink) => ({
    committedMetadata: (name) => sink.committedMetadata(name),
    listCommitted: (prefix) => sink.listCommitted(prefix),
    readRecords: (name) => sink.readRecords(name),
    writeJson: (name, value) => sink.writeJson(name, value),
    openBlob: (name, content) => wrap(sink.openBlob(name, content), name),
  });
}

/**
 * A checkpoint store on `container` whose first write after a blob commit throws, as a process killed between
 * the commit and the checkpoint write would leave things.
 */
export function crashingAfterCommit(container: ContainerClient): CheckpointStore {
  const real = new BlobCheckpointStore(container);
  let crashed = false;
  return {
    read: () => real.read(),
    write: async (document, etag) => {
      if (document.lastBlob && !crashed) {
        crashed = true;
        throw new Error('process killed');
      }
      return real.write(document, etag);
    },
  };
}
