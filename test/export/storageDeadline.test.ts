import { randomUUID } from 'node:crypto';
import { createIncidentSourceFactory } from '../../src/composition/compositionRoot';
import { StorageError } from '../../src/errors';
import { EXPORT_PREFIX } from '../../src/export/blobLayout';
import { runExport, type RunSummary } from '../../src/export/exportRun';
import {
  systemClock,
  type CheckpointStore,
  type ExportBlobWriter,
  type StorageCallOptions,
} from '../../src/export/ports';
import { BlobCheckpointStore, BlobExportSink } from '../../src/sink/blobExportStore';
import { World, wrapWriters } from '../support/world';

const HOUR = 3_600_000;
/** Far below EXPORT_MAX_RUN_DURATION's 30 s minimum: runExport is given it directly. */
const BUDGET_IN_MS = 1_500;

/** A Storage call that never answers, and ends only when its abort signal fires (as the SDK's calls do). */
function hangUntilAborted(options: StorageCallOptions | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    const signal = options?.abortSignal;
    if (!signal) return; // without a signal it hangs for good, and the test times out
    if (signal.aborted) reject(new DOMException('The operation was aborted.', 'AbortError'));
    signal.addEventListener('abort', () =>
      reject(new DOMException('The operation was aborted.', 'AbortError')),
    );
  });
}

describe("the run's time budget reaches every Storage call", () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start({ settings: { EXPORT_INCLUDE_ALERTS: 'false' } });
    const now = Date.now();
    world.tenant.store.generate(30, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
    await world.container.createIfNotExists();
  });
  afterEach(async () => {
    await world.close();
  });

  /** One run with a budget of {@link BUDGET_IN_MS}, on the world's source, the given store and sink wrapper. */
  async function run(
    checkpoints: CheckpointStore,
    wrapWriter: (writer: ExportBlobWriter) => ExportBlobWriter = (w) => w,
  ): Promise<{ thrown: unknown; summary: RunSummary; elapsedInMs: number }> {
    const source = createIncidentSourceFactory(world.config, world.composition())(world.logs);
    const started = performance.now();
    const thrown = await runExport({
      source,
      checkpoints,
      sink: wrapWriters(wrapWriter)(new BlobExportSink(world.container)),
      clock: systemClock,
      logger: world.logs,
      tenantId: world.config.tenantId,
      containerName: world.container.containerName,
      format: world.config.format,
      compression: world.config.compression,
      initialLookbackInMs: 2 * 24 * HOUR,
      settleDelayInMs: 1_000,
      maxRunDurationInMs: BUDGET_IN_MS,
      runId: randomUUID(),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    return { thrown, summary: world.logs.summaries.at(-1)!, elapsedInMs: performance.now() - started };
  }

  it('ends a run whose block upload hangs at the budget: failed, transient, Storage named, nothing committed', async () => {
    const store = new BlobCheckpointStore(world.container);
    const { thrown, summary, elapsedInMs } = await run(store, (writer) => ({
      stage: (_block, options) => hangUntilAborted(options),
      commit: (metadata, options) => writer.commit(metadata, options),
    }));

    expect(thrown).toBeInstanceOf(StorageError);
    expect(summary).toMatchObject({ outcome: 'failed', failureKind: 'storage', transient: true });
    expect(summary.reason).toMatch(
      /^The run's time budget \(EXPORT_MAX_RUN_DURATION, 1\.5 s\) ran out while waiting for Storage to stage a block of 'incidents\//,
    );
    // The hung call did not outlive the budget (the manifest write after it has its own short grace).
    expect(elapsedInMs).toBeLessThan(BUDGET_IN_MS + 5_000);
    // Nothing was committed, so the checkpoint is still the first run's start, and the manifest says why.
    expect(await world.blobNames(EXPORT_PREFIX)).toEqual([]);
    const checkpoint = (await world.checkpoint())!.document as {
      checkpoint: { watermark: string };
      exportStart: string;
    };
    expect(checkpoint.checkpoint.watermark).toBe(checkpoint.exportStart);
    const manifests = await world.blobNames('runs/');
    expect(manifests).toHaveLength(1);
    const manifest = JSON.parse(
      (await world.container.getBlockBlobClient(manifests[0]!).downloadToBuffer()).toString('utf8'),
    ) as RunSummary;
    expect(manifest).toMatchObject({ outcome: 'failed', failureKind: 'storage', transient: true });
  });

  it('ends a run whose checkpoint write after a commit hangs; the next run adopts the committed blob', async () => {
    const real = new BlobCheckpointStore(world.container);
    const hanging: CheckpointStore = {
      read: (options) => real.read(options),
      write: (document, etag, options) =>
        document.lastBlob ? hangUntilAborted(options) : real.write(document, etag, options),
    };
    const { thrown, summary } = await run(hanging);

    expect(thrown).toBeInstanceOf(StorageError);
    expect(summary).toMatchObject({ outcome: 'failed', failureKind: 'storage', transient: true });
    expect(summary.reason).toMatch(
      /^The run's time budget \(EXPORT_MAX_RUN_DURATION, 1\.5 s\) ran out while waiting for Storage to write the checkpoint: /,
    );
    // The blob was committed, the checkpoint did not move past it: it still sits at the start.
    expect(await world.blobNames(EXPORT_PREFIX)).toHaveLength(1);
    const before = (await world.checkpoint())!.document as {
      checkpoint: { watermark: string };
      exportStart: string;
    };
    expect(before.checkpoint.watermark).toBe(before.exportStart);

    // The next run, with a Storage that answers, adopts that blob and exports the rest once.
    expect((await world.run()).outcome).toBe('succeeded');
    const exported = await world.exported();
    expect(exported).toHaveLength(30);
    expect(new Set(exported.map((v) => `${v.id}@${v.lastUpdate}`)).size).toBe(30);
    expect(world.logs.text).toMatch(/stopped before its checkpoint write; adopting it/);
  });
});
