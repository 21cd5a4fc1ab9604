import {
  BlobCheckpointStore,
  BlobExportSink,
  describeStorageError,
  isWriteConflict,
} from '../../src/sink/blobExportStore';
import { ConcurrentRunError, ExportError } from '../../src/errors';
import { freshContainer } from '../support/world';

describe('BlobExportSink', () => {
  const container = freshContainer('sink');
  beforeAll(async () => {
    await container.create();
  });
  afterAll(async () => {
    await container.deleteIfExists();
  });

  it('commits blocks in the order they were staged, even when a later upload finishes first', async () => {
    const writer = new BlobExportSink(container).openBlob('incidents/order.json', {
      contentType: 'application/json',
      contentEncoding: undefined,
    });
    const big = Buffer.alloc(8 * 1024 * 1024, 'a');
    const small = Buffer.from('b');
    let smallDone = false;
    let bigDoneAfterSmall = false;
    const first = writer.stage(big).then(() => {
      bigDoneAfterSmall = smallDone;
    });
    await writer.stage(small);
    smallDone = true;
    await first;
    await writer.commit({});
    const body = await container.getBlockBlobClient('incidents/order.json').downloadToBuffer();
    expect(body.length).toBe(big.length + 1);
    expect(body.subarray(-1).toString()).toBe('b');
    expect(body.subarray(0, 1).toString()).toBe('a');
    // The case the order guarantee is for did happen.
    expect(bigDoneAfterSmall).toBe(true);
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
