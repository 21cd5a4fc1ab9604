import {
  createExporter,
  createTenantExporters,
  type CompositionOptions,
} from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { ConfigError } from '../errors';
import { formatDuration } from '../export/duration';
import { exportTenants } from '../operations/tenantFanOut';
import { consoleLogger } from './consoleLogger';
import { parseOptions, selectTenant, type Command } from './command';
import { commandHelp } from './commandHelp';
import { TRANSIENT_EXIT_CODE } from './exitCodes';

/**
 * `defender-export run`: one export cycle against the real services, with the Function's settings; with
 * DEFENDER_TENANTS every tenant in this process, `--concurrency` at once (or the one `--tenant` names).
 */
export function createRunCommand(composition: Omit<CompositionOptions, 'logger'> = {}): Command {
  return {
    ...commandHelp.run,
    async run(args) {
      const { values } = parseOptions(args, {
        settings: { type: 'string', default: 'local.settings.json' },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        tenant: { type: 'string' },
        concurrency: { type: 'string', default: '4' },
      });
      const loaded = loadConfig(String(values.settings), { runner: 'cli' });
      const logger = consoleLogger({ verbose: Boolean(values.verbose) });
      if (!loaded.tenants || values.tenant !== undefined) {
        const summary = await createExporter(selectTenant(loaded, values.tenant), {
          ...composition,
          logger,
        }).run();
        if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        return summary.outcome === 'concurrent' ? 3 : 0;
      }
      const concurrency = Number(values.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
        throw new ConfigError([
          `--concurrency is '${values.concurrency}': expected a whole number from 1 to 64.`,
        ]);
      const results = await exportTenants(createTenantExporters(loaded, { ...composition, logger }), {
        concurrency,
        logger,
      });
      if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else
        for (const r of results)
          process.stdout.write(
            `${r.name} (${r.tenantId}) -> ${r.container}: ${
              r.summary
                ? `${r.summary.outcome}, ${r.summary.incidents} incident versions in ${r.summary.blobs} blob(s), ${formatDuration(r.summary.durationInMs)}`
                : `failed: ${r.error ?? ''}`
            }\n`,
          );
      const failed = results.filter((r) => r.error !== undefined);
      if (failed.length === 0) return results.some((r) => r.summary?.outcome === 'concurrent') ? 3 : 0;
      return failed.every((r) => r.transient) ? TRANSIENT_EXIT_CODE : 1;
    },
  };
}

export const runCommand: Command = createRunCommand();
