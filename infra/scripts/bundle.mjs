// Bundles the function into one file with esbuild (cold start: one file to read instead of hundreds of modules),
// with a source map, and writes the entry the Functions host loads (package.json "main"). The entry turns
// source maps on before it loads the bundle, so stack traces in Application Insights point at src/.
// Usage: node infra/scripts/bundle.mjs [OUT_DIR]   (part of npm run build; OUT_DIR defaults to dist/bundle)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = process.argv[2] ?? join(root, 'dist', 'bundle');

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
