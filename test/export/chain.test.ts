import { BlobCheckpointStore } from '../../src/sink/blobExportStore';
import { CHECKPOINT_BLOB, exportBlobName } from '../../src/export/blobLayout';
import { decodeCheckpoint, encodeCheckpoint, type Checkpoint } from '../../src/export/checkpoint';
import type { CheckpointDocument, ExportBlobWriter } from '../../src/export/ports';
import { readExportBlob } from '../../src/operations/exportReader';
import { SimulatedTenant } from '../../src/sandbox/simulatedTenant';
import { BlobServiceClient } from '@azure/storage-blob';
import {
  azuriteConnectionString,
  crashingAfterCommit,
  duplicates,
  freshContainer,
  SCALED_LEGACY_LIMITS,
  World,
  wrapWriters,
} from '../support/world';

const HOUR = 3_600_000;

/**
 * Holds every blob commit until `parties` commits are waiting (or a run has ended), so that two runs reach the
 * commit of the same part of the export together, whatever the scheduler does.
 */
function commitBarrier(parties: number): {
  wrap: (writer: ExportBlobWriter) => ExportBlobWriter;
  release: () => void;
} {
  let waiting = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return {
    wrap: (writer) => ({
      stage: (block) => writer.stage(block),
      commit: async (metadata) => {
        if (++waiting >= parties) open();
        await gate;
        return writer.commit(metadata);
      },
    }),
    release: () => open(),
  };
}

describe('the chain of export blobs', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
  });
  afterEach(async () => {
    await world.close();
  });

  it('finds the blob of a crashed run after EXPORT_FORMAT and EXPORT_COMPRESSION changed', async () => {
    const now = Date.now();
    world.tenant.store.generate(31, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
    world.configure({ composition: { checkpointStore: crashingAfterCommit(world.container) } });
    await expect(world.run()).rejects.toThrow(/process killed/);
    expect(await world.blobNames()).toHaveLength(1);

    world.configure({ settings: { EXPORT_FORMAT: 'jsonl', EXPORT_COMPRESSION: 'gzip' } });
    const summary = await world.run();
    expect(summary.recoveredBlobs).toBe(1);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(31);

    // The new settings apply to the blobs after the adopted one.
    world.tenant.store.update(world.tenant.store.all()[0]!.id, {
      lastUpdateTime: new Date(Date.now() - 5_000).toISOString(),
    });
    await world.run();
    const names = await world.dataBlobNames();
    expect(names.some((n) => n.endsWith('.jsonl.gz'))).toBe(true);
    expect(duplicates(await world.exported())).toEqual([]);
  });

  it('writes one successor of a checkpoint when two runs with different formats race', async () => {
    // A first run on an empty history, a day and a half ago, writes the checkpoint; both runs start from it.
    const now = Date.now();
    world.configure({ composition: { clock: { now: () => now - 31 * HOUR } } });
    await world.run();
    world.tenant.store.generate(35, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
    const barrier = commitBarrier(2);
    world.configure({ composition: { wrapSink: wrapWriters(barrier.wrap) } });
    const second = new World(world.tenant);
    Object.assign(second, { container: world.container });
    second.configure({
      settings: { EXPORT_FORMAT: 'jsonl', EXPORT_COMPRESSION: 'gzip' },
      composition: { wrapSink: wrapWriters(barrier.wrap) },
    });
    const runs = [world.run('run-json'), second.run('run-jsonl')].map((p) =>
      p.finally(() => barrier.release()),
    );
    const outcomes = (await Promise.all(runs)).map((s) => s.outcome).sort();
    expect(outcomes).toEqual(['concurrent', 'succeeded']);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(35);
    // Whichever run won, the first blob has the name (and format) fixed with the checkpoint it follows.
    expect((await world.dataBlobNames())[0]).toMatch(/\.json$/);
  });

  it('keeps two tenants that share EXPORT_CONTAINER apart: each exports all of its own, none adopts the other', async () => {
    const now = Date.now();
    world.tenant.store.generate(40, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
    world.configure({ settings: { EXPORT_STATE_CONTAINER: `${world.container.containerName}-a` } });
    const other = await SimulatedTenant.start({ seed: 8, legacyLimits: SCALED_LEGACY_LIMITS });
    const tenantB = new World(other);
    Object.assign(tenantB, { container: world.container });
    try {
      other.store.generate(40, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });
      tenantB.configure({ settings: { EXPORT_STATE_CONTAINER: `${world.container.containerName}-b` } });
      expect((await world.run()).outcome).toBe('succeeded');
      const b = await tenantB.run();
      expect(b).toMatchObject({ outcome: 'succeeded', recoveredBlobs: 0, incidents: 40 });

      // Every blob says whose it is, and holds only that tenant's incidents.
      const ids = { [world.tenant.tenantId]: new Set(world.tenant.store.all().map((i) => String(i.id))) };
      ids[other.tenantId] = new Set(other.store.all().map((i) => String(i.id)));
      const perTenant: Record<string, number> = {};
      for await (const blob of world.container.listBlobsFlat({
        prefix: 'incidents/',
        includeMetadata: true,
      })) {
        const tenantId = blob.metadata!.tenantid!;
        for (const raw of await readExportBlob(world.container, blob.name)) {
          expect(ids[tenantId]!.has(String((raw as { id: string }).id))).toBe(true);
          perTenant[tenantId] = (perTenant[tenantId] ?? 0) + 1;
        }
      }
      expect(perTenant).toEqual({ [world.tenant.tenantId]: 40, [other.tenantId]: 40 });
      expect((await world.run()).outcome).toBe('succeeded');
      expect((await tenantB.run()).outcome).toBe('succeeded');
    } finally {
      await other.close();
      for (const suffix of ['-a', '-b'])
        await containerNamed(`${world.container.containerName}${suffix}`).deleteIfExists();
    }
  });

  it('does not adopt a blob at the successor name that belongs to another tenant', async () => {
    await world.run();
    const document = (await world.checkpoint())!.document as unknown as CheckpointDocument;
    const name = exportBlobName(document.checkpoint, 'json', 'none', world.tenant.tenantId);
    const later: Checkpoint = { watermark: new Date(Date.now() - 10_000).toISOString(), idsAtWatermark: [] };
    await plant(world, name, {
      tenantid: '00000000-0000-0000-0000-000000000001',
      windowfrom: document.checkpoint.watermark,
      endcheckpoint: encodeCheckpoint(later),
    });
    await expect(world.run()).rejects.toThrow(new RegExp(`${escape(name)}.*another tenant`));
    expect((await world.checkpoint())!.document.checkpoint).toEqual(document.checkpoint);
  });

  it.each([
    ['backward', -HOUR],
    ['self-referencing', 0],
  ])('stops with an error naming a blob at the successor name whose end is %s', async (_kind, deltaMs) => {
    await world.run();
    const before = (await world.checkpoint())!.document as unknown as CheckpointDocument;
    const start = before.checkpoint;
    const end: Checkpoint = {
      watermark: new Date(Date.parse(start.watermark) + deltaMs).toISOString(),
      idsAtWatermark: [...start.idsAtWatermark],
    };
    const name = exportBlobName(start, 'json', 'none', world.tenant.tenantId);
    await plant(world, name, {
      tenantid: world.tenant.tenantId,
      windowfrom: start.watermark,
      endcheckpoint: encodeCheckpoint(end),
    });
    let writes = 0;
    const real = new BlobCheckpointStore(world.container);
    world.configure({
      composition: {
        checkpointStore: {
          read: () => real.read(),
          write: (d, e) => {
            writes++;
            return real.write(d, e);
          },
        },
      },
    });
    await expect(world.run()).rejects.toThrow(new RegExp(`${escape(name)}.*not after`));
    expect(writes).toBe(0);
    expect((await world.checkpoint())!.document.checkpoint).toEqual(start);
  });
});

