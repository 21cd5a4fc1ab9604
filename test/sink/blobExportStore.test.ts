import { createHash } from 'node:crypto';
import {
  BlobCheckpointStore,
  BlobExportSink,
  describeStorageError,
  isWriteConflict,
} from '../../src/sink/blobExportStore';
import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { ConcurrentRunError, ExportError } from '../../src/errors';
import { freshContainer } from '../support/world';

/**
 * The container, but every `stageBlock` waits until the test releases it (by call index), then stages for real:
 * the test decides in which order stages reach Storage and complete.
 */
function gatedStages(real: ContainerClient): {
  container: ContainerClient;
  release: (index: number) => Promise<void>;
} {
  const gates: { open: () => void; done: Promise<unknown> }[] = [];
  const waiting: ((gate: { open: () => void; done: Promise<unknown> }) => void)[] = [];
  const gateAt = (index: number) =>
    new Promise<{ open: () => void; done: Promise<unknown> }>((resolve) => {
      if (gates[index]) resolve(gates[index]);
      else waiting[index] = resolve;
    });
  const container = new Proxy(real, {
    get(target, property) {
      if (property !== 'getBlockBlobClient') return Reflect.get(target, property, target) as unknown;
      return (name: string) => {
        const client = target.getBlockBlobClient(name);
        return new Proxy(client, {
          get(blobTarget, blobProperty) {
            if (blobProperty !== 'stageBlock')
              return Reflect.get(blobTarget, blobProperty, blobTarget) as unknown;
            return (...args: Parameters<BlockBlobClient['stageBlock']>) => {
              let open!: () => void;
              const opened = new Promise<void>((resolve) => (open = resolve));
              const done = opened.then(() => blobTarget.stageBlock(...args));
              const index = gates.length;
              gates.push({ open, done });
              waiting[index]?.({ open, done });
              return done;
            };
          },
        });
      };
    },
  });
  return {
    container,
    release: async (index) => {
      const gate = await gateAt(index);
      gate.open();
      await gate.done;
    },
  };
}

