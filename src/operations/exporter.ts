import type { ContainerClient } from '@azure/storage-blob';
import type { ExportConfig } from '../config';
import type { QueueDelivery, RunSummary } from '../export/exportRun';
import type { Logger } from '../logger';

/**
 * What the operations need of a wired exporter; the composition root (src/composition/) builds it from real
 * clients, tests and the CLI from their own pieces. Operations never import the composition.
 */
/** Options of one run of an {@link Exporter}. */
export interface ExporterRunOptions {
  readonly runId?: string;
  readonly abortSignal?: AbortSignal;
  readonly logger?: Logger;
  /** The checkpoint blob; default the live export's `state/checkpoint.json`. A backfill keeps its own. */
  readonly checkpointBlob?: string;
  /** Where a run without a checkpoint starts (see `runExport`); default now minus EXPORT_INITIAL_LOOKBACK. */
  readonly initialWatermark?: string;
  /** Exclusive end the run never exports past (see `runExport`). */
  readonly windowEnd?: string;
  /** Stops the run cleanly at its next page (see `runExport`). */
  readonly stopSignal?: AbortSignal;
  /** The queue message's try that started the run (DEFENDER_TENANTS fan-out). */
  readonly delivery?: QueueDelivery;
}

/** The wired exporter of one configuration. Long-lived: the secret cache and rate limiter span runs. */
export interface Exporter {
  readonly config: ExportConfig;
  readonly container: ContainerClient;
  /** Where the checkpoint lives: `container` unless EXPORT_STATE_CONTAINER sets it apart. */
  readonly stateContainer: ContainerClient;
  run(options?: ExporterRunOptions): Promise<RunSummary>;
}

/**
 * The exporters of DEFENDER_TENANTS by tenant ID. Built on first use of each tenant: a worker that handles a few
 * tenants' messages builds only theirs.
 */
export interface TenantExporters {
  /** The tenant IDs, in list order. */
  keys(): Iterable<string>;
  /** The tenant's exporter; undefined for a tenant not in the list. */
  get(tenantId: string): Exporter | undefined;
}

/** The clients of the export container and of the checkpoint's container (one and the same unless set apart). */
export interface ExportContainers {
  readonly container: ContainerClient;
  readonly stateContainer: ContainerClient;
}
