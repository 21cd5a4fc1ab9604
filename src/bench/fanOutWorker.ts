import {
  createIncidentSourceFactory,
  createTenantExporters,
  type CompositionOptions,
} from '../composition/compositionRoot';
import { parseConfig, QUEUE_SETTINGS, tenantConfigs } from '../config';
import type { RunSummary } from '../export/exportRun';
import { timestampFromMs } from '../export/timestamp';
import { createExportTenantHandler } from '../functions/exportTenantHandler';
import { silentLogger as quiet } from '../logger';
import { forEachConcurrently } from '../export/forEachConcurrently';
import { fanOutCycle } from '../sandbox/fanOutCycle';
import { LocalQueueHost } from '../sandbox/localQueueHost';

/** One measured fan-out job: every tenant through the queue, or only their pages fetched (the floor). */
export interface FanOutJob {
  readonly mode: 'fanout' | 'floor';
  readonly settings: Readonly<Record<string, string>>;
  readonly ca: string;
  readonly connectionString: string;
}

export interface FanOutResult {
  readonly tenants: number;
  readonly succeeded: number;
  readonly incidents: number;
  readonly requests: number;
  /** Wall time of the whole job. */
  readonly durationInMs: number;
  /** Per tenant: its run's duration (fanout) or the time its pages took (floor), mean and 95th percentile. */
  readonly perTenantMeanInMs: number;
  readonly perTenantP95InMs: number;
  /** Handlers at once: host.json batchSize + newBatchThreshold. */
  readonly concurrency: number;
  /** Peak resident set size of this process, bytes. */
  readonly maxRssBytes: number;
}

function stats(values: readonly number[]): { mean: number; p95: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / Math.max(1, sorted.length);
  return { mean, p95: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0 };
}

/** Runs one job in a fresh process (so that its peak memory is its own) and reports over IPC. */
async function main(): Promise<void> {
  const job = await new Promise<FanOutJob>((resolve) =>
    process.once('message', (m) => resolve(m as FanOutJob)),
  );
  const config = parseConfig(job.settings);
  const concurrency = QUEUE_SETTINGS.batchSize + QUEUE_SETTINGS.newBatchThreshold;
  const options: Omit<CompositionOptions, 'logger'> = { ca: job.ca };
  const started = performance.now();
  let result: Omit<FanOutResult, 'durationInMs' | 'maxRssBytes' | 'concurrency'>;
  if (job.mode === 'fanout') {
    const queueHost = await LocalQueueHost.start(job.connectionString, config.queue);
    const report = await fanOutCycle({
      config,
      queueHost,
      handler: createExportTenantHandler(() => config, createTenantExporters, options),
      cycleId: 'bench',
      now: Date.now,
    });
    const summaries = report.completed.flatMap((c) => (c.result ? [c.result as RunSummary] : []));
    const { mean, p95 } = stats(summaries.map((s) => s.durationInMs));
    result = {
      tenants: config.tenants?.length ?? 0,
      succeeded: summaries.filter((s) => s.outcome === 'succeeded').length,
      incidents: summaries.reduce((n, s) => n + s.incidents, 0),
      requests: summaries.reduce((n, s) => n + s.requests, 0),
      perTenantMeanInMs: mean,
      perTenantP95InMs: p95,
    };
  } else {
    // The pages of every tenant's first window, fetched and dropped, as many at once as the queue host runs.
    const now = Date.now();
    const times: number[] = [];
    let incidents = 0;
    let requests = 0;
    const tenants = tenantConfigs(config);
    await forEachConcurrently(tenants, concurrency, async (tenant) => {
      const t0 = performance.now();
      const source = createIncidentSourceFactory(tenant, { ...options, logger: quiet })(quiet);
      for await (const page of source.listPages({
        from: { watermark: timestampFromMs(now - tenant.initialLookbackInMs).text, idsAtWatermark: [] },
        until: timestampFromMs(now - tenant.settleDelayInMs).text,
      })) {
        requests++;
        incidents += page.records.length;
      }
      times.push(performance.now() - t0);
    });
    const { mean, p95 } = stats(times);
    result = {
      tenants: tenants.length,
      succeeded: tenants.length,
      incidents,
      requests,
      perTenantMeanInMs: mean,
      perTenantP95InMs: p95,
    };
  }
  const report: FanOutResult = {
    ...result,
    concurrency,
    durationInMs: performance.now() - started,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.send?.(report, () => process.exit(0));
}

void main();