describe('BlobExportSink', () => {
  const container = freshContainer('sink');
  beforeAll(async () => {
    await container.create();
  });
  afterAll(async () => {
    await container.deleteIfExists();
  });

  it('commits blocks in the order they were staged, even when a later upload finishes first, with their Content-MD5', async () => {
    const gate = gatedStages(container);
    const writer = new BlobExportSink(gate.container).openBlob('incidents/order.json', {
      contentType: 'application/json',
      contentEncoding: undefined,
    });
    const big = Buffer.alloc(8 * 1024 * 1024, 'a');
    const small = Buffer.from('b');
    const finished: string[] = [];
    const first = writer.stage(big).then(() => finished.push('big'));
    const second = writer.stage(small).then(() => finished.push('small'));
    // The later stage reaches Storage and completes first; only then does the earlier one.
    await gate.release(1);
    await second;
    await gate.release(0);
    await first;
    expect(finished).toEqual(['small', 'big']);
    const committed = await writer.commit({});
    const client = container.getBlockBlobClient('incidents/order.json');
    const body = await client.downloadToBuffer();
    expect(body.length).toBe(big.length + 1);
    expect(body.subarray(-1).toString()).toBe('b');
    expect(body.subarray(0, 1).toString()).toBe('a');
    // The hashes follow the block list, not the order the uploads ended in; Storage keeps the MD5 as Content-MD5.
    const md5 = createHash('md5').update(body).digest('base64');
    expect(committed).toEqual({
      bytes: body.length,
      contentMd5: md5,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    const props = await client.getProperties();
    expect(Buffer.from(props.contentMD5!).toString('base64')).toBe(md5);
    expect(props.metadata).toEqual({});
  });

  it('refuses to commit over an existing blob', async () => {
    const sink = new BlobExportSink(container);
    const content = { contentType: 'application/json', contentEncoding: undefined };
    const a = sink.openBlob('incidents/once.json', content);
    await a.stage(Buffer.from('[]'));
    await a.commit({});
    const b = sink.openBlob('incidents/once.json', content);
    await b.stage(Buffer.from('[1]'));
    await expect(b.commit({})).rejects.toThrow(/committed by another run/);
  });
});

describe('storage conflicts versus other refusals (status and code as Azurite returns them)', () => {
  const container = freshContainer('conflict');
  const content = { contentType: 'application/json', contentEncoding: undefined };
  beforeAll(async () => {
    await container.create();
  });
  afterAll(async () => {
    await container.deleteIfExists();
  });

  const document = {
    schemaVersion: 1 as const,
    tenantId: 't',
    api: 'graph' as const,
    checkpoint: { watermark: '2026-01-01T00:00:00Z', idsAtWatermark: [] },
    updatedAt: '2026-01-01T00:00:00Z',
    runId: 'r',
  };

  it('reports a lost ETag race on the checkpoint as another run (412 ConditionNotMet)', async () => {
    const store = new BlobCheckpointStore(container, 'state/race.json');
    const etag = await store.write(document, undefined);
    await store.write(document, etag);
    await expect(store.write(document, etag)).rejects.toBeInstanceOf(ConcurrentRunError);
    // Create-only lost: 409 BlobAlreadyExists.
    await expect(store.write(document, undefined)).rejects.toBeInstanceOf(ConcurrentRunError);
  });

  it('fails with the lease named, not as another run, when the checkpoint is leased (412 LeaseIdMissing)', async () => {
    const store = new BlobCheckpointStore(container, 'state/leased.json');
    const etag = await store.write(document, undefined);
    await container.getBlockBlobClient('state/leased.json').getBlobLeaseClient().acquireLease(-1);
    const thrown = await store.write(document, etag).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(ExportError);
    expect((thrown as Error).message).toMatch(
      new RegExp(
        `'state/leased.json' in container '${container.containerName}' is leased \\(412 LeaseIdMissing\\)`,
      ),
    );
    expect((thrown as Error).message).toMatch(
      `az storage blob lease break --container-name ${container.containerName} --blob-name state/leased.json`,
    );
  });

  it('fails a commit over a leased blob with the lease named; over an unleased one it is another run', async () => {
    const sink = new BlobExportSink(container);
    const first = sink.openBlob('incidents/leased.json', content);
    await first.stage(Buffer.from('[]'));
    await first.commit({});
    const unleased = sink.openBlob('incidents/leased.json', content);
    await unleased.stage(Buffer.from('[1]'));
    await expect(unleased.commit({})).rejects.toBeInstanceOf(ConcurrentRunError);
    await container.getBlockBlobClient('incidents/leased.json').getBlobLeaseClient().acquireLease(-1);
    const second = sink.openBlob('incidents/leased.json', content);
    const thrown = await second
      .stage(Buffer.from('[1]'))
      .then(() => second.commit({}))
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(ExportError);
    expect((thrown as Error).message).toMatch(/'incidents\/leased.json' .* is leased \(412 LeaseIdMissing\)/);
  });

  it('classifies storage codes: only ConditionNotMet (412) and BlobAlreadyExists (409) are conflicts', () => {
    expect(isWriteConflict({ statusCode: 412, code: 'ConditionNotMet' })).toBe(true);
    expect(isWriteConflict({ statusCode: 409, code: 'BlobAlreadyExists' })).toBe(true);
    for (const [statusCode, code] of [
      [412, 'LeaseIdMissing'],
      [409, 'LeaseIdMissing'],
      [409, 'LeaseAlreadyPresent'],
      [409, 'BlobImmutableDueToPolicy'],
      [409, 'ContainerBeingDeleted'],
      [412, undefined],
      [409, undefined],
    ] as const) {
      expect(isWriteConflict({ statusCode, code })).toBe(false);
    }
    const immutable = describeStorageError(
      { statusCode: 409, code: 'BlobImmutableDueToPolicy', message: 'immutable' },
      'state-c',
      "write 'state/checkpoint.json'",
    );
    expect(immutable).toBeInstanceOf(ExportError);
    expect(immutable.message).toMatch(/state-c.*409 BlobImmutableDueToPolicy.*EXPORT_STATE_CONTAINER/);
    expect(
      describeStorageError({ statusCode: 409, code: 'ContainerBeingDeleted' }, 'c2', 'write x').message,
    ).toMatch(/'c2' is being deleted \(409 ContainerBeingDeleted\).*EXPORT_CONTAINER/);
  });
});
