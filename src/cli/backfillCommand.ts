import { systemClock } from '../export/ports';
import { createExporter, type CompositionOptions } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { runBackfill } from '../operations/backfill';
import { parseTimeRange } from '../operations/timeRange';
import { parseOptions, RANGE_COMMAND_OPTIONS, selectTenant, type Command } from './command';
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
      const { values } = parseOptions(args, RANGE_COMMAND_OPTIONS);
      const nowMs = (composition.clock ?? systemClock).now();
      const range = parseTimeRange(values.from, values.to, nowMs);
      const config = selectTenant(loadConfig(values.settings, { runner: 'cli' }), values.tenant);
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
