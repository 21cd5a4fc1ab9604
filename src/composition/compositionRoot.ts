import { randomUUID } from 'node:crypto';
import * as https from 'node:https';
import {
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type TokenCredential,
  type TokenCredentialOptions,
} from '@azure/identity';
import type { HttpClient } from '@azure/core-rest-pipeline';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { BlobServiceClient, type ContainerClient, type StoragePipelineOptions } from '@azure/storage-blob';
import { ApiTokenProvider } from '../source/apiTokenProvider';
import { BlobCheckpointStore, BlobExportSink, describeStorageError } from '../sink/blobExportStore';
import { KeyVaultSecretProvider, StaticSecretProvider, type SecretProvider } from '../source/secretProvider';
import { KeyVaultCertificateProvider } from '../source/certificateProvider';
import {
  CertificateApiCredential,
  FederatedApiCredential,
  SecretApiCredential,
  type ApiCredential,
} from '../source/apiCredential';
import { LEGACY_API_RETIREMENT_DATE, tenantConfigs, type ExportConfig, type StorageConfig } from '../config';
import { registerSecret } from '../errors';
import { runExport } from '../export/exportRun';
import {
  systemClock,
  type CheckpointStore,
  type Clock,
  type ExportSink,
  type IncidentSource,
} from '../export/ports';
import { createGraphSlicer, GraphIncidentSource } from '../source/graphIncidentSource';
import { createLegacySlicer, LegacyIncidentSource } from '../source/legacyIncidentSource';
import { ApiClient, type ApiClientOptions, type ApiTransport } from '../source/apiClient';
import { explainPermissionRefusal } from '../source/apiPermissions';
import { describeProxy, HttpProxyAgent, HttpsProxyAgent, proxyFor, proxyPassword } from '../source/proxy';
import { AdaptivePacer, type AdaptivePacerOptions } from '../source/adaptivePacer';
import type { Logger } from '../logger';
import type { ExportContainers, Exporter, ExporterRunOptions, TenantExporters } from '../operations/exporter';
import {
  containerExportReader,
  VERIFY_GRAPH_SELECT,
  type ExportBlobReader,
} from '../operations/verifyExports';

export type { ExportContainers, Exporter, ExporterRunOptions, TenantExporters };

/** How often, and how soon, the Azure SDK clients try a failed request again. */
export interface AzureRetryOptions {
  /** Tries in all, the first included. */
  readonly maxTries: number;
  readonly retryDelayInMs: number;
  readonly maxRetryDelayInMs: number;
}

/** The same retries in the shape of the core pipeline (Key Vault, Entra credentials). */
function pipelineRetry(o: AzureRetryOptions | undefined): Pick<SecretClientOptions, 'retryOptions'> {
  return o
    ? {
        retryOptions: {
          maxRetries: Math.max(0, o.maxTries - 1),
          retryDelayInMs: o.retryDelayInMs,
          maxRetryDelayInMs: o.maxRetryDelayInMs,
        },
      }
    : {};
}

