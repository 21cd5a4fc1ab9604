import type { InvocationContext } from '@azure/functions';
import {
  createTenantExporters,
  type CompositionOptions,
  type TenantExporters,
} from '../composition/compositionRoot';
import { loadConfig, QUEUE_MAX_DEQUEUE_COUNT, type ExportConfig } from '../config';
import type { RunSummary } from '../export/exportRun';
import { loggerFromContext } from '../logger';
import { parseTenantMessage } from '../operations/tenantFanOut';

/** Gives the exporters of the tenants; replaceable so tests can wire the sandbox through the same handler. */
export type TenantExportersFactory = (config: ExportConfig, options: CompositionOptions) => TenantExporters;

/**
 * Creates the queue handler: one message, one tenant's export. The exporters are built once per worker (the
 * secret cache and each tenant's legacy pacing span messages). A failed run throws after its manifest is written,
 * so the host makes the message visible again after host.json's visibilityTimeout and, after maxDequeueCount
 * tries, moves it to `<queue>-poison`; the manifest of each try says which it was. A second message for a tenant
 * whose export runs is harmless: its run finds the checkpoint taken (ETag) and ends as `concurrent`.
 */
export function createExportTenantHandler(
  load: () => ExportConfig = () => loadConfig(),
  factory: TenantExportersFactory = createTenantExporters,
  options: Omit<CompositionOptions, 'logger'> = {},
): (entry: unknown, context: InvocationContext) => Promise<RunSummary | undefined> {
  let config: ExportConfig | undefined;
  let exporters: TenantExporters | undefined;
  return async (entry, context) => {
    const logger = loggerFromContext(context);
    config ??= load();
    exporters ??= factory(config, { ...options, logger });
    const message = parseTenantMessage(entry);
    if (typeof message === 'string') {
      // Not retried: another try would fail alike, and the poison queue is for tenants that fail.
      logger.error(`Dropped a message on ${config.queue} that is not a tenant's: ${message}.`);
      return undefined;
    }
    const exporter = exporters.get(message.tenantId);
    if (!exporter) {
      logger.warn(
        `Dropped the message for tenant ${message.tenantId}: it is not in DEFENDER_TENANTS (any more). Its exports stay in their container.`,
      );
      return undefined;
    }
    const attempt = Number(context.triggerMetadata?.dequeueCount ?? 1);
    const summary = await exporter.run({
      runId: context.invocationId,
      logger,
      delivery: {
        queue: config.queue,
        attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 1,
        maxAttempts: QUEUE_MAX_DEQUEUE_COUNT,
      },
    });
    if (summary.outcome === 'concurrent') {
      logger.info(
        `Another message for tenant ${exporter.config.tenantName ?? message.tenantId} is being handled; this one ends: ${summary.reason ?? ''}`,
      );
    }
    return summary;
  };
}

/** The handler the Functions host calls. */
export const exportTenantHandler = createExportTenantHandler();
