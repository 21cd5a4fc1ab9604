// The deployed entry is the esbuild bundle that package.json "main" names (infra/scripts/bundle.mjs): it must
// register the same timer as the sources, with nothing but @azure/functions-core (the host's) outside it.
import type { FunctionsCoreMock } from '../support/functionsCoreMock';

jest.mock(
  '@azure/functions-core',
  () => jest.requireActual<FunctionsCoreMock>('../support/functionsCoreMock').functionsCore(),
  { virtual: true },
);

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

describe('the deployed bundle', () => {
  const out = mkdtempSync(join(tmpdir(), 'bundle-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('registers exportIncidents on EXPORT_SCHEDULE from the entry package.json names', () => {
    execFileSync(process.execPath, [join(root, 'infra', 'scripts', 'bundle.mjs'), out], { stdio: 'pipe' });
    const main = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string }).main;
    expect(main).toBe('dist/bundle/functions/*.js');
    const bundle = readFileSync(join(out, 'exportIncidents.js'), 'utf8');
    // Only the host's module stays outside the bundle.
    const external = [...bundle.matchAll(/require\("(@azure\/[^"]+)"\)/g)].map((m) => m[1]);
    expect([...new Set(external)]).toEqual(['@azure/functions-core']);

    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loading the built bundle as the host does
    require(join(out, 'functions', 'exportIncidents.js'));
    const core = jest.requireMock('@azure/functions-core');
    expect(core.registerFunction).toHaveBeenCalledTimes(1);
    const [metadata] = core.registerFunction.mock.calls[0] as [
      { name: string; bindings: Record<string, { type: string; schedule?: string; runOnStartup?: boolean }> },
    ];
    expect(metadata.name).toBe('exportIncidents');
    expect(Object.values(metadata.bindings).find((b) => b.type === 'timerTrigger')).toMatchObject({
      schedule: '%EXPORT_SCHEDULE%',
      runOnStartup: false,
    });
  });

  it('stages the package that azd deploys: host.json, the bundle and a package.json without dependencies', () => {
    const bundleDir = join(out, 'staged-bundle');
    const stage = join(out, 'package');
    execFileSync(process.execPath, [join(root, 'infra', 'scripts', 'bundle.mjs'), bundleDir, stage], {
      stdio: 'pipe',
    });
    const pkg = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8')) as Record<string, unknown>;
    const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg).toMatchObject({ main: rootPkg.main, type: rootPkg.type });
    expect(Object.keys(pkg).filter((k) => /dependencies|scripts/i.test(k))).toEqual([]);
    expect(readFileSync(join(stage, 'host.json'), 'utf8')).toBe(
      readFileSync(join(root, 'host.json'), 'utf8'),
    );
    expect(readdirSync(join(stage, 'dist', 'bundle', 'functions'))).toEqual(
      readdirSync(join(bundleDir, 'functions')),
    );
    // azd uploads the folder the default build stages, built locally (no platform npm install).
    const azureYaml = readFileSync(join(root, 'azure.yaml'), 'utf8');
    expect(azureYaml).toMatch(/^\s+dist: dist\/package$/m);
    expect(azureYaml).toMatch(/^\s+remoteBuild: false$/m);
    // azd refuses remoteBuild: false while a .funcignore at the project root excludes node_modules.
    expect(existsSync(join(root, '.funcignore'))).toBe(false);
  });
});
