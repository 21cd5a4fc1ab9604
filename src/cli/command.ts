import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors';

/** A CLI command: parses its own arguments, returns the process exit code. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

/** Parses options with node:util, turning its errors into usage errors. */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true });
  } catch (thrown) {
    throw new ConfigError([(thrown as Error).message]);
  }
}

/** The options of the commands that work on a range of update times against the Function's settings. */
export const RANGE_COMMAND_OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  settings: { type: 'string', default: 'local.settings.json' },
} as const;

/** A whole number option from `min` to `max`; a problem naming the option otherwise (reported with the others). */
export function wholeNumber(
  text: string,
  name: string,
  min: number,
  max: number,
  problems: string[],
): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    problems.push(`${name} is '${text}': expected a whole number from ${min} to ${max}.`);
  return n;
}