/** What the composition root may be given instead of the production defaults (tests, sandbox, CLI). */
export interface CompositionOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** A CA (PEM) to trust for every HTTPS call: the local sandbox's self-signed certificate. */
  readonly ca?: string;
  /** Credential for Key Vault and Storage. Default: the managed identity (AZURE_CLIENT_ID), else DefaultAzureCredential. */
  readonly azureCredential?: TokenCredential;
  /**
   * Sends the managed identity's token requests instead of the SDK's own HTTP client: the sandbox's simulated
   * identity endpoint (SimulatedTenant.identityEndpoint). The managed identity credentials stay the SDK's real
   * ones; nothing in `process.env` changes.
   */
  readonly identityEndpoint?: HttpClient;
  /** Overrides of the HTTP client's retry and timeout behaviour. */
  readonly http?: Partial<
    Pick<
      ApiClientOptions,
      | 'timeoutInMs'
      | 'maxAttempts'
      | 'baseDelayInMs'
      | 'maxDelayInMs'
      | 'sleep'
      | 'maxRetryAfterInMs'
      | 'random'
    >
  >;
  /**
   * Retries of the Azure SDK clients (Storage, Key Vault, the Entra credential) instead of the SDKs' defaults
   * (up to 4 tries, exponential from 0.8 s for Key Vault and Entra, 4 s for Storage): tests shorten the waits.
   */
  readonly azureRetry?: AzureRetryOptions;
  /** Legacy API limits, per app; defaults are the documented 50/min and 1,500/h. */
  readonly legacyLimits?: readonly { limit: number; windowInMs: number }[];
  /** The shared pacer's concurrency and rate window (src/source/adaptivePacer.ts); the bench scales time. */
  readonly pacing?: Pick<AdaptivePacerOptions, 'initialConcurrency' | 'maxConcurrency' | 'rateWindowInMs'>;
  readonly maxBlobBytes?: number;
  /** Replaces the checkpoint store (fault injection in tests). */
  readonly checkpointStore?: CheckpointStore;
  /** Wraps each run's checkpoint store, a backfill slice's too (fault injection in tests). */
  readonly wrapCheckpoints?: (store: CheckpointStore) => CheckpointStore;
  /** Wraps the export sink (fault injection in tests). */
  readonly wrapSink?: (sink: ExportSink) => ExportSink;
  /**
   * The client secret's source, shared: with DEFENDER_TENANTS one secret of the multi-tenant app serves every
   * tenant, read and cached once ({@link createTenantExporters}). Default: one per exporter.
   */
  readonly secretProvider?: SecretProvider;
  /** Page size (`$top`) below the API's maximum: tests page small histories hard. */
  readonly pageSize?: number;
  /** Replaces https for the incidents API (in-memory tests: the simulated tenant's routes). */
  readonly apiTransport?: ApiTransport;
  /** Replaces the Entra client-credentials tokens (with Key Vault) for the incidents API. */
  readonly getApiToken?: ApiClientOptions['getToken'];
  /**
   * Replaces the Blob export sink (in-memory tests). With {@link checkpointStore} set too, the exporter never
   * touches Storage, not even to check that the containers exist.
   */
  readonly sink?: ExportSink;
}

/** Builds the real SDK clients and credentials from the validated config. The one composition root. */
export function createExporter(config: ExportConfig, options: CompositionOptions): Exporter {
  const clock = options.clock ?? systemClock;
  const azureCredential = options.azureCredential ?? createAzureCredential(config, options);
  const { container, stateContainer } = createContainerClients(config, { ...options, azureCredential });
  const incidents = createIncidentSourceFactory(config, options, azureCredential);

  return {
    config,
    container,
    stateContainer,
    async run(runOptions = {}) {
      const logger = runOptions.logger ?? options.logger;
      if (config.api === 'legacy') {
        logger.warn(
          `DEFENDER_API=legacy uses api.security.microsoft.com, which Microsoft retires on ${LEGACY_API_RETIREMENT_DATE}. ` +
            'Switch to DEFENDER_API=graph (permission SecurityIncident.Read.All on Microsoft Graph); the checkpoint carries over.',
        );
      }
      const source = incidents(logger);
      if (!options.sink || !options.checkpointStore) {
        // Bounded like the run's own Storage calls: a hung check must not outlive the time budget.
        const budget = AbortSignal.timeout(config.maxRunDurationInMs);
        const abortSignal = runOptions.abortSignal
          ? AbortSignal.any([budget, runOptions.abortSignal])
          : budget;
        await ensureContainer(container, abortSignal);
        if (stateContainer !== container) await ensureContainer(stateContainer, abortSignal);
      }
      const sink = options.sink ?? new BlobExportSink(container);
      const wrapCheckpoints = options.wrapCheckpoints ?? ((store: CheckpointStore) => store);
      return runExport({
        source,
        checkpoints: wrapCheckpoints(
          options.checkpointStore ?? new BlobCheckpointStore(stateContainer, runOptions.checkpointBlob),
        ),
        sink: options.wrapSink ? options.wrapSink(sink) : sink,
        clock,
        logger,
        tenantId: config.tenantId,
        ...(config.tenantName !== undefined ? { tenantName: config.tenantName } : {}),
        ...(runOptions.delivery ? { delivery: runOptions.delivery } : {}),
        containerName: container.containerName,
        format: config.format,
        compression: config.compression,
        initialLookbackInMs: config.initialLookbackInMs,
        settleDelayInMs: config.settleDelayInMs,
        rereadWindowInMs: config.rereadWindowInMs,
        maxRunDurationInMs: config.maxRunDurationInMs,
        runId: runOptions.runId ?? randomUUID(),
        ...(options.maxBlobBytes ? { maxBlobBytes: options.maxBlobBytes } : {}),
        ...(runOptions.abortSignal ? { abortSignal: runOptions.abortSignal } : {}),
        ...(runOptions.initialWatermark ? { initialWatermark: runOptions.initialWatermark } : {}),
        ...(runOptions.windowEnd ? { windowEnd: runOptions.windowEnd } : {}),
        ...(runOptions.stopSignal ? { stopSignal: runOptions.stopSignal } : {}),
      });
    },
  };
}

