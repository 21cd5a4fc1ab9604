// The operators' CLI as an operator installs it, on a machine that never cloned the repository: `npm pack` of a
// copy of the sources (its prepack builds dist/), `npm install -g` of the tarball into a temporary prefix with
// the production dependencies only, and the installed `defender-export` run as a child process from a folder
// outside the repository, with no NODE_PATH: status and download against the Azurite of this test run and an
// export the real exporter wrote; verify, run and backfill against the simulated tenant too. The development
// dependencies (selfsigned, azurite, …) are not installed at all.
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, sep } from 'node:path';
import { settingsFile } from '../support/cli';
import { duplicates, World } from '../support/world';
import type { RunSummary } from '../../src/export/exportRun';

const root = join(__dirname, '..', '..');
const HOUR = 3_600_000;

/** What a clone holds that a build does not need, or that the build makes. */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', '.deploy', '.sandbox', '.azure', 'coverage']);

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (or kills it after `timeoutInMs`) without blocking the event loop. */
function exec(
  file: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutInMs?: number },
): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      timeout: options.timeoutInMs ?? 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The node that runs jest comes first on PATH: npm and the bin's `#!/usr/bin/env node` use it. */
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;

/** npm's environment: this one, without what an enclosing `npm test` set for its own package. */
function npmEnv(): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !/^npm_(package|lifecycle)_/.test(name)),
    ),
    PATH,
  };
}

