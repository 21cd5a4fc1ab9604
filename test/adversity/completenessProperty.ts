import { writeFileSync } from 'node:fs';
import * as fc from 'fast-check';
import { BlobServiceClient } from '@azure/storage-blob';
import { BlobCheckpointStore } from '../../src/sink/blobExportStore';
import { createExporter, type CompositionOptions } from '../../src/composition/compositionRoot';
import { parseConfig } from '../../src/config';
import { parseTimestamp } from '../../src/export/timestamp';
import type { CheckpointDocument, CheckpointStore } from '../../src/export/ports';
import { readExportBlob } from '../../src/operations/exportReader';
import { IncidentStore } from '../../src/sandbox/incidentStore';
import { Random } from '../../src/sandbox/random';
import { Scenario } from '../../src/sandbox/scenario';
import { SimulatedTenant } from '../../src/sandbox/simulatedTenant';
import { azuriteConnectionString, LogRecorder, wrapWriters } from '../support/world';
import { MemoryCheckpointStore } from '../support/memory/memoryCheckpointStore';
import { MemoryExportSink } from '../support/memory/memoryExportSink';
import { TenantTokenProvider } from '../support/memory/tenantTokenProvider';

/**
 * Random histories and random run schedules against the simulated tenant, with faults at every step. After a
 * final clean run: complete, no duplicates, monotone checkpoint, no secret anywhere.
 *
 * Most cases run in memory: the real ApiClient, token handling and Graph or legacy source against the tenant's
 * routes through an in-memory transport, and the export core over memory ports with the Blob sink's semantics.
 * About one case in PROPERTY_AZURITE_EVERY (default 20; 0 for none) takes the real path instead, HTTPS and
 * MSAL to the tenant and a real Azurite, so the SDK's create-only writes and ETags stay covered.
 * `npm run test:soak` runs many more cases; a failure prints the seed and the shrunk case to replay it.
 */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 200);
const AZURITE_EVERY = Number(process.env.PROPERTY_AZURITE_EVERY ?? 50);
/** The cases are split over this many test files, so that jest runs them on its two workers at once. */
export const SHARDS = 2;
const REPLAY_PATH = process.env.PROPERTY_PATH;
/** `azurite` or `memory`: every case on that path, whatever it drew (to compare the two on one seed). */
const VIA = process.env.PROPERTY_VIA;
if (VIA !== undefined && VIA !== 'azurite' && VIA !== 'memory')
  throw new Error(`PROPERTY_VIA must be 'azurite' or 'memory', not '${VIA}'.`);
/** A counterexample as printed (JSON), run alone; edit `viaAzurite` to run it on the other path. */
const REPLAY_CASE = process.env.PROPERTY_CASE;
const TRACE = process.env.PROPERTY_TRACE;
const GIVEN_SEED = process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : undefined;
const SETTLE_MS = 5 * 60_000;
const LEGACY_LIMITS = { perMinute: 50, perHour: 1500 };
/** Fixed, so that a memory case's blob names (which digest the tenant) are the same on every replay. */
const MEMORY_TENANT_ID = '5b1f0c3e-7a2d-4e8f-9c61-2d4b8a0e7f13';
const MEMORY_CLIENT_ID = 'c7e2a9d4-3b5f-4a10-8e6c-1f9d2b7a4c58';
const SAFE_BLOB_NAME = /^(incidents|runs|state|quarantine)\/[0-9A-Za-z][0-9A-Za-z/.-]*$/;

type Kill = { at: 'stage' | 'afterCommit' | 'beforeCheckpoint' | 'afterCheckpoint'; n: number };
type Step =
  | { kind: 'advance'; ms: number }
  | { kind: 'change'; count: number }
  | { kind: 'tie'; count: number }
  | { kind: 'run'; kill: Kill | null; concurrent: boolean; settings: number }
  | { kind: 'loseCheckpoint' };

/** The EXPORT_FORMAT and EXPORT_COMPRESSION a run may be configured with (an operator changing them). */
const FORMATS = [
  ['json', 'none'],
  ['jsonl', 'gzip'],
  ['json', 'gzip'],
  ['jsonl', 'none'],
] as const;

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 1_000, max: 4 * 3_600_000 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('change' as const), count: fc.integer({ min: 1, max: 12 }) }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('tie' as const), count: fc.integer({ min: 2, max: 14 }) }),
    weight: 1,
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('run' as const),
      kill: fc.option(
        fc.record({
          at: fc.constantFrom(
            'stage' as const,
            'afterCommit' as const,
            'beforeCheckpoint' as const,
            'afterCheckpoint' as const,
          ),
          n: fc.integer({ min: 0, max: 3 }),
        }),
        { freq: 3 },
      ),
      concurrent: fc.boolean(),
      settings: fc.integer({ min: 0, max: FORMATS.length - 1 }),
    }),
  },
  // The checkpoint is deleted (or EXPORT_STATE_CONTAINER set apart): the next run finds the chain.
  { arbitrary: fc.constant({ kind: 'loseCheckpoint' as const }), weight: 1 },
);