/** What `defender-export verify` reads: the incidents API, listed lightly, and the export blobs, read only. */
export interface VerifyPorts {
  readonly source: IncidentSource;
  readonly exports: ExportBlobReader;
}

/**
 * The ports of `verify`: the same source as a run's (Entra tokens, the HTTP client's retries and time budget,
 * the legacy API's pacing), asked for the fields verify compares only (Graph: `$select`, no `$expand`; the
 * legacy API has no `$select` and lists as the export does), and the export container, only ever read: no
 * container check or creation as a run does, so the Storage Blob Data Reader role is enough.
 */
export function createVerifyPorts(config: ExportConfig, options: CompositionOptions): VerifyPorts {
  const azureCredential = options.azureCredential ?? createAzureCredential(config, options);
  const { container } = createContainerClients(config, { ...options, azureCredential });
  const source = createIncidentSourceFactory(config, options, azureCredential, {
    select: VERIFY_GRAPH_SELECT,
  })(options.logger);
  return { source, exports: containerExportReader(container) };
}

/**
 * The incidents API of one configuration: the secret (Key Vault or local), Entra tokens, the HTTP client with
 * its retries, timeouts and the run's time budget, the legacy API's pacing, and the Graph or legacy source.
 * The secret cache and the pacer live as long as the factory; each call gives one run's source.
 * `listing.select`: Graph lists only these fields and without alerts (`verify`); the legacy API ignores it.
 */
export function createIncidentSourceFactory(
  config: ExportConfig,
  options: CompositionOptions,
  azureCredential: TokenCredential = options.azureCredential ?? createAzureCredential(config, options),
  listing: { readonly select?: readonly string[] } = {},
): (logger: Logger) => IncidentSource {
  const clock = options.clock ?? systemClock;
  const credential = createApiCredential(config, config.tenantId, config.clientId, {
    ...options,
    azureCredential,
  });
  const apiUrl = new URL(config.apiUrl);
  const apiOrigin = apiUrl.origin;
  // The SDK clients (Entra, Key Vault, Storage) honour HTTPS_PROXY and NO_PROXY themselves; the incidents
  // API client takes the same settings from the config.
  const apiProxy = proxyFor(apiUrl, config.proxy);
  const authorityProxy = proxyFor(new URL(config.authorityHost), config.proxy);
  for (const proxy of [apiProxy, authorityProxy]) {
    if (proxy) registerSecret(proxyPassword(proxy), { longLived: true });
  }
  const tls = options.ca ? { ca: options.ca } : {};
  const tunnelTimeout = options.http?.timeoutInMs ? { tunnelTimeoutInMs: options.http.timeoutInMs } : {};
  // One pacer for every request of this factory's runs (all slices of a backfill, the alerts fallback).
  const pacer = new AdaptivePacer({
    ...(config.api === 'legacy'
      ? {
          fixedLimits: options.legacyLimits ?? [
            { limit: 50, windowInMs: 60_000 },
            { limit: 1500, windowInMs: 3_600_000 },
          ],
        }
      : {}),
    ...options.pacing,
    now: () => clock.now(),
    ...(options.http?.sleep ? { sleep: options.http.sleep } : {}),
  });
  const slicer = config.api === 'graph' ? createGraphSlicer() : createLegacySlicer();
  return (logger) => {
    const startedAt = clock.now();
    const tokens = options.getApiToken
      ? { getToken: options.getApiToken }
      : new ApiTokenProvider({
          tenantId: config.tenantId,
          clientId: config.clientId,
          authorityHost: config.authorityHost,
          scope: `${apiOrigin}/.default`,
          credential,
          logger,
          ...(options.ca ? { ca: options.ca } : {}),
          ...(authorityProxy
            ? { discoveryAgent: new HttpsProxyAgent(authorityProxy, { ...tls, ...tunnelTimeout }) }
            : {}),
        });
    if (apiProxy)
      logger.info(`The incidents API ${apiOrigin} is reached through the ${describeProxy(apiProxy)}.`);
    const client = new ApiClient({
      ...options.http,
      allowedOrigin: apiOrigin,
      getToken: (o) => tokens.getToken(o),
      explainRefusal: (token, status) =>
        explainPermissionRefusal({ api: config.api, clientId: config.clientId }, token, status),
      logger,
      ...(options.apiTransport ? { transport: options.apiTransport } : {}),
      agent:
        apiProxy && apiUrl.protocol === 'https:'
          ? new HttpsProxyAgent(apiProxy, { keepAlive: true, ...tls, ...tunnelTimeout })
          : new https.Agent({ keepAlive: true, ...tls }),
      ...(apiProxy && apiUrl.protocol === 'http:'
        ? { httpAgent: new HttpProxyAgent(apiProxy, { keepAlive: true, ...tunnelTimeout }) }
        : {}),
      remainingBudgetInMs: () => startedAt + config.maxRunDurationInMs - clock.now(),
      now: () => clock.now(),
      pacer,
    });
    const page = options.pageSize ? { pageSize: options.pageSize } : {};
    return config.api === 'graph'
      ? new GraphIncidentSource({
          baseUrl: config.apiUrl,
          client,
          includeAlerts: listing.select ? false : config.includeAlerts,
          logger,
          slicer,
          ...page,
          ...(listing.select ? { select: listing.select } : {}),
        })
      : new LegacyIncidentSource({ baseUrl: config.apiUrl, client, logger, slicer, ...page });
  };
}

