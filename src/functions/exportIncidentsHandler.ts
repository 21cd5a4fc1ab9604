import type { InvocationContext, Timer } from '@azure/functions';
import { createExporter, type CompositionOptions, type Exporter } from '../composition/compositionRoot';
import { loadConfig, type ExportConfig } from '../config';
import type { RunSummary } from '../export/exportRun';
import { loggerFromContext } from '../logger';

/** Builds the exporter for a config; replaceable so tests can wire the sandbox through the same handler. */
export type ExporterFactory = (config: ExportConfig, options: CompositionOptions) => Exporter;

/**
 * Creates the timer handler. The exporter is built once per worker process (the secret cache and the legacy
 * rate limiter span runs) from a config validated on first use; a bad config fails every run with the list of
 * settings to fix, and is never retried.
 */
export function createExportIncidentsHandler(
  load: () => ExportConfig = () => loadConfig(),
  factory: ExporterFactory = createExporter,
  options: Omit<CompositionOptions, 'logger'> = {},
): (timer: Timer, context: InvocationContext) => Promise<RunSummary> {
  let exporter: Exporter | undefined;
  return async (timer, context) => {
    const logger = loggerFromContext(context);
    exporter ??= factory(load(), { ...options, logger });
    if (timer.isPastDue)
      logger.info(
        'The timer is past due (the host was down or a run overran); this run catches up from the checkpoint.',
      );
    const summary = await exporter.run({ runId: context.invocationId, logger });
    if (summary.outcome === 'concurrent') {
      logger.warn(`Another export run is active: ${summary.reason ?? ''}`);
    }
    return summary;
  };
}

/** The handler the Functions host calls. */
export const exportIncidentsHandler = createExportIncidentsHandler();
