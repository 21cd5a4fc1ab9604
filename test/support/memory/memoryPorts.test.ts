import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { ConcurrentRunError } from '../../../src/errors';
import type { CheckpointStore, ExportSink } from '../../../src/export/ports';
import { RecordEncoder } from '../../../src/export/recordEncoder';
import { BlobCheckpointStore, BlobExportSink } from '../../../src/sink/blobExportStore';
import { freshContainer } from '../world';
import { MemoryCheckpointStore } from './memoryCheckpointStore';
import { MemoryExportSink } from './memoryExportSink';

/**
 * The memory ports stand in for the Blob ones in the property test and the core tests: the same assertions run
 * on both, the Blob ones on Azurite.
 */
const containers: ContainerClient[] = [];
async function container(): Promise<ContainerClient> {
  const c = freshContainer('ports');
  await c.create();
  containers.push(c);
  return c;
}
afterAll(async () => {
  await Promise.all(containers.map((c) => c.deleteIfExists()));
});

const document = {
  schemaVersion: 1 as const,
  tenantId: 't',
  api: 'graph' as const,
  checkpoint: { watermark: '2026-01-01T00:00:00Z', idsAtWatermark: ['1'] },
  updatedAt: '2026-01-01T00:00:00Z',
  runId: 'r',
};
const content = { contentType: 'application/json; charset=utf-8', contentEncoding: undefined };

describe.each([
  ['BlobCheckpointStore', async (): Promise<CheckpointStore> => new BlobCheckpointStore(await container())],
  ['MemoryCheckpointStore', (): Promise<CheckpointStore> => Promise.resolve(new MemoryCheckpointStore())],
])('%s', (_name, create) => {
  it('creates only where there is none, and writes only over the ETag it read', async () => {
    const store = await create();
    expect(await store.read()).toBeUndefined();
    const first = await store.write(document, undefined);
    await expect(store.write(document, undefined)).rejects.toBeInstanceOf(ConcurrentRunError);
    const read = await store.read();
    expect(read).toEqual({ document, etag: first });
    const second = await store.write({ ...document, runId: 's' }, first);
    expect(second).not.toBe(first);
    await expect(store.write(document, first)).rejects.toBeInstanceOf(ConcurrentRunError);
    expect((await store.read())!.document.runId).toBe('s');
  });

  it('lets one of two writers with the same ETag win', async () => {
    const store = await create();
    const etag = await store.write(document, undefined);
    const results = await Promise.allSettled([
      store.write({ ...document, runId: 'a' }, etag),
      store.write({ ...document, runId: 'b' }, etag),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const lost = results.find((r) => r.status === 'rejected')!;
    expect(lost.reason).toBeInstanceOf(ConcurrentRunError);
  });
});

describe.each([
  ['BlobExportSink', async (): Promise<ExportSink> => new BlobExportSink(await container())],
  ['MemoryExportSink', (): Promise<ExportSink> => Promise.resolve(new MemoryExportSink())],
])('%s', (_name, create) => {
  it('shows nothing of a blob before its commit, then its blocks in order and its metadata', async () => {
    const sink = await create();
    const writer = sink.openBlob('incidents/2026/01/01/a.json', content);
    const encoder = new RecordEncoder('json', 'none');
    const blocks = [
      encoder.encode([{ raw: { id: '1' } }]),
      encoder.encode([{ raw: { id: '2' } }]),
      encoder.finish()!,
    ];
    for (const block of blocks) await writer.stage(block);
    expect(await sink.committedMetadata('incidents/2026/01/01/a.json')).toBeUndefined();
    // The commit tells the size and hashes of the bytes staged, in order.
    const body = Buffer.concat(blocks);
    expect(await writer.commit({ recordcount: '2' })).toEqual({
      bytes: body.length,
      contentMd5: createHash('md5').update(body).digest('base64'),
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    expect(await sink.committedMetadata('incidents/2026/01/01/a.json')).toEqual({ recordcount: '2' });
    expect(await sink.readRecords('incidents/2026/01/01/a.json')).toEqual([{ id: '1' }, { id: '2' }]);
  });

  it('commits a name once: the second writer is another run', async () => {
    const sink = await create();
    const a = sink.openBlob('incidents/once.json', content);
    const b = sink.openBlob('incidents/once.json', content);
    await a.stage(Buffer.from('[]'));
    await b.stage(Buffer.from('[1]'));
    await a.commit({ run: 'a' });
    await expect(b.commit({ run: 'b' })).rejects.toBeInstanceOf(ConcurrentRunError);
    expect(await sink.readRecords('incidents/once.json')).toEqual([]);
  });

  it('lists committed blobs under a prefix in name order, with metadata', async () => {
    const sink = await create();
    for (const name of ['incidents/b.json', 'incidents/a/2.json', 'incidents/a/10.json', 'runs/x.json']) {
      const writer = sink.openBlob(name, content);
      await writer.stage(Buffer.from('[]'));
      await writer.commit({ name: name.replace(/\W/g, '') });
    }
    sink.openBlob('incidents/0-uncommitted.json', content);
    const listed: { name: string; metadata: Record<string, string> }[] = [];
    for await (const blob of sink.listCommitted('incidents/')) listed.push(blob);
    expect(listed.map((b) => b.name)).toEqual([
      'incidents/a/10.json',
      'incidents/a/2.json',
      'incidents/b.json',
    ]);
    expect(listed[2]!.metadata).toEqual({ name: 'incidentsbjson' });
  });

  it('writes a JSON document create-only', async () => {
    const sink = await create();
    expect(await sink.writeJson('runs/m.json', { a: 1 })).toBe(true);
    expect(await sink.writeJson('runs/m.json', { a: 2 })).toBe(false);
    expect(await sink.committedMetadata('runs/m.json')).toEqual({});
  });
});
