#!/usr/bin/env node
import { hasRealSettings } from '../config';
import { classifyFailure, ConcurrentRunError, ConfigError, toError } from '../errors';
import { backfillCommand } from './backfillCommand';
import type { Command } from './command';
import { downloadCommand } from './downloadCommand';
import { runCommand } from './runCommand';
import { sandboxCommand } from './sandboxCommand';
import { statusCommand } from './statusCommand';

const COMMANDS: Record<string, Command> = {
  download: downloadCommand,
  backfill: backfillCommand,
  status: statusCommand,
  run: runCommand,
  sandbox: sandboxCommand,
};

const HELP = `defender-export: export Microsoft Defender XDR incidents to Azure Blob Storage

Usage: defender-export <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}
  start      'sandbox' unless real settings are given (environment or local.settings.json), then 'run'

Run 'defender-export <command> --help' for a command's options.
Exit codes: 0 success, 1 the command failed and needs you to act (status: the export is stale), 2 bad usage or
configuration, 3 another run was active, 75 a transient failure (network, 5xx, throttling, Storage unavailable,
out of time): run the command again later, 130 interrupted (run the command again to resume).`;

/** A failure a later run gets past by itself: EX_TEMPFAIL of sysexits(3), which schedulers know to retry. */
export const TRANSIENT_EXIT_CODE = 75;

/**
 * Entry point: one top-level catch maps errors to exit codes. `commands` replaces the table (tests run a
 * command wired to the local sandbox's certificate through the same mapping).
 */
export async function main(argv: string[], commands: Record<string, Command> = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = name === 'start' ? startCommand() : commands[name];
  if (!command) {
    process.stderr.write(`Unknown command '${name}'.\n\n${HELP}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
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

function startCommand(): Command {
  return hasRealSettings('local.settings.json') ? runCommand : sandboxCommand;
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
