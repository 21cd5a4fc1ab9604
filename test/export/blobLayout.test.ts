import { encodeBlobMetadata, readBlobMetadata, type ExportBlobMetadata } from '../../src/export/blobLayout';
import { encodeCheckpoint } from '../../src/export/checkpoint';
import { parseTimestamp, type Timestamp } from '../../src/export/timestamp';

const at = (text: string): Timestamp => parseTimestamp(text)!;

const metadata: ExportBlobMetadata = {
  api: 'graph',
  tenantId: '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87',
  format: 'jsonl',
  compression: 'gzip',
  recordCount: 42,
  lateCount: 3,
  windowFrom: at('2026-11-24T06:00:00.1Z'),
  windowTo: at('2026-11-24T06:59:57.0733333Z'),
  windowUntil: at('2026-11-24T07:00:00Z'),
  runId: 'run-1',
  endCheckpoint: { watermark: '2026-11-24T06:59:57.0733333Z', idsAtWatermark: ['48213', '48214'] },
};

describe('export blob metadata', () => {
  it('is written with the lower-case names readers and operators see, and reads back as written', () => {
    const record = encodeBlobMetadata(metadata);
    expect(record).toEqual({
      schemaversion: '1',
      api: 'graph',
      tenantid: '0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87',
      format: 'jsonl',
      compression: 'gzip',
      recordcount: '42',
      latecount: '3',
      windowfrom: '2026-11-24T06:00:00.1Z',
      windowto: '2026-11-24T06:59:57.0733333Z',
      windowuntil: '2026-11-24T07:00:00Z',
      runid: 'run-1',
      endcheckpoint: encodeCheckpoint(metadata.endCheckpoint),
    });
    expect(readBlobMetadata(record)).toEqual(metadata);
  });

  it('leaves out a late count of 0 and reads it back as 0; keeps only header-safe run id characters', () => {
    const record = encodeBlobMetadata({ ...metadata, lateCount: 0, runId: 'run 1/ü' });
    expect(record).not.toHaveProperty('latecount');
    expect(record.runid).toBe('run1');
    expect(readBlobMetadata(record)).toMatchObject({ lateCount: 0, runId: 'run1' });
  });

  it('reads blobs of older versions, written before the tenant and the window end were recorded', () => {
    const older = encodeBlobMetadata(metadata);
    delete older.tenantid;
    delete older.windowuntil;
    const read = readBlobMetadata(older);
    expect(read).not.toHaveProperty('tenantId');
    expect(read).not.toHaveProperty('windowUntil');
    expect(read).toMatchObject({ recordCount: 42, runId: 'run-1' });
  });

  it.each<[string, string | undefined]>([
    ['schemaversion', '2'],
    ['api', 'Graph'],
    ['format', undefined],
    ['compression', 'brotli'],
    ['recordcount', '-1'],
    ['recordcount', '1e3'],
    ['latecount', 'many'],
    ['windowfrom', '2026-11-24 06:00'],
    ['windowto', undefined],
    ['windowuntil', 'now'],
    ['runid', undefined],
    ['endcheckpoint', 'bm90IGEgY2hlY2twb2ludA'],
    ['tenantid', ' '],
  ])('says which field is wrong: %s = %p', (name, value) => {
    const record: Record<string, string> = { ...encodeBlobMetadata(metadata) };
    if (value === undefined) delete record[name];
    else record[name] = value;
    expect(readBlobMetadata(record)).toBe(`has no valid '${name}' metadata`);
  });
});