/**
 * The exporters of DEFENDER_TENANTS, by tenant ID, each on its own container and tenant, sharing the Azure
 * credential and the client secret (one multi-tenant app); each is built when first asked for. Without
 * DEFENDER_TENANTS: the one exporter of the config, under its tenant ID.
 */
export function createTenantExporters(config: ExportConfig, options: CompositionOptions): TenantExporters {
  const azureCredential = options.azureCredential ?? createAzureCredential(config);
  const secretProvider =
    config.credential !== 'secret'
      ? undefined
      : (options.secretProvider ??
        createClientSecretProvider(config, azureCredential, options, options.clock ?? systemClock));
  const configs = new Map(tenantConfigs(config).map((c) => [c.tenantId, c]));
  const built = new Map<string, Exporter>();
  return {
    keys: () => configs.keys(),
    get(tenantId) {
      const tenant = configs.get(tenantId);
      if (!tenant) return undefined;
      let exporter = built.get(tenantId);
      if (!exporter) {
        exporter = createExporter(tenant, {
          ...options,
          azureCredential,
          ...(secretProvider ? { secretProvider } : {}),
        });
        built.set(tenantId, exporter);
      }
      return exporter;
    },
  };
}

/**
 * The credential for Key Vault and Storage: the user-assigned managed identity that AZURE_CLIENT_ID names, else
 * DefaultAzureCredential (the Function's system identity in Azure; `az login` on an operator's machine).
 */
function createAzureCredential(
  config: Pick<StorageConfig, 'managedIdentityClientId'>,
  options: Pick<CompositionOptions, 'identityEndpoint' | 'ca' | 'azureRetry'> = {},
): TokenCredential {
  return config.managedIdentityClientId
    ? createManagedIdentityCredential(config.managedIdentityClientId, options)
    : new DefaultAzureCredential();
}

/** The SDK's credential of a user-assigned managed identity, sent to {@link CompositionOptions.identityEndpoint} if given. */
function createManagedIdentityCredential(
  clientId: string,
  options: Pick<CompositionOptions, 'identityEndpoint' | 'ca' | 'azureRetry'>,
): TokenCredential {
  return new ManagedIdentityCredential({
    clientId,
    ...(options.identityEndpoint ? { httpClient: options.identityEndpoint } : {}),
    ...(options.ca ? { tlsOptions: { ca: options.ca } } : {}),
    ...pipelineRetry(options.azureRetry),
  });
}

/**
 * How the app registration `clientId` authenticates in `tenantId`, in the configured DEFENDER_CREDENTIAL mode:
 * - `secret`: the client secret from Key Vault (KEY_VAULT_URL, KEY_VAULT_SECRET_NAME) read with
 *   `azureCredential`, or DEFENDER_CLIENT_SECRET;
 * - `federated`: the managed identity AZURE_CLIENT_ID's token for the federation audience as the client
 *   assertion; no Key Vault, no secret;
 * - `certificate`: the Key Vault certificate KEY_VAULT_CERTIFICATE_NAME, read through its secret.
 * One credential per (tenant, app): the Key Vault cache lives as long as it does.
 */
