import { exportBlobName, isExportBlobName, manifestBlobName } from '../../src/export/blobLayout';
import {
  advance,
  checkpointDigest,
  decodeCheckpoint,
  encodeCheckpoint,
  exportedUntil,
  isAfter,
  type Checkpoint,
} from '../../src/export/checkpoint';
import { parseTimestamp } from '../../src/export/timestamp';

const rec = (id: string, text: string) => ({ id, lastUpdate: parseTimestamp(text)! });

describe('checkpoint arithmetic', () => {
  const cp: Checkpoint = { watermark: '2025-03-02T09:15:40.27Z', idsAtWatermark: ['1', '2'] };

  it('treats ids at the watermark as exported and everything later as new', () => {
    expect(isAfter(rec('1', '2025-03-02T09:15:40.2700000Z'), cp)).toBe(false);
    expect(isAfter(rec('3', '2025-03-02T09:15:40.27Z'), cp)).toBe(true);
    expect(isAfter(rec('1', '2025-03-02T09:15:40.2700001Z'), cp)).toBe(true);
    expect(isAfter(rec('9', '2025-03-02T09:15:40.2699999Z'), cp)).toBe(false);
  });

  it('advances to the last record and keeps the whole tie set', () => {
    expect(advance(cp, [rec('3', '2025-03-02T09:15:40.27Z')])).toEqual({
      watermark: '2025-03-02T09:15:40.27Z',
      idsAtWatermark: ['1', '2', '3'],
    });
    expect(
      advance(cp, [
        rec('3', '2025-03-02T09:15:41Z'),
        rec('4', '2025-03-02T09:15:42Z'),
        rec('5', '2025-03-02T09:15:42.0Z'),
      ]),
    ).toEqual({
      watermark: '2025-03-02T09:15:42.0Z',
      idsAtWatermark: ['4', '5'],
    });
    expect(advance(cp, [])).toBe(cp);
  });

  it('round-trips through blob metadata encoding and rejects junk', () => {
    expect(decodeCheckpoint(encodeCheckpoint(cp))).toEqual(cp);
    expect(encodeCheckpoint(cp)).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCheckpoint('not-base64-json')).toBeUndefined();
    expect(
      decodeCheckpoint(Buffer.from('{"watermark":"x","idsAtWatermark":[]}').toString('base64url')),
    ).toBeUndefined();
    expect(decodeCheckpoint(undefined)).toBeUndefined();
  });

  it('digests equal checkpoints equally, whatever the id order or timestamp spelling', () => {
    expect(checkpointDigest(cp)).toBe(
      checkpointDigest({ watermark: '2025-03-02T09:15:40.2700000Z', idsAtWatermark: ['2', '1'] }),
    );
    expect(checkpointDigest(cp)).not.toBe(checkpointDigest({ ...cp, idsAtWatermark: ['1'] }));
  });
});

describe('blob names', () => {
  it('derive from the start checkpoint, sort by time and sit in the UTC day folder', () => {
    const a = exportBlobName(
      { watermark: '2026-11-24T09:05:03.1234567Z', idsAtWatermark: [] },
      'json',
      'none',
    );
    const b = exportBlobName({ watermark: '2026-11-24T10:00:00Z', idsAtWatermark: ['7'] }, 'jsonl', 'gzip');
    expect(a).toMatch(/^incidents\/2026\/11\/24\/0905031234567-[0-9a-f]{12}\.json$/);
    expect(b).toMatch(/^incidents\/2026\/11\/24\/1000000000000-[0-9a-f]{12}\.jsonl\.gz$/);
    expect(a < b).toBe(true);
    expect(
      exportBlobName({ watermark: '2026-11-24T10:00:00Z', idsAtWatermark: ['7'] }, 'jsonl', 'gzip'),
    ).toBe(b);
  });

  it('are recognised as ours, and nothing else is', () => {
    for (const [format, compression] of [
      ['json', 'none'],
      ['jsonl', 'none'],
      ['json', 'gzip'],
      ['jsonl', 'gzip'],
    ] as const) {
      expect(
        isExportBlobName(
          exportBlobName(
            { watermark: '2026-11-24T09:05:03.12Z', idsAtWatermark: ['1'] },
            format,
            compression,
          ),
        ),
      ).toBe(true);
    }
    for (const name of [
      'incidents/2026/11/24/../../../../etc/0905031234567-0123456789ab.json',
      'incidents/2026/11/24/0905031234567-0123456789ab.json/x.json',
      'incidents/2026/11/24/notes.json',
      'state/checkpoint.json',
      'incidents/2026/11/24/0905031234567-0123456789ab.json.zip',
    ]) {
      expect(isExportBlobName(name)).toBe(false);
    }
  });

  it('keep unsafe characters out of manifest names', () => {
    expect(manifestBlobName(Date.UTC(2026, 10, 24, 1, 2, 3, 4), '../x y/..')).toBe(
      'runs/2026/11/24/010203004-xy.json',
    );
  });
});

describe('exportedUntil', () => {
  const at = (watermark: string) => ({ watermark, idsAtWatermark: ['1'] });
  it('is the later of the position and the last complete scan, in exact ticks', () => {
    expect(exportedUntil(at('2026-11-24T10:00:00.1234567Z'), undefined)).toBe(
      parseTimestamp('2026-11-24T10:00:00.1234567Z')!.ticks,
    );
    expect(exportedUntil(at('2026-11-24T10:00:00.1234567Z'), '2026-11-24T10:00:00.1234568Z')).toBe(
      parseTimestamp('2026-11-24T10:00:00.1234568Z')!.ticks,
    );
    expect(exportedUntil(at('2026-11-24T10:00:00.1234567Z'), '2026-11-24T09:00:00Z')).toBe(
      parseTimestamp('2026-11-24T10:00:00.1234567Z')!.ticks,
    );
  });
});