const scenario = fc
  .record({
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    api: fc.constantFrom('graph' as const, 'legacy' as const),
    pageSize: fc.integer({ min: 2, max: 7 }),
    format: fc.constantFrom('json', 'jsonl'),
    compression: fc.constantFrom('none', 'gzip'),
    faultRate: fc.constantFrom(0, 0.1, 0.25),
    mutationRate: fc.constantFrom(0, 0.3),
    hostile: fc.boolean(),
    failExpandedPages: fc.boolean(),
    // The operator changes EXPORT_FORMAT / EXPORT_COMPRESSION between runs (and concurrent runs disagree).
    formatChanges: fc.boolean(),
    // The host's clock against the API's: in step, ahead by more than the settle delay, or behind.
    hostClockAheadInMs: fc.constantFrom(0, 0, 20 * 60_000, -3 * 60_000),
    // Updates become visible up to the settle delay late, or up to 40 minutes (caught by EXPORT_REREAD_WINDOW).
    lagBeyondSettle: fc.boolean(),
    paging: fc.record({
      nextLinkQuirk: fc.constantFrom(
        'none' as const,
        'omitOnFullPage' as const,
        'skipCap' as const,
        'repeat' as const,
      ),
      filterPrecision: fc.constantFrom('exact' as const, 'ms' as const),
      legacyServerPageCap: fc.option(fc.integer({ min: 2, max: 4 })),
      // `$orderby` is undocumented for Graph: the export must not depend on it, whatever the API does with it.
      graphOrderBy: fc.constantFrom('honour' as const, 'ignore' as const, 'refuse' as const),
      unplaceable: fc.option(fc.integer({ min: 2, max: 9 }), { freq: 3 }),
    }),
    steps: fc.array(step, { minLength: 3, maxLength: 12 }),
    // Part of the case, so that PROPERTY_PATH replays it on the same path (shrinking prefers Azurite).
    viaAzurite:
      AZURITE_EVERY > 0
        ? fc.integer({ min: 0, max: AZURITE_EVERY - 1 }).map((n) => n === 0)
        : fc.constant(false),
  })
  // Indexing lag beyond the settle delay is caught by the re-read, which every caught-up run repeats. Against the
  // legacy API (50 requests a minute) with this test's pages of two to seven rows, an hour of churn cannot be
  // re-read within half a run's budget: the re-read then goes on from a cursor over several runs, and this
  // property does not prove that path yet (README, "Reliability"). Late indexing is drawn for Graph cases only;
  // the legacy re-read is covered by the deterministic tests in test/export/lateAndSkew.test.ts.
  .map((c) => (c.api === 'legacy' && c.lagBeyondSettle ? { ...c, lagBeyondSettle: false } : c));

type Case = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Where a case's exports and checkpoint live: a container on Azurite, or memory ports. */
interface CaseStorage {
  readonly checkpoints: CheckpointStore;
  /** What the exporter is given instead of the Blob sink and store (nothing on Azurite). */
  readonly composition: Partial<CompositionOptions>;
  readonly containerName: string;
  loseCheckpoint(): Promise<void>;
  /** Every stored name, its text where it is not an export, and the records of every export. */
  contents(): Promise<{ names: string[]; texts: string[]; exports: Record<string, unknown>[][] }>;
  dispose(): Promise<void>;
}

