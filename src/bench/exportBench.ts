#!/usr/bin/env node
import { execFileSync, fork, type ChildProcess, type Serializable } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startAzurite, type AzuriteProcess } from '../sandbox/azurite';
import type { BenchTenantInfo, BenchTenantRequest } from './benchTenant';
import type { BenchJob, BenchResult } from './benchWorker';
import { DEFAULT_BACKFILL_CONCURRENCY } from '../operations/backfill';
import type { BenchTenantsInfo, BenchTenantsRequest } from './benchTenants';
import type { FanOutJob, FanOutResult } from './fanOutWorker';

const USAGE = `Usage: npm run bench -- [options]

Exports a generated backlog from the simulated tenant (HTTPS on 127.0.0.1, with latency) to a real Azurite,
each job in a fresh process, and prints what it measured.

Options:
  --incidents N         Graph backlog size (default 20000)
  --latency MS          latency added to every incidents API response (default 50)
  --legacy-incidents N  legacy backlog for the pacing measurement (default 4000; 0 skips it)
  --backfill-incidents N  Graph history for the backfill measurement (default 20000; 0 skips it): 1,000 ms a
                        page and limits of 300 and 120 requests a minute, time scaled down 10x
  --backfill-concurrency N  slices of the concurrent backfill (default ${DEFAULT_BACKFILL_CONCURRENCY})
  --tenants N           DEFENDER_TENANTS fan-out: N tenants through the queue path in one process (default 200;
                        0 skips it)
  --tenant-incidents N  backlog of each of those tenants (default 20)
  --json                print the results as JSON too`;

const MB = 1024 * 1024;
/**
 * Legacy limits scaled 10x in time (a "minute" of 6 s, an "hour" of 360 s): the allowed long-run rate is
 * 4.17 requests/s, one every 240 ms, still longer than a request takes, as one every 2.4 s is in reality.
 */
const SCALED = { perMinute: 50, perHour: 1500, minuteInMs: 6_000, hourInMs: 360_000 };
/** The backfill measurement, scaled 10x like the legacy one: 1,000 ms a page is 100 ms, a minute 6 s. */
const BACKFILL = { latencyInMs: 100, minuteInMs: 6_000, limitsPerMinute: [300, 120] };

interface Tenant {
  readonly info: BenchTenantInfo;
  readonly process: ChildProcess;
}

/** A simulated-tenant process of `script`, given `request`, once it answers with its info. */
async function startChild<Request extends Serializable, Info>(
  script: string,
  request: Request,
  maxOldSpaceInMb: number,
): Promise<{ info: Info; process: ChildProcess }> {
  const child = fork(join(__dirname, script), [], {
    execArgv: [`--max-old-space-size=${maxOldSpaceInMb}`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const info = await new Promise<Info>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Info));
    child.once('exit', (code) => reject(new Error(`the bench's ${script} exited with code ${code}`)));
    child.send(request);
  });
  child.removeAllListeners('exit');
  return { info, process: child };
}

function startTenant(request: BenchTenantRequest): Promise<Tenant> {
  return startChild<BenchTenantRequest, BenchTenantInfo>('benchTenant.js', request, 16384);
}