describe('a run without a checkpoint', () => {
  let world: World;
  beforeEach(async () => {
    world = await World.start();
  });
  afterEach(async () => {
    await world.close();
  });

  it('continues the chain when EXPORT_STATE_CONTAINER is set apart after the export has run', async () => {
    const now = Date.now();
    world.tenant.store.generate(42, { from: new Date(now - 30 * HOUR), to: new Date(now - 2 * HOUR) });
    world.configure({ composition: { clock: { now: () => now - HOUR } } });
    expect((await world.run()).outcome).toBe('succeeded');

    const state = freshContainer('state');
    try {
      world.configure({ settings: { EXPORT_STATE_CONTAINER: state.containerName } });
      for (const incident of world.tenant.store.all().slice(0, 5))
        world.tenant.store.update(incident.id, { lastUpdateTime: new Date(now - HOUR / 2).toISOString() });
      const summary = await world.run();
      expect(summary.outcome).toBe('succeeded');
      expect(summary.incidents).toBe(5);
      expect(world.logs.text).toMatch(/continu/i);
      const exported = await world.exported();
      expect(duplicates(exported)).toEqual([]);
      expect(exported).toHaveLength(47);
      expect(await state.getBlockBlobClient(CHECKPOINT_BLOB).exists()).toBe(true);
    } finally {
      await state.deleteIfExists();
    }
  });

  it('continues the chain after its checkpoint was deleted following an outage longer than the lookback', async () => {
    let now = Date.now() - 20 * HOUR;
    const clock = { now: () => now };
    world.tenant.store.generate(10, { from: new Date(now - 40 * 60_000), to: new Date(now - 60_000) });
    world.configure({ settings: { EXPORT_INITIAL_LOOKBACK: 'PT1H' }, composition: { clock } });
    expect((await world.run()).incidents).toBe(10);

    // An outage of 10 hours; the checkpoint is lost; the lookback is 1 hour.
    world.tenant.store.generate(30, { from: new Date(now + HOUR), to: new Date(now + 8 * HOUR) });
    await world.container.getBlockBlobClient(CHECKPOINT_BLOB).delete();
    now += 10 * HOUR;
    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    expect(summary.incidents).toBe(30);
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported).toHaveLength(40);
  });
});

async function plant(world: World, name: string, metadata: Record<string, string>): Promise<void> {
  await world.container.getBlockBlobClient(name).upload('[]', 2, {
    metadata: {
      schemaversion: '1',
      api: 'graph',
      format: 'json',
      compression: 'none',
      recordcount: '0',
      windowto: decodeCheckpoint(metadata.endcheckpoint)?.watermark ?? '',
      runid: 'planted',
      ...metadata,
    },
  });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function containerNamed(name: string) {
  return BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(name);
}