function azuriteStorage(name: string): CaseStorage {
  const container =
    BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(name);
  return {
    checkpoints: new BlobCheckpointStore(container),
    composition: {},
    containerName: name,
    loseCheckpoint: async () => {
      if (await container.exists())
        await container.getBlockBlobClient('state/checkpoint.json').deleteIfExists();
    },
    contents: async () => {
      const names: string[] = [];
      const texts: string[] = [];
      const exports: Record<string, unknown>[][] = [];
      for await (const blob of container.listBlobsFlat({ includeMetadata: true })) {
        names.push(blob.name);
        texts.push(blob.name, JSON.stringify(blob.metadata ?? {}));
        if (!blob.name.startsWith('incidents/')) {
          texts.push((await container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'));
          continue;
        }
        exports.push((await readExportBlob(container, blob.name)) as Record<string, unknown>[]);
      }
      return { names, texts, exports };
    },
    dispose: async () => {
      await container.deleteIfExists();
    },
  };
}

function memoryStorage(name: string, tenant: SimulatedTenant): CaseStorage {
  const sink = new MemoryExportSink();
  const checkpoints = new MemoryCheckpointStore();
  const tokens = new TenantTokenProvider(tenant);
  return {
    checkpoints,
    composition: { sink, apiTransport: tenant.transport, getApiToken: tokens.getToken },
    containerName: name,
    loseCheckpoint: () => {
      checkpoints.delete();
      return Promise.resolve();
    },
    contents: async () => {
      const names: string[] = checkpoints.text === undefined ? [] : ['state/checkpoint.json'];
      const texts: string[] = checkpoints.text === undefined ? [] : [checkpoints.text];
      const exports: Record<string, unknown>[][] = [];
      for (const blobName of sink.names()) {
        const blob = sink.blobs.get(blobName)!;
        names.push(blobName);
        texts.push(blobName, JSON.stringify(blob.metadata));
        if (!blobName.startsWith('incidents/')) texts.push(blob.body.toString('utf8'));
        else exports.push((await sink.readRecords(blobName)) as Record<string, unknown>[]);
      }
      return { names, texts, exports };
    },
    dispose: () => Promise.resolve(),
  };
}

class Killed extends Error {}

/**
 * One shard of the property: its share of PROPERTY_RUNS, from its own seed (PROPERTY_SEED + shard when given).
 * A replay (PROPERTY_PATH) runs the given seed exactly, in shard 0 only.
 */
export function describeCompleteness(shard: number): void {
  const replaying = REPLAY_PATH !== undefined || REPLAY_CASE !== undefined;
  const SEED = replaying ? GIVEN_SEED! : ((GIVEN_SEED ?? Date.now() % 2 ** 31) + shard) % 2 ** 31;
  const runs = replaying
    ? shard === 0
      ? 1
      : 0
    : Math.floor(RUNS / SHARDS) + (shard < RUNS % SHARDS ? 1 : 0);
  const totals = {
    seed: SEED,
    shard,
    cases: 0,
    byApi: { graph: 0, legacy: 0 },
    runs: 0,
    concurrentRuns: 0,
    killed: 0,
    killedAt: {} as Record<string, number>,
    tiedIncidents: 0,
    hostileCases: 0,
    formatChangeCases: 0,
    checkpointLosses: 0,
    skewedCases: 0,
    lateIndexingCases: 0,
    lateVersionsFound: 0,
    finalRunsAfterBudget: 0,
    hugeIncidents: 0,
    azuriteCases: 0,
    faults: {} as Record<string, number>,
  };

  (runs > 0 ? describe : describe.skip)(
    `completeness under random histories, schedules, kills and faults (shard ${shard + 1} of ${SHARDS})`,
    () => {
      /** The HTTPS tenant of the Azurite cases, and its clock. */
      let shared: SimulatedTenant;
      const sharedSim = { now: 0 };
      beforeAll(async () => {
        shared = await SimulatedTenant.start({
          clock: () => sharedSim.now,
          legacyLimits: LEGACY_LIMITS,
        });
      });
      afterAll(async () => {
        await shared.close();
        // Replay any failure with PROPERTY_SEED=<seed>.
        process.stdout.write(`property totals: ${JSON.stringify(totals)}\n`);
      });

      it('exports every latest version exactly once, never moves back, and leaks nothing', async () => {
        await fc.assert(
          fc.asyncProperty(scenario, async (generated) => {
            const c = VIA === undefined ? generated : { ...generated, viaAzurite: VIA === 'azurite' };
            // A case that never ends cannot be reported by fast-check: PROPERTY_TRACE=<file> keeps the case in
            // progress in <file>.<shard>, to replay with PROPERTY_CASE.
            if (TRACE) writeFileSync(`${TRACE}.${shard}`, JSON.stringify(c));
            totals.cases++;
            totals.byApi[c.api]++;
            if (c.hostile) totals.hostileCases++;
            if (c.formatChanges) totals.formatChangeCases++;
            if (c.hostClockAheadInMs !== 0) totals.skewedCases++;
            if (c.lagBeyondSettle) totals.lateIndexingCases++;
            let sim: { now: number };
            let tenant: SimulatedTenant;
            if (c.viaAzurite) {
              // Time only moves forward, across cases too (the tenant's tokens and legacy quota live on).
              sim = sharedSim;
              sim.now = Math.max(sim.now, Date.UTC(2026, 10, 20)) + 7 * 86_400_000 + (c.seed % 86_400_000);
              tenant = shared;
              tenant.store = new IncidentStore(c.seed, () => sharedSim.now);
            } else {
              // A tenant and a clock of its own: the case alone decides what happens, so PROPERTY_CASE replays it.
              const own = { now: Date.UTC(2026, 10, 27) + (c.seed % 86_400_000) };
              sim = own;
              tenant = SimulatedTenant.inMemory({
                clock: () => own.now,
                legacyLimits: LEGACY_LIMITS,
                tenantId: MEMORY_TENANT_ID,
                clientId: MEMORY_CLIENT_ID,
                store: new IncidentStore(c.seed, () => own.now),
              });
            }
            const script = new Scenario(tenant, {
              seed: c.seed,
              faultRate: c.faultRate,
              mutationRate: c.mutationRate,
              maxLagInMs: c.lagBeyondSettle ? 40 * 60_000 : SETTLE_MS,
              hostile: c.hostile,
              failExpandedPages: c.failExpandedPages,
              ...c.paging,
              now: () => sim.now,
            });
            if (c.seed % 17 === 0) {
              script.huge(4 * 1024 * 1024);
              totals.hugeIncidents++;
            }
            if (c.viaAzurite) totals.azuriteCases++;
            const storageName = `prop-${c.seed.toString(36)}-${totals.cases}`;
            const storage = c.viaAzurite ? azuriteStorage(storageName) : memoryStorage(storageName, tenant);
            const logs = new LogRecorder();
            const settingsOf = (index: number) => ({
              DEFENDER_TENANT_ID: tenant.tenantId,
              DEFENDER_CLIENT_ID: tenant.clientId,
              DEFENDER_API: c.api,
              DEFENDER_API_URL: tenant.origin,
              DEFENDER_AUTHORITY_HOST: tenant.origin,
              KEY_VAULT_URL: tenant.origin,
              EXPORT_STORAGE_CONNECTION_STRING: azuriteConnectionString(),
              EXPORT_CONTAINER: storage.containerName,
              EXPORT_FORMAT: c.formatChanges ? FORMATS[index]![0] : c.format,
              EXPORT_COMPRESSION: c.formatChanges ? FORMATS[index]![1] : c.compression,
              EXPORT_SETTLE_DELAY: 'PT5M',
              EXPORT_REREAD_WINDOW: 'PT1H',
            });
            const watermarks: bigint[] = [];
            const jitter = new Random(c.seed ^ 0x5eed);
            const checkpoints = storage.checkpoints;
            const exporter = (kill: Kill | null, settings = 0) => {
              let stages = 0;
              let commits = 0;
              let writes = 0;
              const killIf = (at: Kill['at'], count: number) => {
                if (kill?.at === at && kill.n === count) {
                  totals.killed++;
                  totals.killedAt[at] = (totals.killedAt[at] ?? 0) + 1;
                  throw new Killed(`killed at ${at} #${count}`);
                }
              };
              const wrapSink = wrapWriters((writer) => ({
                stage: async (block) => {
                  killIf('stage', stages++);
                  await writer.stage(block);
                },
                commit: async (metadata) => {
                  const committed = await writer.commit(metadata);
                  killIf('afterCommit', commits++);
                  return committed;
                },
              }));
              const checkpointStore = {
                read: () => checkpoints.read(),
                write: async (document: CheckpointDocument, etag: string | undefined) => {
                  const n = writes++;
                  killIf('beforeCheckpoint', n);
                  const result = await checkpoints.write(document, etag);
                  killIf('afterCheckpoint', n);
                  return result;
                },
              };
              return createExporter(parseConfig(settingsOf(settings)), {
                logger: logs,
                clock: { now: () => sim.now + c.hostClockAheadInMs },
                ca: tenant.ca,
                azureCredential: tenant.managedIdentityCredential(),
                pageSize: c.pageSize,
                http: {
                  // In memory an answer never waits for a timer, so only a hang meets the timeout.
                  timeoutInMs: c.viaAzurite ? 250 : 2,
                  // Backoff jitter from the case's seed: a case replays with the same waits.
                  random: () => jitter.next(),
                  sleep: (ms) => {
                    sim.now += ms;
                    return Promise.resolve();
                  },
                },
                azureRetry: { maxTries: 1, retryDelayInMs: 20, maxRetryDelayInMs: 50 },
                checkpointStore,
                wrapSink,
                ...storage.composition,
              });
            };
            const observe = async () => {
              const stored = await checkpoints.read().catch(() => undefined);
              if (stored) watermarks.push(parseTimestamp(stored.document.checkpoint.watermark)!.ticks);
            };
            const runOnce = async (kill: Kill | null, settings = 0) => {
              totals.runs++;
              await exporter(kill, settings)
                .run()
                .catch(() => undefined);
            };

            try {
              for (const s of c.steps) {
                if (s.kind === 'advance') sim.now += s.ms;
                else if (s.kind === 'change') script.change(s.count);
                else if (s.kind === 'tie') {
                  script.tie(s.count);
                  totals.tiedIncidents += s.count;
                } else if (s.kind === 'loseCheckpoint') {
                  totals.checkpointLosses++;
                  await storage.loseCheckpoint();
                } else {
                  if (s.concurrent) totals.concurrentRuns++;
                  await (s.concurrent
                    ? Promise.all([
                        runOnce(s.kill, s.settings),
                        runOnce(null, (s.settings + 1) % FORMATS.length),
                      ])
                    : runOnce(s.kill, s.settings));
                  await observe();
                }
                sim.now += 1_000;
              }
              // The final clean runs, after the settle delay: as many as a backlog needs (each within its budget).
              script.disable();
              sim.now += SETTLE_MS + 1_000;
              let final = await exporter(null).run();
              for (let n = 1; final.outcome === 'partial' && n < 20; n++) {
                totals.finalRunsAfterBudget++;
                final = await exporter(null).run();
              }
              expect(final.outcome).toBe('succeeded');
              totals.lateVersionsFound += logs.summaries.reduce((n, r) => n + (r.lateVersions ?? 0), 0);
              await observe();
              const until = parseTimestamp(final.windowUntil)!.ticks;

              // Collect the committed exports.
              const idField = c.api === 'graph' ? 'id' : 'incidentId';
              const tsField = c.api === 'graph' ? 'lastUpdateDateTime' : 'lastUpdateTime';
              const contents = await storage.contents();
              const exported = contents.exports.flatMap((records) =>
                records.map((raw) => `${String(raw[idField])}@${parseTimestamp(raw[tsField])!.ticks}`),
              );
              const haystack: string[] = [logs.text, ...contents.texts];
              const names = contents.names;
              for (const [kind, n] of Object.entries(script.injected))
                totals.faults[kind] = (totals.faults[kind] ?? 0) + n;

              // No duplicates.
              expect(exported.length - new Set(exported).size).toBe(0);
              // Only versions that existed.
              expect(exported.filter((v) => !tenant.store.versions.has(v))).toEqual([]);
              // Complete: the latest version of every incident updated before the final bound, unless the API sent it
              // without an id or update time (then it is in quarantine/).
              const set = new Set(exported);
              const corrupted = new Set(
                script.corrupted.map((v) => `${v.id}@${parseTimestamp(v.lastUpdateTime)?.ticks}`),
              );
              const missing = tenant.store
                .all()
                .filter((i) => parseTimestamp(i.lastUpdateTime)!.ticks < until)
                .map((i) => `${i.id}@${parseTimestamp(i.lastUpdateTime)!.ticks}`)
                .filter((v) => !set.has(v) && !corrupted.has(v));
              expect(missing).toEqual([]);
              // Monotone.
              for (let i = 1; i < watermarks.length; i++)
                expect(watermarks[i]! >= watermarks[i - 1]!).toBe(true);
              // Only names of our own making, whatever the API sent (ids, times, links).
              expect(names.filter((name) => !SAFE_BLOB_NAME.test(name))).toEqual([]);
              // Clean.
              const text = haystack.join('\n');
              for (const secret of [tenant.clientSecret, ...tenant.issuedTokens.slice(-200)])
                expect(text.includes(secret)).toBe(false);
            } finally {
              await storage.dispose();
            }
          }),
          {
            numRuns: Math.max(1, runs),
            seed: SEED,
            endOnFailure: true,
            // Replay one failing case exactly: PROPERTY_SEED=<seed> PROPERTY_PATH=<path> from the report.
            ...(REPLAY_PATH !== undefined ? { path: REPLAY_PATH } : {}),
            ...(REPLAY_CASE !== undefined
              ? { examples: [[JSON.parse(REPLAY_CASE) as Case]], numRuns: 1 }
              : {}),
          },
        );
      }, 600_000);
    },
  );
}
