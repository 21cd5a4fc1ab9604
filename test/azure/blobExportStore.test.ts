import { BlobExportSink } from '../../src/azure/blobExportStore';
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
