import * as fc from 'fast-check';
import { BlobServiceClient } from '@azure/storage-blob';
import { createExporter } from '../../src/composition/compositionRoot';
import { parseConfig } from '../../src/config';
import type { CheckpointStore } from '../../src/export/ports';
import { parseTimestamp } from '../../src/export/timestamp';
import { runBackfill, type BackfillSummary } from '../../src/operations/backfill';
import { readExportBlob } from '../../src/operations/exportReader';
import { IncidentStore } from '../../src/sandbox/incidentStore';
import { Random } from '../../src/sandbox/random';
import { Scenario } from '../../src/sandbox/scenario';
import { SimulatedTenant } from '../../src/sandbox/simulatedTenant';
import { azuriteConnectionString, LogRecorder, wrapWriters } from '../support/world';
import { TenantTokenProvider } from '../support/memory/tenantTokenProvider';

/**
 * Concurrent backfill slices under kills, throttling and overlapping backfills: random histories (a crowd in one
 * slice, so that slices split), random concurrency, a Graph rate limit enforced with 429 + Retry-After, faults,
 * and attempts killed at a blob commit or a checkpoint write, some with a second, overlapping backfill at the
 * same time. After a final clean backfill: every version of the history exported once, none twice (backfill
 * and live exports together), nothing that did not exist, no secret anywhere.
 *
 * The API is the simulated tenant through the in-memory transport (virtual time: waits move its clock), the
 * storage a real Azurite (a backfill keeps its claims and slice checkpoints in Blob Storage).
 * PROPERTY_BACKFILL_RUNS sets the number of cases (default 4); a failure prints the seed to replay.
 */
const RUNS = Number(process.env.PROPERTY_BACKFILL_RUNS ?? 4);
const GIVEN_SEED = process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : undefined;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Kill = { at: 'afterCommit' | 'beforeCheckpoint' | 'afterCheckpoint'; n: number };

const attempt = fc.record({
  kill: fc.option(
    fc.record({
      at: fc.constantFrom('afterCommit' as const, 'beforeCheckpoint' as const, 'afterCheckpoint' as const),
      n: fc.integer({ min: 0, max: 12 }),
    }),
    { freq: 4 },
  ),
  concurrency: fc.integer({ min: 1, max: 5 }),
  // A second backfill at the same time, over a range that overlaps this one's.
  overlapping: fc.boolean(),
  fromDays: fc.integer({ min: 1, max: 4 }),
});

const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  pageSize: fc.integer({ min: 3, max: 9 }),
  spread: fc.integer({ min: 10, max: 80 }),
  crowd: fc.integer({ min: 0, max: 150 }),
  graphLimitPerMinute: fc.option(fc.integer({ min: 8, max: 40 }), { freq: 4 }),
  faultRate: fc.constantFrom(0, 0, 0.1),
  attempts: fc.array(attempt, { minLength: 1, maxLength: 3 }),
  finalConcurrency: fc.integer({ min: 1, max: 5 }),
});

class Killed extends Error {}

