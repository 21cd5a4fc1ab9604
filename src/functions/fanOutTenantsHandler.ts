import type { FunctionOutput, InvocationContext, Timer } from '@azure/functions';
import { loadConfig, type ExportConfig } from '../config';
import { loggerFromContext } from '../logger';
import { tenantMessages } from '../operations/tenantFanOut';

/** What one timer run of the fan-out did. */
export interface FanOutSummary {
  readonly queue: string;
  readonly queued: number;
}

/**
 * The timer of a DEFENDER_TENANTS deployment: one message per tenant to EXPORT_QUEUE through the queue output
 * binding (the host writes them when the function returns, with its own identity-based connection); the
 * queue-triggered `exportTenant` exports each tenant, retried by the queue on its own.
 */
export function createFanOutTenantsHandler(
  tenantQueue: FunctionOutput,
  load: () => ExportConfig = () => loadConfig(),
  now: () => number = Date.now,
): (timer: Timer, context: InvocationContext) => FanOutSummary {
  let config: ExportConfig | undefined;
  return (timer, context) => {
    config ??= load();
    const logger = loggerFromContext(context);
    const messages = tenantMessages(config.tenants ?? [], context.invocationId, now());
    context.extraOutputs.set(tenantQueue, messages);
    logger.info(
      `Queued ${messages.length} tenant(s) on ${config.queue}${timer.isPastDue ? ' (the timer was past due)' : ''}: ${(config.tenants ?? []).map((t) => t.name).join(', ')}.`,
    );
    return { queue: config.queue, queued: messages.length };
  };
}