/** Runs one job in a fresh process of `script` (so that its peak memory is its own) and takes its answer. */
function runIn<J extends { mode: string }, R>(script: string, job: J): Promise<R> {
  const child = fork(join(__dirname, script), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<R>((resolve, reject) => {
    child.once('message', (m) => resolve(m as R));
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the bench ${job.mode} job exited with code ${code}`));
    });
    child.send(job);
  });
}

function runJob(job: BenchJob): Promise<BenchResult> {
  return runIn<BenchJob, BenchResult>('benchWorker.js', job);
}

/** The simulated tenants of the fan-out, in a process of their own. */
function startTenants(
  request: BenchTenantsRequest,
): Promise<{ info: BenchTenantsInfo; process: ChildProcess }> {
  return startChild<BenchTenantsRequest, BenchTenantsInfo>('benchTenants.js', request, 4096);
}

/** The Function's settings for the fan-out's tenants, each with its own container. */
function tenantsSettings(info: BenchTenantsInfo, azurite: AzuriteProcess, prefix: string) {
  return {
    DEFENDER_TENANTS: JSON.stringify(
      info.tenantIds.map((tenantId, i) => ({ tenantId, container: `${prefix}-${i}`, name: `t${i}` })),
    ),
    DEFENDER_CLIENT_ID: info.clientId,
    DEFENDER_API_URL: info.origin,
    DEFENDER_AUTHORITY_HOST: info.origin,
    DEFENDER_CLIENT_SECRET: info.clientSecret,
    EXPORT_STORAGE_CONNECTION_STRING: azurite.connectionString,
    EXPORT_QUEUE: `${prefix}-queue`,
    EXPORT_INITIAL_LOOKBACK: 'PT48H',
    EXPORT_SETTLE_DELAY: 'PT1M',
  };
}

function settings(tenant: BenchTenantInfo, azurite: AzuriteProcess, api: string, container: string) {
  return {
    DEFENDER_TENANT_ID: tenant.tenantId,
    DEFENDER_CLIENT_ID: tenant.clientId,
    DEFENDER_API: api,
    DEFENDER_API_URL: tenant.origin,
    DEFENDER_AUTHORITY_HOST: tenant.origin,
    DEFENDER_CLIENT_SECRET: tenant.clientSecret,
    EXPORT_STORAGE_CONNECTION_STRING: azurite.connectionString,
    EXPORT_CONTAINER: container,
    EXPORT_INITIAL_LOOKBACK: 'PT48H',
    EXPORT_SETTLE_DELAY: 'PT1M',
    EXPORT_MAX_RUN_DURATION: 'PT4H',
  };
}

/** Median time to load a module in a fresh Node process (only the require, not the process start). */
function loadTimeInMs(modulePath: string, runs = 7): number {
  const script = `const t = performance.now(); require(${JSON.stringify(modulePath)}); process.stdout.write(String(performance.now() - t));`;
  const times = Array.from({ length: runs }, () =>
    Number(
      execFileSync(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
    ),
  ).sort((a, b) => a - b);
  return times[Math.floor(runs / 2)]!;
}

const fixed = (n: number, digits = 1): string => n.toFixed(digits);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      incidents: { type: 'string', default: '20000' },
      latency: { type: 'string', default: '50' },
      'legacy-incidents': { type: 'string', default: '4000' },
      'backfill-incidents': { type: 'string', default: '20000' },
      'backfill-concurrency': { type: 'string', default: String(DEFAULT_BACKFILL_CONCURRENCY) },
      tenants: { type: 'string', default: '200' },
      'tenant-incidents': { type: 'string', default: '20' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const incidents = Number(values.incidents);
  const latencyInMs = Number(values.latency);
  const legacyIncidents = Number(values['legacy-incidents']);
  const backfillIncidents = Number(values['backfill-incidents']);
  const backfillConcurrency = Number(values['backfill-concurrency']);
  const tenantCount = Number(values.tenants);
  const tenantIncidents = Number(values['tenant-incidents']);
  if (
    ![
      incidents,
      latencyInMs,
      legacyIncidents,
      backfillIncidents,
      backfillConcurrency,
      tenantCount,
      tenantIncidents,
    ].every((n) => Number.isInteger(n) && n >= 0)
  ) {
    process.stderr.write(`--incidents, --latency and the other counts take whole numbers.\n${USAGE}\n`);
    return 2;
  }
  const benchStarted = performance.now();
  const now = Date.now();
  const range = { from: now - 47 * 3_600_000, to: now - 10 * 60_000 };
  const rows: [string, string][] = [];
  const results: Record<string, unknown> = { incidents, latencyInMs, legacyIncidents };
  const azurite = await startAzurite();
  try {
    process.stderr.write(`generating ${incidents} incidents in the simulated tenant...\n`);
    const graph = await startTenant({ incidents, latencyInMs, legacyLimits: SCALED, ...range });
    try {
      process.stderr.write('fetch floor...\n');
      const floor = await runJob({
        mode: 'floor',
        ca: graph.info.ca,
        settings: settings(graph.info, azurite, 'graph', 'bench-floor'),
      });
      process.stderr.write('export...\n');
      const exported = await runJob({
        mode: 'export',
        ca: graph.info.ca,
        settings: settings(graph.info, azurite, 'graph', `bench-graph-${now}`),
      });
      const seconds = exported.durationInMs / 1000;
      results.graph = { floor, export: exported };
      rows.push(
        ['Graph backlog', `${incidents} incidents with alerts, ${latencyInMs} ms latency`],
        [
          'export',
          `${fixed(seconds)} s, ${exported.incidents} incidents, ${exported.pages} pages, ${exported.requests} requests, outcome ${exported.outcome}`,
        ],
        [
          'throughput',
          `${fixed(exported.incidents / seconds, 0)} incidents/s, ${fixed(exported.bytes / MB / seconds, 2)} MB/s (${fixed(exported.bytes / MB)} MB written, ${fixed(exported.bytes / 1024 / Math.max(1, exported.incidents))} KB per incident)`,
        ],
        [
          'fetch floor',
          `${fixed(floor.durationInMs / 1000)} s for ${floor.pages} pages, ${floor.incidents} incidents`,
        ],
        ['export / fetch floor', fixed(exported.durationInMs / floor.durationInMs, 3)],
        // Time slices aim at 70% of a page and ask again when one comes back full: the price of depending on no
        // order (a page holds 50).
        [
          'incidents per request',
          `${fixed(exported.incidents / Math.max(1, exported.requests), 1)} of 50 a page holds`,
        ],
        [
          'peak RSS of the exporter',
          `${fixed(exported.maxRssBytes / MB, 0)} MB (fetch floor process: ${fixed(floor.maxRssBytes / MB, 0)} MB)`,
        ],
      );
    } finally {
      graph.process.disconnect();
    }

    if (legacyIncidents > 0) {
      process.stderr.write(`legacy pacing with ${legacyIncidents} incidents...\n`);
      const legacy = await startTenant({
        incidents: legacyIncidents,
        latencyInMs,
        legacyLimits: SCALED,
        ...range,
      });
      try {
        const exported = await runJob({
          mode: 'export',
          ca: legacy.info.ca,
          settings: settings(legacy.info, azurite, 'legacy', `bench-legacy-${now}`),
          legacyLimits: [
            { limit: SCALED.perMinute, windowInMs: SCALED.minuteInMs },
            { limit: SCALED.perHour, windowInMs: SCALED.hourInMs },
          ],
        });
        const allowed =
          Math.min(SCALED.perMinute / SCALED.minuteInMs, SCALED.perHour / SCALED.hourInMs) * 1000;
        const achieved = exported.requests / (exported.durationInMs / 1000);
        results.legacy = { export: exported, allowedPerSecond: allowed, achievedPerSecond: achieved };
        rows.push(
          [
            'legacy pacing',
            `limits 50/"minute" of ${SCALED.minuteInMs / 1000} s and 1,500/"hour" of ${SCALED.hourInMs / 1000} s: ${fixed(allowed, 2)} requests/s allowed`,
          ],
          [
            'legacy export',
            `${fixed(exported.durationInMs / 1000)} s, ${exported.incidents} incidents, ${exported.requests} requests (${fixed(exported.incidents / Math.max(1, exported.requests), 1)} per request of 100 a page holds), outcome ${exported.outcome}`,
          ],
          [
            'achieved / allowed rate',
            `${fixed(achieved, 2)} / ${fixed(allowed, 2)} = ${fixed(achieved / allowed, 3)}; 429 received: ${exported.throttles}`,
          ],
        );
      } finally {
        legacy.process.disconnect();
      }
    }

    if (backfillIncidents > 0) {
      const measured = [];
      for (const perMinute of BACKFILL.limitsPerMinute) {
        process.stderr.write(
          `backfill of ${backfillIncidents} incidents at ${perMinute} requests/"minute"...\n`,
        );
        const tenant = await startTenant({
          incidents: backfillIncidents,
          latencyInMs: BACKFILL.latencyInMs,
          legacyLimits: SCALED,
          graphLimit: { perWindow: perMinute, windowInMs: BACKFILL.minuteInMs, retryAfterInMs: true },
          ...range,
        });
        try {
          const job = (concurrency: number, container: string): Promise<BenchResult> =>
            runJob({
              mode: 'backfill',
              ca: tenant.info.ca,
              settings: {
                ...settings(tenant.info, azurite, 'graph', container),
                // The live export covers the last minutes only; everything before is history to backfill.
                EXPORT_INITIAL_LOOKBACK: 'PT5M',
              },
              concurrency,
              pacing: { rateWindowInMs: BACKFILL.minuteInMs },
              backfillFrom: new Date(range.from - 3_600_000).toISOString(),
            });
          const sequential = await job(1, `bench-backfill1-${perMinute}-${now}`);
          // A fresh rate window for the concurrent job (the sequential one stayed under the limit anyway).
          await new Promise((resolve) => setTimeout(resolve, BACKFILL.minuteInMs));
          const concurrent = await job(
            backfillConcurrency,
            `bench-backfill${backfillConcurrency}-${perMinute}-${now}`,
          );
          const allowed = perMinute / (BACKFILL.minuteInMs / 1000);
          const achieved = (concurrent.requests - concurrent.throttles) / (concurrent.durationInMs / 1000);
          measured.push({
            perMinute,
            sequential,
            concurrent,
            allowedPerSecond: allowed,
            achievedPerSecond: achieved,
          });
          rows.push(
            [
              `backfill at ${perMinute}/min`,
              `${concurrent.incidents} incidents, 1,000 ms a page, ${perMinute} requests a minute (scaled 10x: ${BACKFILL.latencyInMs} ms, ${fixed(allowed, 0)} requests/s)`,
            ],
            [
              '  sequential (--concurrency 1)',
              `${fixed(sequential.durationInMs / 1000)} s, ${sequential.requests} requests, 429s ${sequential.throttles}, outcome ${sequential.outcome}`,
            ],
            [
              `  concurrent (--concurrency ${backfillConcurrency})`,
              `${fixed(concurrent.durationInMs / 1000)} s, ${concurrent.requests} requests, 429s ${concurrent.throttles}, ${concurrent.splits ?? 0} splits, outcome ${concurrent.outcome}`,
            ],
            ['  speed-up', `${fixed(sequential.durationInMs / concurrent.durationInMs, 2)}x`],
            [
              '  achieved / allowed rate',
              `${fixed(achieved, 1)} / ${fixed(allowed, 1)} requests/s = ${fixed(achieved / allowed, 3)}`,
            ],
            [
              '  peak RSS',
              `${fixed(concurrent.maxRssBytes / MB, 0)} MB concurrent, ${fixed(sequential.maxRssBytes / MB, 0)} MB sequential`,
            ],
          );
        } finally {
          tenant.process.disconnect();
        }
      }
      results.backfill = measured;
    }

    if (tenantCount > 0) {
      process.stderr.write(`fan-out of ${tenantCount} tenants with ${tenantIncidents} incidents each...\n`);
      const tenants = await startTenants({
        customers: tenantCount,
        incidentsPerTenant: tenantIncidents,
        latencyInMs,
      });
      try {
        const job = (mode: FanOutJob['mode'], prefix: string): Promise<FanOutResult> =>
          runIn<FanOutJob, FanOutResult>('fanOutWorker.js', {
            mode,
            ca: tenants.info.ca,
            connectionString: azurite.connectionString,
            settings: tenantsSettings(tenants.info, azurite, prefix),
          });
        const floor = await job('floor', `bfloor-${now}`);
        const fanOut = await job('fanout', `bfan-${now}`);
        const overheadInMs = fanOut.perTenantMeanInMs - floor.perTenantMeanInMs;
        const wallPerTenantInMs = fanOut.durationInMs / Math.max(1, fanOut.tenants);
        results.fanOut = { floor, fanOut, overheadPerTenantInMs: overheadInMs, wallPerTenantInMs };
        rows.push(
          [
            'tenant fan-out',
            `${fanOut.tenants} tenants, ${tenantIncidents} incidents each, ${latencyInMs} ms latency, through the queue (Azurite), ${fanOut.concurrency} at once (host.json batchSize + newBatchThreshold)`,
          ],
          [
            'fan-out cycle',
            `${fixed(fanOut.durationInMs / 1000)} s for ${fanOut.succeeded}/${fanOut.tenants} tenants succeeded, ${fanOut.incidents} incidents, ${fanOut.requests} API requests; ${fixed(wallPerTenantInMs, 0)} ms of wall time per tenant`,
          ],
          [
            'per tenant: run / its fetch',
            `run ${fixed(fanOut.perTenantMeanInMs, 0)} ms (p95 ${fixed(fanOut.perTenantP95InMs, 0)}) / fetch ${fixed(floor.perTenantMeanInMs, 0)} ms (p95 ${fixed(floor.perTenantP95InMs, 0)}): ${fixed(overheadInMs, 0)} ms beyond its own fetch`,
          ],
          [
            'peak RSS of the fan-out',
            `${fixed(fanOut.maxRssBytes / MB, 0)} MB for ${fanOut.tenants} tenants' exporters (fetch floor process: ${fixed(floor.maxRssBytes / MB, 0)} MB)`,
          ],
        );
      } finally {
        tenants.process.disconnect();
      }
    }

    const unbundled = join(__dirname, '..', 'functions', 'exportIncidents.js');
    const bundled = join(__dirname, '..', '..', 'bundle', 'functions', 'exportIncidents.js');
    const load = {
      unbundled: loadTimeInMs(unbundled),
      bundled: existsSync(bundled) ? loadTimeInMs(bundled) : undefined,
    };
    results.moduleLoadInMs = load;
    rows.push([
      'function module load (median of 7)',
      `unbundled ${fixed(load.unbundled, 0)} ms` +
        (load.bundled === undefined
          ? ' (no bundle: npm run bundle)'
          : `, bundled ${fixed(load.bundled, 0)} ms`),
    ]);
  } finally {
    await azurite.stop();
  }

  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n| ${'measure'.padEnd(width)} | result |\n|${'-'.repeat(width + 2)}|---|\n`);
  for (const [k, v] of rows) process.stdout.write(`| ${k.padEnd(width)} | ${v} |\n`);
  process.stdout.write(`\nbench total: ${fixed((performance.now() - benchStarted) / 1000, 0)} s\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (thrown: unknown) => {
    process.stderr.write(`bench failed: ${thrown instanceof Error ? thrown.message : String(thrown)}\n`);
    process.exitCode = 1;
  },
);
