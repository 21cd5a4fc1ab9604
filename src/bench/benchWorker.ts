import {
  createExporter,
  createIncidentSourceFactory,
  type CompositionOptions,
} from '../composition/compositionRoot';
import { parseConfig } from '../config';
import { timestampFromMs } from '../export/timestamp';
import { silentLogger as quiet } from '../logger';
import { runBackfill } from '../operations/backfill';
import { parseTimeRange } from '../operations/timeRange';

/** One measured job: the export, or the fetch floor (the same pages, nothing done with them). */
export interface BenchJob {
  readonly mode: 'export' | 'floor' | 'backfill';
  readonly settings: Readonly<Record<string, string>>;
  readonly ca: string;
  readonly legacyLimits?: readonly { limit: number; windowInMs: number }[];
  /** `backfill`: slices at once (1: one chain, one page at a time), the pacer's rate window, the history. */
  readonly concurrency?: number;
  readonly pacing?: CompositionOptions['pacing'];
  readonly backfillFrom?: string;
}

export interface BenchResult {
  readonly durationInMs: number;
  readonly incidents: number;
  readonly pages: number;
  readonly bytes: number;
  readonly requests: number;
  readonly throttles: number;
  readonly outcome: string;
  /** `backfill`: slices split for idle ones. */
  readonly splits?: number;
  /** Peak resident set size of this process, bytes. */
  readonly maxRssBytes: number;
}

/** Runs one job in a fresh process (so that its peak memory is its own) and reports over IPC. */
async function main(): Promise<void> {
  const job = await new Promise<BenchJob>((resolve) =>
    process.once('message', (m) => resolve(m as BenchJob)),
  );
  const config = parseConfig(job.settings, { runner: 'cli' });
  const options: CompositionOptions = {
    logger: quiet,
    ca: job.ca,
    ...(job.legacyLimits ? { legacyLimits: job.legacyLimits } : {}),
    ...(job.pacing ? { pacing: job.pacing } : {}),
  };
  let started = performance.now();
  let result: Omit<BenchResult, 'durationInMs' | 'maxRssBytes'>;
  if (job.mode === 'backfill') {
    // The live export runs once (it covers only EXPORT_INITIAL_LOOKBACK); the history before it is backfilled.
    const exporter = createExporter(config, options);
    const live = await exporter.run();
    if (live.outcome !== 'succeeded')
      throw new Error(`the live run before the backfill ended ${live.outcome}`);
    started = performance.now();
    const summary = await runBackfill(exporter, {
      range: parseTimeRange(job.backfillFrom, undefined, Date.now()),
      logger: quiet,
      concurrency: job.concurrency ?? 1,
    });
    result = {
      incidents: summary.incidents,
      pages: summary.runs,
      bytes: 0,
      requests: summary.requests,
      throttles: summary.throttles,
      outcome: summary.outcome,
      splits: summary.splits,
    };
  } else if (job.mode === 'export') {
    const summary = await createExporter(config, options).run();
    result = {
      incidents: summary.incidents,
      pages: summary.pages,
      bytes: summary.bytes,
      requests: summary.requests,
      throttles: summary.throttles,
      outcome: summary.outcome,
    };
  } else {
    // The window the first export run covers: initial lookback up to the settle delay.
    const now = Date.now();
    const source = createIncidentSourceFactory(config, options)(quiet);
    let incidents = 0;
    let pages = 0;
    for await (const page of source.listPages({
      from: { watermark: timestampFromMs(now - config.initialLookbackInMs).text, idsAtWatermark: [] },
      until: timestampFromMs(now - config.settleDelayInMs).text,
    })) {
      pages++;
      incidents += page.records.length;
    }
    result = { incidents, pages, bytes: 0, requests: pages, throttles: 0, outcome: 'succeeded' };
  }
  const report: BenchResult = {
    ...result,
    durationInMs: performance.now() - started,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.send?.(report, () => process.exit(0));
}

void main();
