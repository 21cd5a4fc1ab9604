#!/usr/bin/env node
import { hasRealSettings } from '../config';
import { classifyFailure, ConcurrentRunError, ConfigError, toError } from '../errors';
import type { Command } from './command';
import { commandHelp } from './commandHelp';
import { TRANSIENT_EXIT_CODE } from './exitCodes';
// Types only (erased): the modules themselves are required when their command runs.
import type * as downloadCommandModule from './downloadCommand';
import type * as backfillCommandModule from './backfillCommand';
import type * as statusCommandModule from './statusCommand';
import type * as verifyCommandModule from './verifyCommand';
import type * as runCommandModule from './runCommand';
import type * as sandboxCommandModule from './sandboxCommand';
import type * as tenantsCommandModule from './tenantsCommand';

/**
 * A command as the top level knows it: its help, and `load`, which requires the command's module only when the
 * command runs. `--help` and the other commands thus never load the sandbox, whose dependencies (`selfsigned`,
 * `azurite`) are development dependencies, absent from a production install (`npm ci --omit=dev`).
 */
export interface CommandEntry {
  readonly summary: string;
  readonly usage: string;
  load(): Command;
}

// Lazy `require` (CommonJS output): a static import would load every command's dependencies up front.
/* eslint-disable @typescript-eslint/no-require-imports */
const COMMANDS: Record<string, CommandEntry> = {
  download: {
    ...commandHelp.download,
    load: () => (require('./downloadCommand') as typeof downloadCommandModule).downloadCommand,
  },
  backfill: {
    ...commandHelp.backfill,
    load: () => (require('./backfillCommand') as typeof backfillCommandModule).backfillCommand,
  },
  status: {
    ...commandHelp.status,
    load: () => (require('./statusCommand') as typeof statusCommandModule).statusCommand,
  },
  verify: {
    ...commandHelp.verify,
    load: () => (require('./verifyCommand') as typeof verifyCommandModule).verifyCommand,
  },
  run: {
    ...commandHelp.run,
    load: () => (require('./runCommand') as typeof runCommandModule).runCommand,
  },
  tenants: {
    ...commandHelp.tenants,
    load: () => (require('./tenantsCommand') as typeof tenantsCommandModule).tenantsCommand,
  },
  sandbox: {
    ...commandHelp.sandbox,
    load: () => {
      // Azurite is started from node_modules later in the run: find it now, before anything starts.
      require.resolve('azurite/dist/src/blob/main.js');
      return (require('./sandboxCommand') as typeof sandboxCommandModule).sandboxCommand;
    },
  },
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The development dependencies a command may need; a production install lacks them. */
const DEV_DEPENDENCIES = ['selfsigned', 'azurite', '@azure/storage-queue'];

/** The development dependency that `thrown` (from a command's `load`) failed to find, if it is one. */
function missingDevDependency(thrown: unknown): string | undefined {
  if ((thrown as { code?: unknown } | null)?.code !== 'MODULE_NOT_FOUND') return undefined;
  const missing = /Cannot find module '([^']+)'/.exec(toError(thrown).message)?.[1];
  return DEV_DEPENDENCIES.find((name) => missing === name || missing?.startsWith(`${name}/`));
}

const HELP = `defender-export: export Microsoft Defender XDR incidents to Azure Blob Storage

Usage: defender-export <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}
  start      'sandbox' unless real settings are given (environment or local.settings.json), then 'run'

Run 'defender-export <command> --help' for a command's options.
Exit codes: 0 success, 1 the command failed and needs you to act (status: the export is stale; verify: a
version is missing or exported twice), 2 bad usage or configuration, 3 another run was active, 75 a transient
failure (network, 5xx, throttling, Storage unavailable, out of time): run the command again later,
130 interrupted (run the command again to resume).`;

export { TRANSIENT_EXIT_CODE };

/**
 * Entry point: one top-level catch maps errors to exit codes. `commands` replaces the table (tests run a
 * command wired to the local sandbox's certificate through the same mapping).
 */
export async function main(
  argv: string[],
  commands: Record<string, CommandEntry> = COMMANDS,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = name === 'start' ? startCommand() : commands[name];
  if (!entry) {
    process.stderr.write(`Unknown command '${name}'.\n\n${HELP}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${entry.usage}\n`);
    return 0;
  }
  let command: Command;
  try {
    command = entry.load();
  } catch (thrown) {
    const missing = missingDevDependency(thrown);
    if (missing === undefined) throw thrown;
    process.stderr.write(
      `Cannot find module '${missing}': the sandbox needs the development dependencies: run \`npm ci\` in a clone of the repository.\n`,
    );
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (thrown) {
    if (thrown instanceof ConfigError) {
      process.stderr.write(`${thrown.message}\n`);
      return 2;
    }
    if (thrown instanceof ConcurrentRunError) {
      process.stderr.write(`${thrown.message}\n`);
      return 3;
    }
    const error = toError(thrown);
    process.stderr.write(`error: ${error.message}\n`);
    return classifyFailure(thrown).transient ? TRANSIENT_EXIT_CODE : 1;
  }
}

/** `start`: `sandbox` unless real settings are given, then `run`. */
function startCommand(): CommandEntry | undefined {
  return hasRealSettings('local.settings.json') ? COMMANDS.run : COMMANDS.sandbox;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (thrown: unknown) => {
      process.stderr.write(`error: ${toError(thrown).message}\n`);
      process.exitCode = 1;
    },
  );
}
