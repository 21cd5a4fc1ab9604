import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from '../../src/cli/command';
import { main } from '../../src/cli/main';

/** What a CLI invocation printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `defender-export <args>` in-process through `main` (or one command), capturing stdout and stderr.
 * `onStderr` sees every write to stderr as it happens (a test can interrupt the command from there).
 */
export async function runCli(
  args: string[],
  options: { command?: Command; onStderr?: (text: string) => void } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    options.onStderr?.(String(chunk));
    return true;
  });
  try {
    const code = options.command ? await runCommand(options.command, args) : await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** A command's own run, with main's mapping of errors to exit codes. */
async function runCommand(command: Command, args: string[]): Promise<number> {
  return main(['__test__', ...args], { __test__: { ...command, load: () => command } });
}

/** A temporary folder for one test. */
export function tempDir(prefix = 'defender-export-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a local.settings.json with these values in a temporary folder and returns its path. */
export function settingsFile(values: Record<string, string>): string {
  const path = join(tempDir('settings-'), 'local.settings.json');
  writeFileSync(path, JSON.stringify({ IsEncrypted: false, Values: values }));
  return path;
}
