// The built CLI as a production install runs it: without the development dependencies (selfsigned, azurite),
// every command's --help works and the sandbox says what to install, instead of crashing at start-up.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const preload = join(root, 'test', 'support', 'withoutDevDependencies.js');

describe('defender-export without the development dependencies', () => {
  const out = mkdtempSync(join(tmpdir(), 'cli-build-'));
  const cwd = mkdtempSync(join(tmpdir(), 'cli-cwd-'));
  const main = join(out, 'src', 'cli', 'main.js');

  beforeAll(() => {
    // What `npm run build` compiles for the CLI, into a folder of its own (dist/ may be stale or absent).
    const tsc = spawnSync(
      process.execPath,
      [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', out],
      { encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  }, 120_000);
  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(cwd, { recursive: true, force: true });
  });

  /** Runs the built CLI in a child process where selfsigned and azurite cannot be resolved. */
  function cli(...args: string[]) {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_PATH: join(root, 'node_modules') };
    return spawnSync(process.execPath, ['--require', preload, main, ...args], { cwd, env, encoding: 'utf8' });
  }

  it('cannot resolve them (the preload works)', () => {
    const probe = spawnSync(
      process.execPath,
      ['--require', preload, '-e', "require.resolve('azurite/dist/src/blob/main.js')"],
      { encoding: 'utf8' },
    );
    expect(probe.status).toBe(1);
    expect(probe.stderr).toMatch(/Cannot find module 'azurite\/dist\/src\/blob\/main.js'/);
  });

  it('prints the top-level help', () => {
    const result = cli('--help');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^ {2}sandbox +run one export cycle against the built-in local sandbox/m);
  });

  it.each(['status', 'download', 'backfill', 'run', 'sandbox'])('prints %s --help', (name) => {
    const result = cli(name, '--help');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^Usage: defender-export ${name}`));
  });

  it('loads a command that needs no development dependency (status reads its settings)', () => {
    const result = cli('status', '--settings', join(cwd, 'missing.json'));
    expect(result.stderr).not.toMatch(/Cannot find module/);
    expect(result.status).toBe(2);
  });

  it.each([['sandbox'], ['start']])('%s says what to install and exits 2', (name) => {
    const result = cli(name);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /the sandbox needs the development dependencies: run `npm ci` in a clone of the repository/,
    );
    expect(result.status).toBe(2);
  });
});
