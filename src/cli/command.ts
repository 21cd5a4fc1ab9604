import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  configForTenant,
  findTenant,
  storageForTenant,
  type ExportConfig,
  type TenantStorageConfig,
} from '../config';
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
  tenant: { type: 'string' },
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

/**
 * The single-tenant config a command works on: with DEFENDER_TENANTS, the entry `--tenant` names (by name or
 * tenant ID), on its container; without, the config itself (and `--tenant` is an error).
 */
export function selectTenant(config: ExportConfig, tenant: string | undefined): ExportConfig {
  if (tenant !== undefined) return configForTenant(config, findTenant(config, tenant));
  if (config.tenants)
    throw new ConfigError([
      `DEFENDER_TENANTS lists ${config.tenants.length} tenant(s): name the one to work on with --tenant <name|tenant ID> (${config.tenants.map((t) => t.name).join(', ')}).`,
    ]);
  return config;
}

/**
 * The storage settings a command reads: with `--tenant`, the container of that DEFENDER_TENANTS entry; else
 * EXPORT_CONTAINER (point it at a tenant's container to read that tenant).
 */
export function selectTenantStorage<C extends TenantStorageConfig>(config: C, tenant: string | undefined): C {
  return tenant === undefined ? config : storageForTenant(config, findTenant(config, tenant));
}
