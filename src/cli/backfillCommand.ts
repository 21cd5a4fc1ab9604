import { systemClock } from '../export/ports';
import { createExporter, type CompositionOptions } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { DEFAULT_BACKFILL_CONCURRENCY, MAX_BACKFILL_CONCURRENCY, runBackfill } from '../operations/backfill';
import { ConfigError } from '../errors';
import { parseTimeRange } from '../operations/timeRange';
import { parseOptions, RANGE_COMMAND_OPTIONS, selectTenant, wholeNumber, type Command } from './command';
import { commandHelp } from './commandHelp';
import { consoleLogger } from './consoleLogger';
import { INTERRUPTED_EXIT_CODE, interruptible } from './interrupt';

/**
 * `defender-export backfill`, wired with these composition options (the local sandbox's certificate in tests;
 * none in production).
 */
export function createBackfillCommand(composition: Omit<CompositionOptions, 'logger'> = {}): Command {
  return {
    ...commandHelp.backfill,
    async run(args) {
      const { values } = parseOptions(args, {
        ...RANGE_COMMAND_OPTIONS,
        concurrency: { type: 'string', default: String(DEFAULT_BACKFILL_CONCURRENCY) },
      });
      const nowMs = (composition.clock ?? systemClock).now();
      const range = parseTimeRange(values.from, values.to, nowMs);
      const problems: string[] = [];
      const concurrency = wholeNumber(
        values.concurrency,
        '--concurrency',
        1,
        MAX_BACKFILL_CONCURRENCY,
        problems,
      );
      if (problems.length > 0) throw new ConfigError(problems);
      const config = selectTenant(loadConfig(values.settings, { runner: 'cli' }), values.tenant);
      const logger = consoleLogger({ verbose: values.verbose });
      const exporter = createExporter(config, { ...composition, logger });
      const summary = await interruptible((abortSignal) =>
        runBackfill(exporter, {
          range,
          logger,
          abortSignal,
          concurrency,
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
            `${summary.incidents} incident versions in ${summary.blobs} blob(s) over ${summary.runs} run(s)` +
            `${summary.splits > 0 ? `, ${summary.splits} slice(s) split for idle ones` : ''}.`,
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