export function createApiCredential(
  config: ExportConfig,
  tenantId: string,
  clientId: string,
  options: Omit<CompositionOptions, 'logger'>,
): ApiCredential {
  const base = {
    tenantId,
    clientId,
    authorityHost: config.authorityHost,
    credentialOptions: {
      ...(options.ca ? { tlsOptions: { ca: options.ca } } : {}),
      ...pipelineRetry(options.azureRetry),
    } satisfies TokenCredentialOptions,
  };
  if (config.credential === 'federated') {
    const identityClientId = config.managedIdentityClientId ?? '';
    return new FederatedApiCredential({
      ...base,
      identity: createManagedIdentityCredential(identityClientId, options),
      identityClientId,
      audience: config.federationAudience,
    });
  }
  const clock = options.clock ?? systemClock;
  const azureCredential = options.azureCredential ?? createAzureCredential(config, options);
  if (config.credential === 'certificate') {
    const name = config.keyVaultCertificateName ?? '';
    return new CertificateApiCredential(
      new KeyVaultCertificateProvider({
        secrets: createKeyVaultSecretProvider(config, name, 'certificate', azureCredential, options, clock),
        certificateName: name,
        clientId,
        now: () => clock.now(),
      }),
      base,
    );
  }
  const secrets =
    options.secretProvider ?? createClientSecretProvider(config, azureCredential, options, clock);
  return new SecretApiCredential(secrets, base);
}

/**
 * The client secret of `secret` mode, from Key Vault or DEFENDER_CLIENT_SECRET. The exporters of DEFENDER_TENANTS
 * share one, so one multi-tenant app's secret is read and cached once for every tenant.
 */
function createClientSecretProvider(
  config: ExportConfig,
  azureCredential: TokenCredential,
  options: Pick<CompositionOptions, 'ca' | 'azureRetry'>,
  clock: Clock,
): SecretProvider {
  return config.keyVaultUrl
    ? createKeyVaultSecretProvider(
        config,
        config.keyVaultSecretName,
        'secret',
        azureCredential,
        options,
        clock,
      )
    : new StaticSecretProvider(config.clientSecret ?? '');
}

/**
 * The export container and the checkpoint's container, from the connection string when there is one, else the
 * account URL with the given credential (default {@link createAzureCredential}). Shared by the exporter and the
 * operators' CLI.
 */
export function createContainerClients(
  config: StorageConfig,
  options: Pick<CompositionOptions, 'azureCredential' | 'azureRetry'> = {},
): ExportContainers {
  const pipeline: StoragePipelineOptions = options.azureRetry
    ? { retryOptions: { ...options.azureRetry } }
    : {};
  const service = config.storageConnectionString
    ? BlobServiceClient.fromConnectionString(config.storageConnectionString, pipeline)
    : new BlobServiceClient(
        config.storageAccountUrl ?? '',
        options.azureCredential ?? createAzureCredential(config, options),
        pipeline,
      );
  const container = service.getContainerClient(config.container);
  const stateContainer =
    config.stateContainer === config.container
      ? container
      : service.getContainerClient(config.stateContainer);
  return { container, stateContainer };
}

/** The export container alone (see {@link createContainerClients}). */
export function createContainerClient(
  config: StorageConfig,
  options: Pick<CompositionOptions, 'azureCredential' | 'azureRetry'> = {},
): ContainerClient {
  return createContainerClients(config, options).container;
}

/** A secret of KEY_VAULT_URL (the client secret, or a certificate's secret), read with `credential`. */
function createKeyVaultSecretProvider(
  config: ExportConfig,
  name: string,
  kind: 'secret' | 'certificate',
  credential: TokenCredential,
  options: Pick<CompositionOptions, 'ca' | 'azureRetry'>,
  clock: Clock,
): KeyVaultSecretProvider {
  const vaultUrl = config.keyVaultUrl ?? '';
  const vault = new URL(vaultUrl);
  const isLoopback = vault.hostname === '127.0.0.1' || vault.hostname === 'localhost';
  const client = new SecretClient(vaultUrl, credential, {
    // The challenge-resource check protects real vaults (*.vault.azure.net); only the local sandbox skips it.
    disableChallengeResourceVerification: isLoopback,
    ...(options.ca ? { tlsOptions: { ca: options.ca } } : {}),
    ...pipelineRetry(options.azureRetry),
  });
  return new KeyVaultSecretProvider({
    client,
    vaultUrl,
    secretName: name,
    kind,
    identityClientId: config.managedIdentityClientId,
    now: () => clock.now(),
  });
}

/**
 * Creates the container if it is missing. With least privilege (Blob Data Contributor on the container only)
 * creating is not allowed, but the deployment made it, so existence is checked first.
 */
async function ensureContainer(container: ContainerClient, abortSignal: AbortSignal): Promise<void> {
  try {
    if (await container.exists({ abortSignal })) return;
    await container.createIfNotExists({ abortSignal });
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, 'check or create the container');
  }
}
