import { createExporter, type CompositionOptions } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { runBackfill } from '../operations/backfill';
import { parseTimeRange } from '../operations/timeRange';
import { parseOptions, type Command } from './command';
import { consoleLogger } from './consoleLogger';
import { INTERRUPTED_EXIT_CODE, interruptible } from './interrupt';

/**
 * `defender-export backfill`, wired with these composition options (the local sandbox's certificate in tests;
 * none in production).
 */
export function createBackfillCommand(composition: Omit<CompositionOptions, 'logger'> = {}): Command {
  return {
    summary: 'export history from before the live export began, into the same container, resumably',
    usage: `Usage: defender-export backfill --from DATE [--to DATE] [--json] [--verbose] [--settings FILE]

A one-off export of the incidents updated from --from up to --to, or up to where the live export began if
that is earlier, into the same container and layout as the live export. It reads the Defender API with the
Function's settings, in runs that each fit EXPORT_MAX_RUN_DURATION, until the range is done. It keeps its own
checkpoint (state/backfill-<from>-<to>.json): interrupted, the same command resumes; parts of the range that
earlier backfills took are resumed or skipped, not exported again. It never moves the live checkpoint and never
writes a version the live export wrote.

Options:
  --from DATE|DATETIME  start of the history: a UTC date (2026-01-01) or a date-time with zone
  --to DATE|DATETIME    end: a date includes that whole day, a date-time is exclusive (default: where the live export began)
  --json                print the summary as JSON on stdout
  --verbose             also print debug lines (retries)
  --settings FILE       settings file (default local.settings.json): the same settings as the Function

Exit codes: 0 done (or nothing to do), 1 failed (run again to resume), 2 bad usage or settings,
3 another backfill of this range is running, 130 interrupted (run again to resume).`,
    async run(args) {
      const { values } = parseOptions(args, {
        from: { type: 'string' },
        to: { type: 'string' },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        settings: { type: 'string', default: 'local.settings.json' },
      });
      const nowMs = Date.now();
      const range = parseTimeRange(values.from, values.to, nowMs);
      const config = loadConfig(values.settings, { runner: 'cli' });
      const logger = consoleLogger({ verbose: values.verbose });
      const exporter = createExporter(config, { ...composition, logger });
      const summary = await interruptible((abortSignal) =>
        runBackfill(exporter, {
          range,
          logger,
          abortSignal,
          onRun: (r) =>
            logger.info(
              `Backfill run ${r.runs}: ${r.incidents} incident versions so far, at ${r.watermark}.`,
            ),
        }),
      );
      if (values.json) {
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else if (summary.outcome === 'nothing-to-do') {
        process.stdout.write(`Nothing to backfill: ${summary.reason ?? ''}.\n`);
      } else {
        const lines = [
          `Backfill ${summary.from} .. ${summary.to} (the live export began ${summary.liveStart}): ${summary.outcome}; ` +
            `${summary.incidents} incident versions in ${summary.blobs} blob(s) over ${summary.runs} run(s).`,
          ...summary.segments.map(
            (s) =>
              `  ${s.from} .. ${s.to}  ${s.status === 'done' ? 'done earlier' : s.status}, at ${s.watermark} (${s.checkpointBlob})`,
          ),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (summary.outcome === 'interrupted') return INTERRUPTED_EXIT_CODE;
      if (summary.outcome === 'concurrent') {
        process.stderr.write(`${summary.reason ?? ''}\n`);
        return 3;
      }
      return 0;
    },
  };
}

export const backfillCommand = createBackfillCommand();