describe('defender-export installed from the packed tarball', () => {
  const work = mkdtempSync(join(tmpdir(), 'pack-install-'));
  const prefix = join(work, 'prefix');
  const home = join(work, 'home');
  const cwd = join(work, 'cwd');
  const installed = join(prefix, 'lib', 'node_modules', 'defender-incident-export');
  const bin = join(prefix, 'bin', 'defender-export');

  beforeAll(async () => {
    // A clone as `git clone` leaves it: no node_modules of its own, no dist/; the dependencies are linked in.
    const clone = join(work, 'clone');
    cpSync(root, clone, {
      recursive: true,
      filter: (source) => !NOT_COPIED.has(relative(root, source).split(sep)[0]!),
    });
    symlinkSync(realpathSync(join(root, 'node_modules')), join(clone, 'node_modules'), 'dir');
    for (const dir of [prefix, home, cwd]) mkdirSync(dir);

    const pack = await exec('npm', ['pack', '--pack-destination', work], {
      cwd: clone,
      env: npmEnv(),
      timeoutInMs: 180_000,
    });
    if (pack.code !== 0) throw new Error(`npm pack failed (exit ${pack.code}):\n${pack.stderr}`);
    const tarballs = readdirSync(work).filter((name) => name.endsWith('.tgz'));
    const { name, version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<
      string,
      string
    >;
    expect(tarballs).toEqual([`${name}-${version}.tgz`]);

    // As the README tells operators; --prefer-offline takes what the npm cache holds (`npm ci` filled it).
    const install = await exec(
      'npm',
      [
        'install',
        '--global',
        '--prefix',
        prefix,
        join(work, tarballs[0]!),
        '--omit=dev',
        '--prefer-offline',
        '--fetch-retries=1',
        '--no-audit',
        '--no-fund',
      ],
      { cwd: work, env: npmEnv(), timeoutInMs: 180_000 },
    );
    if (install.code !== 0)
      throw new Error(
        `npm install --global of the packed tarball failed (exit ${install.code}). It installs the production ` +
          'dependencies from the npm cache or the npm registry: check that the registry (`npm config get registry`) ' +
          `is reachable from this machine. npm said:\n${install.stderr}`,
      );
  }, 360_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** Runs the installed `defender-export`, from a folder outside the repository, with a bare environment. */
  function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exec> {
    return exec(bin, args, { cwd, env: { PATH, HOME: home, ...env } });
  }

  /**
   * Settings and environment that reach a world's simulated tenant from a child process: the client secret
   * itself instead of the vault (a child has no managed identity to read the vault with), and the tenant's
   * certificate authority through NODE_EXTRA_CA_CERTS
   * (https://nodejs.org/api/cli.html#node_extra_ca_certsfile).
   */
  function reaching(world: World): { settings: string; env: NodeJS.ProcessEnv } {
    const ca = join(work, `ca-${world.container.containerName}.pem`);
    writeFileSync(ca, world.tenant.ca);
    const settings = Object.fromEntries(
      Object.entries(world.settings).filter(([name]) => name !== 'KEY_VAULT_URL'),
    );
    return {
      settings: settingsFile({ ...settings, DEFENDER_CLIENT_SECRET: world.tenant.clientSecret }),
      env: { NODE_EXTRA_CA_CERTS: ca },
    };
  }

  it('installs the built CLI and the production dependencies, and none of the development ones', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const has = (name: string) => existsSync(join(installed, 'node_modules', ...name.split('/')));
    expect(Object.keys(manifest.dependencies).filter((name) => !has(name))).toEqual([]);
    // Type packages excepted: a production dependency may declare one (apache-arrow declares @types/node).
    const devOnly = Object.keys(manifest.devDependencies).filter((name) => !name.startsWith('@types/'));
    expect(devOnly.filter(has)).toEqual([]);
    expect(existsSync(join(installed, 'dist', 'src', 'cli', 'main.js'))).toBe(true);
    expect(readdirSync(installed).sort()).toEqual(['README.md', 'dist', 'node_modules', 'package.json']);
  });

  it('prints the top-level help', async () => {
    const result = await cli(['--help']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const name of ['download', 'backfill', 'status', 'verify', 'run', 'sandbox'])
      expect(result.stdout).toMatch(new RegExp(`^ {2}${name} +\\S`, 'm'));
  });

  it.each(['status', 'download', 'verify', 'backfill', 'run', 'sandbox'])(
    'prints %s --help',
    async (name) => {
      const result = await cli([name, '--help']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Usage: defender-export ${name}`));
    },
  );

  it.each([['sandbox'], ['start']])('%s says what to install and exits 2', async (name) => {
    const result = await cli([name]);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^Cannot find module 'azurite': the sandbox needs the development dependencies: run `npm ci` in a clone of the repository/,
    );
    expect(result.code).toBe(2);
  });

  describe('against an export the real exporter wrote to Azurite', () => {
    let world: World;
    let settings: string;
    let summary: RunSummary;
    const now = Date.now();
    beforeAll(async () => {
      world = await World.start();
      world.tenant.store.generate(12, { from: new Date(now - 5 * HOUR), to: new Date(now - 2 * HOUR) });
      summary = await world.run();
      expect(summary).toMatchObject({ outcome: 'succeeded', incidents: 12 });
      settings = settingsFile({
        EXPORT_STORAGE_CONNECTION_STRING: world.settings.EXPORT_STORAGE_CONNECTION_STRING!,
        EXPORT_CONTAINER: world.container.containerName,
      });
    });
    afterAll(async () => {
      await world.close();
    });

    it('status reports the checkpoint and the run, and exits 0 while fresh', async () => {
      const result = await cli(['status', '--settings', settings, '--json']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const status = JSON.parse(result.stdout) as {
        exportedUntil: string;
        isStale: boolean;
        runs: { runId: string; outcome: string; incidents: number }[];
      };
      expect(status.exportedUntil).toBe(summary.windowUntil);
      expect(status.isStale).toBe(false);
      expect(status.runs).toMatchObject([{ runId: summary.runId, outcome: 'succeeded', incidents: 12 }]);
    });

    it('download copies and verifies the exports and writes the latest version of each incident', async () => {
      const out = join(work, 'exports');
      const latest = join(work, 'latest.json');
      const from = new Date(now - 5 * HOUR).toISOString().slice(0, 10);
      const result = await cli([
        'download',
        '--from',
        from,
        '--out',
        out,
        '--latest',
        latest,
        '--json',
        '--settings',
        settings,
      ]);
      expect(result.code).toBe(0);
      const download = JSON.parse(result.stdout) as Record<string, unknown>;
      const dataBlobs = (await world.dataBlobNames()).length;
      expect(dataBlobs).toBeGreaterThan(0);
      expect(download).toMatchObject({
        blobs: dataBlobs,
        downloaded: dataBlobs,
        records: 12,
        verifiedByContentMd5: dataBlobs,
        verifiedByManifest: dataBlobs,
        latest: { file: latest, incidents: 12 },
      });
      const ids = (JSON.parse(readFileSync(latest, 'utf8')) as { id: string }[]).map((i) => i.id).sort();
      expect(ids).toEqual([...new Set((await world.exported()).map((v) => v.id))].sort());
    });

    it('verify audits the export against the incidents API and finds it complete', async () => {
      const from = new Date(now - 5 * HOUR).toISOString().slice(0, 10);
      const { settings: apiSettings, env } = reaching(world);
      const result = await cli(['verify', '--from', from, '--json', '--settings', apiSettings], env);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        listed: 12,
        exported: 12,
        missing: { count: 0 },
        duplicated: { count: 0 },
        isComplete: true,
      });
      expect(result.stdout + result.stderr).not.toContain(world.tenant.clientSecret);
    });
  });

  it('run exports one cycle as the Function does, and backfill the history before it', async () => {
    const world = await World.start();
    try {
      const now = Date.now();
      // Two within the first run's reach (EXPORT_INITIAL_LOOKBACK, PT48H by default), three before it.
      world.tenant.store.generate(5, { from: new Date(now - 3 * HOUR), to: new Date(now - HOUR) });
      world.tenant.store.generate(3, { from: new Date(now - 70 * HOUR), to: new Date(now - 60 * HOUR) });
      const ids = world.tenant.store
        .all()
        .map((i) => String(i.id))
        .sort();
      const { settings, env } = reaching(world);

      const run = await cli(['run', '--json', '--settings', settings], env);
      expect(run.code).toBe(0);
      const summary = JSON.parse(run.stdout) as RunSummary;
      expect(summary).toMatchObject({ outcome: 'succeeded', incidents: 5 });
      expect(run.stderr).toMatch(/export summary /);
      expect((await world.checkpoint())?.document).toMatchObject({ runId: summary.runId });

      const from = new Date(now - 72 * HOUR).toISOString().slice(0, 10);
      const backfill = await cli(['backfill', '--from', from, '--json', '--settings', settings], env);
      expect(backfill.code).toBe(0);
      expect(JSON.parse(backfill.stdout)).toMatchObject({ outcome: 'complete', incidents: 3 });

      const exported = await world.exported();
      expect(exported.map((v) => v.id).sort()).toEqual(ids);
      expect(duplicates(exported)).toEqual([]);
      for (const output of [run.stdout, run.stderr, backfill.stdout, backfill.stderr])
        expect(output).not.toContain(world.tenant.clientSecret);
    } finally {
      await world.close();
    }
  });
});
