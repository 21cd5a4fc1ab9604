import { createExporter } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { consoleLogger } from './consoleLogger';
import { parseOptions, type Command } from './command';
import { commandHelp } from './commandHelp';

/** `defender-export run`: one export cycle against the real services, with the Function's settings. */
export const runCommand: Command = {
  ...commandHelp.run,
  async run(args) {
    const { values } = parseOptions(args, {
      settings: { type: 'string', default: 'local.settings.json' },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
    });
    const config = loadConfig(String(values.settings), { runner: 'cli' });
    const logger = consoleLogger({ verbose: Boolean(values.verbose) });
    const summary = await createExporter(config, { logger }).run();
    if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return summary.outcome === 'concurrent' ? 3 : 0;
  },
};
