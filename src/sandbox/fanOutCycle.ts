import { InvocationContext, output, type Timer } from '@azure/functions';
import type { ExportConfig } from '../config';
import { createFanOutTenantsHandler } from '../functions/fanOutTenantsHandler';
import type { DrainReport, LocalQueueHost, QueueHandler } from './localQueueHost';

const timer: Timer = {
  isPastDue: false,
  schedule: { adjustForDST: false },
  scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

/** The queue output of the Function's timer, as src/functions/exportIncidents.ts declares it. */
const tenantQueue = output.storageQueue({ queueName: '%EXPORT_QUEUE%', connection: 'AzureWebJobsStorage' });

/** The messages the Function's timer hands to its queue output binding for one cycle of DEFENDER_TENANTS. */
export function timerMessages(
  config: ExportConfig,
  cycleId: string,
  now: () => number,
  log?: (level: string, text: string) => void,
): unknown[] {
  const context = new InvocationContext({
    invocationId: cycleId,
    functionName: 'exportIncidents',
    logHandler: (level, ...args) => log?.(level, args.map(String).join(' ')),
  });
  createFanOutTenantsHandler(tenantQueue, () => config, now)(timer, context);
  const messages = context.extraOutputs.get(tenantQueue);
  return Array.isArray(messages) ? (messages as unknown[]) : [];
}

/**
 * One cycle of the Function with DEFENDER_TENANTS, in this process: the timer's messages, sent to the queue as
 * the output binding would, then the queue drained through `handler` (the queue function's) as the host would.
 */
export async function fanOutCycle(options: {
  readonly config: ExportConfig;
  readonly queueHost: LocalQueueHost;
  readonly handler: QueueHandler;
  readonly cycleId: string;
  readonly now: () => number;
  readonly log?: (level: string, text: string) => void;
}): Promise<DrainReport> {
  await options.queueHost.enqueue(timerMessages(options.config, options.cycleId, options.now, options.log));
  return options.queueHost.drain(options.handler, options.log ? { log: options.log } : {});
}
