import { createExporter } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { consoleLogger } from './consoleLogger';
import { parseOptions, type Command } from './command';

/** `defender-export run`: one export cycle against the real services, with the Function's settings. */
export const runCommand: Command = {
  summary: 'run one export cycle with the settings from the environment or local.settings.json',
  usage: `Usage: defender-export run [--settings FILE] [--json] [--verbose]

Runs one export cycle, exactly as the hourly Function does, against the services the settings name.
Settings come from the environment, over the "Values" of local.settings.json (see local.settings.sample.json).
Locally, Key Vault and Storage are reached with DefaultAzureCredential (az login) unless AZURE_CLIENT_ID names a
managed identity, or EXPORT_STORAGE_CONNECTION_STRING / DEFENDER_CLIENT_SECRET are set.

Options:
  --settings FILE  settings file (default: local.settings.json in the current folder)
  --json           print the run summary as JSON on stdout
  --verbose        also print debug lines (retries)`,
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