describe('backfill in concurrent slices under kills, throttling and overlapping backfills', () => {
  const totals = { cases: 0, attempts: 0, killed: 0, overlapping: 0, splits: 0, throttled: 0 };
  afterAll(() => process.stdout.write(`backfill property totals: ${JSON.stringify(totals)}\n`));

  it('exports every version of the history exactly once and leaks nothing', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (c) => {
        totals.cases++;
        const sim = { now: Date.UTC(2026, 10, 27) + (c.seed % DAY) };
        const tenant = SimulatedTenant.inMemory({
          clock: () => sim.now,
          store: new IncidentStore(c.seed, () => sim.now),
          ...(c.graphLimitPerMinute
            ? { graphLimit: { perWindow: c.graphLimitPerMinute, windowInMs: 60_000 } }
            : {}),
        });
        tenant.store.generate(c.spread, { from: new Date(sim.now - 5 * DAY), to: new Date(sim.now - HOUR) });
        const container = BlobServiceClient.fromConnectionString(
          azuriteConnectionString(),
        ).getContainerClient(`bfprop-${c.seed.toString(36)}-${totals.cases}`);
        const logs = new LogRecorder();
        const tokens = new TenantTokenProvider(tenant);
        const jitter = new Random(c.seed ^ 0xbacf);
        const config = parseConfig({
          DEFENDER_TENANT_ID: tenant.tenantId,
          DEFENDER_CLIENT_ID: tenant.clientId,
          DEFENDER_API: 'graph',
          DEFENDER_API_URL: tenant.origin,
          DEFENDER_AUTHORITY_HOST: tenant.origin,
          KEY_VAULT_URL: tenant.origin,
          EXPORT_STORAGE_CONNECTION_STRING: azuriteConnectionString(),
          EXPORT_CONTAINER: container.containerName,
          EXPORT_INCLUDE_ALERTS: 'false',
          EXPORT_SETTLE_DELAY: 'PT1M',
          EXPORT_INITIAL_LOOKBACK: 'PT30M',
        });
        const exporter = (kill: Kill | null) => {
          let commits = 0;
          let writes = 0;
          const killIf = (at: Kill['at'], count: number) => {
            if (kill?.at === at && kill.n === count) {
              totals.killed++;
              throw new Killed(`killed at ${at} #${count}`);
            }
          };
          return createExporter(config, {
            logger: logs,
            clock: { now: () => sim.now },
            azureCredential: tenant.managedIdentityCredential(),
            apiTransport: tenant.transport,
            getApiToken: tokens.getToken,
            pageSize: c.pageSize,
            http: {
              timeoutInMs: 2,
              random: () => jitter.next(),
              sleep: (ms) => {
                sim.now += ms;
                return new Promise((resolve) => setImmediate(resolve));
              },
            },
            azureRetry: { maxTries: 1, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
            wrapSink: wrapWriters((writer) => ({
              stage: (block) => writer.stage(block),
              commit: async (metadata) => {
                const committed = await writer.commit(metadata);
                killIf('afterCommit', commits++);
                return committed;
              },
            })),
            wrapCheckpoints: (store: CheckpointStore): CheckpointStore => ({
              read: (o) => store.read(o),
              write: async (document, etag, o) => {
                const n = writes++;
                killIf('beforeCheckpoint', n);
                const result = await store.write(document, etag, o);
                killIf('afterCheckpoint', n);
                return result;
              },
            }),
          });
        };
        const backfill = (
          fromDays: number,
          concurrency: number,
          kill: Kill | null,
        ): Promise<BackfillSummary> =>
          runBackfill(exporter(kill), {
            range: {
              fromTicks: BigInt(sim.now - fromDays * DAY) * 10_000n,
              toTicks: BigInt(sim.now) * 10_000n,
            },
            logger: logs,
            concurrency,
            minSplitSpanInMs: 1_000,
          });
        try {
          const live = await exporter(null).run();
          expect(live.outcome).toBe('succeeded');
          const liveStart = live.windowFrom;
          const script = new Scenario(tenant, {
            seed: c.seed,
            faultRate: c.faultRate,
            mutationRate: 0,
            maxLagInMs: 0,
            hostile: false,
            failExpandedPages: false,
            now: () => sim.now,
          });

          const liveStartMs = Number(parseTimestamp(liveStart)!.ticks / 10_000n);
          // A crowd in the last hours before the live start: the slice that holds it is split for the idle ones.
          if (c.crowd > 0)
            tenant.store.generate(c.crowd, {
              from: new Date(liveStartMs - 3 * HOUR),
              to: new Date(liveStartMs - 1),
            });

          for (const a of c.attempts) {
            totals.attempts++;
            const runs = [backfill(a.fromDays, a.concurrency, a.kill)];
            if (a.overlapping) {
              totals.overlapping++;
              runs.push(backfill(1 + (a.fromDays % 4), 1 + (a.concurrency % 5), null));
            }
            await Promise.allSettled(runs);
            sim.now += 1_000;
          }
          script.disable();
          let final = await backfill(5, c.finalConcurrency, null);
          // A segment another backfill had claimed is written now that none runs.
          for (let n = 0; final.outcome === 'concurrent' && n < 3; n++)
            final = await backfill(5, c.finalConcurrency, null);
          expect(final.outcome).toBe('complete');
          totals.throttled += tenant.graphThrottled;
          // Splits of every attempt, the killed ones too (each is logged when its cut is in the claims log).
          totals.splits += logs.lines.filter((l) => l.text.startsWith('Backfill: split ')).length;

          const versions: string[] = [];
          const texts: string[] = [logs.text];
          for await (const blob of container.listBlobsFlat({ includeMetadata: true })) {
            texts.push(blob.name, JSON.stringify(blob.metadata ?? {}));
            if (!blob.name.startsWith('incidents/')) {
              texts.push((await container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'));
              continue;
            }
            for (const raw of (await readExportBlob(container, blob.name)) as Record<string, unknown>[])
              versions.push(`${String(raw.id)}@${parseTimestamp(raw.lastUpdateDateTime)!.ticks}`);
          }
          // No duplicates, across backfill slices, overlapping backfills and the live export.
          expect(versions.length - new Set(versions).size).toBe(0);
          expect(versions.filter((v) => !tenant.store.versions.has(v))).toEqual([]);
          // Complete: every version of the history from the earliest backfill start up to the live start.
          const fromTicks = BigInt(sim.now - 5 * DAY) * 10_000n;
          const liveTicks = parseTimestamp(liveStart)!.ticks;
          const exported = new Set(versions);
          const missing = tenant.store
            .all()
            .map((i) => ({
              key: `${i.id}@${parseTimestamp(i.lastUpdateTime)!.ticks}`,
              t: parseTimestamp(i.lastUpdateTime)!.ticks,
            }))
            .filter(({ key, t }) => t >= fromTicks && t < liveTicks && !exported.has(key))
            .map(({ key }) => key);
          expect(missing).toEqual([]);
          const text = texts.join('\n');
          for (const secret of [tenant.clientSecret, ...tenant.issuedTokens.slice(-200)])
            expect(text.includes(secret)).toBe(false);
        } finally {
          await container.deleteIfExists();
        }
      }),
      {
        numRuns: Math.max(1, RUNS),
        ...(GIVEN_SEED !== undefined ? { seed: GIVEN_SEED } : {}),
        endOnFailure: true,
      },
    );
  }, 600_000);
});
