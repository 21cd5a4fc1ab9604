import {
  createExporter,
  createIncidentSourceFactory,
  type CompositionOptions,
} from '../composition/compositionRoot';
import { parseConfig } from '../config';
import { timestampFromMs } from '../export/timestamp';
import { silentLogger as quiet } from '../logger';

/** One measured job: the export, or the fetch floor (the same pages, nothing done with them). */
export interface BenchJob {
  readonly mode: 'export' | 'floor';
  readonly settings: Readonly<Record<string, string>>;
  readonly ca: string;
  readonly legacyLimits?: readonly { limit: number; windowInMs: number }[];
}

export interface BenchResult {
  readonly durationInMs: number;
  readonly incidents: number;
  readonly pages: number;
  readonly bytes: number;
  readonly requests: number;
  readonly throttles: number;
  readonly outcome: string;
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
  };
  const started = performance.now();
  let result: Omit<BenchResult, 'durationInMs' | 'maxRssBytes'>;
  if (job.mode === 'export') {
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
