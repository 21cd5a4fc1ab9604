// Bundles the function into one file with esbuild (cold start: one file to read instead of hundreds of modules),
// with a source map, and writes the entry the Functions host loads (package.json "main"). The entry turns
// source maps on before it loads the bundle, so stack traces in Application Insights point at src/.
// Usage: node infra/scripts/bundle.mjs [OUT_DIR [PACKAGE_DIR]]   (part of npm run build: dist/bundle, dist/package)
//
// The default build also stages the deployment package in dist/package: host.json, a package.json with only
// what the host reads ("main", "type") and the bundle, no node_modules. `azd deploy` uploads that folder
// (azure.yaml `dist`, a local build), and infra/scripts/package.sh zips it for the az CLI path.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = process.argv[2] ?? join(root, 'dist', 'bundle');
const stage = process.argv[2] === undefined ? join(root, 'dist', 'package') : process.argv[3];

await build({
  entryPoints: [join(root, 'src', 'functions', 'exportIncidents.ts')],
  outfile: join(out, 'exportIncidents.js'),
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  sourcemap: true,
  // Names and lines only: the sources are in the repository; a smaller map loads faster.
  sourcesContent: false,
  // Provided by the Functions host at run time; @azure/functions looks for it and runs in test mode without it.
  external: ['@azure/functions-core'],
  logLevel: 'warning',
});
mkdirSync(join(out, 'functions'), { recursive: true });
writeFileSync(
  join(out, 'functions', 'exportIncidents.js'),
  "'use strict';\nprocess.setSourceMapsEnabled(true);\nrequire('../exportIncidents.js');\n",
);

if (stage !== undefined) {
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'dist'), { recursive: true });
  cpSync(join(root, 'host.json'), join(stage, 'host.json'));
  cpSync(out, join(stage, 'dist', 'bundle'), { recursive: true });
  const { name, version, description, license, type, main } = JSON.parse(
    readFileSync(join(root, 'package.json'), 'utf8'),
  );
  // No dependencies: the bundle carries them, and nothing installs on the platform (no remote build).
  writeFileSync(
    join(stage, 'package.json'),
    `${JSON.stringify({ name, version, description, license, private: true, type, main }, null, 2)}\n`,
  );
}
