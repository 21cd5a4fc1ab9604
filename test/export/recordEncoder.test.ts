import { decodeExportBlob } from '../../src/export/recordDecoder';
import { RecordEncoder } from '../../src/export/recordEncoder';
import type { ExportCompression, ExportFormat } from '../../src/export/ports';

const FORMATS: [ExportFormat, ExportCompression, string][] = [
  ['json', 'none', 'incidents/x.json'],
  ['json', 'gzip', 'incidents/x.json.gz'],
  ['jsonl', 'none', 'incidents/x.jsonl'],
  ['jsonl', 'gzip', 'incidents/x.jsonl.gz'],
];

/** The whole blob an encoder writes for these pages of records. */
function encodeAll(encoder: RecordEncoder, pages: unknown[][]): Buffer {
  const blocks = pages.map((page) => encoder.encode(page.map((raw) => ({ raw }))));
  const last = encoder.finish();
  return Buffer.concat(last ? [...blocks, last] : blocks);
}

describe('RecordEncoder and decodeExportBlob', () => {
  const hostile = {
    id: 'line\nbreak',
    title: '"quoted" \u2028 \u{1F600} ]} ,\n[',
    nested: { a: [1, null, true], b: '\\' },
  };
  const pages = [[{ id: '1' }, hostile], [], [{ id: '3', n: 1.5e300 }]];

  it.each(FORMATS)(
    'round-trips %s/%s block by block, hostile content included',
    (format, compression, name) => {
      const encoder = new RecordEncoder(format, compression);
      const bytes = encodeAll(encoder, pages);
      expect(decodeExportBlob(name, bytes)).toEqual(pages.flat());
      expect(encoder.records).toBe(3);
      expect(encoder.content.contentEncoding).toBe(compression === 'gzip' ? 'gzip' : undefined);
      expect(encoder.content.contentType).toMatch(format === 'json' ? /^application\/json/ : /x-ndjson/);
    },
  );

  it.each(FORMATS)('writes an empty %s/%s blob that decodes to no records', (format, compression, name) => {
    const encoder = new RecordEncoder(format, compression);
    expect(decodeExportBlob(name, encodeAll(encoder, []))).toEqual([]);
  });

  it('keeps the json format one array and jsonl one incident per line', () => {
    const json = encodeAll(new RecordEncoder('json', 'none'), [[{ a: 1 }], [{ b: 2 }]]).toString('utf8');
    expect(JSON.parse(json)).toEqual([{ a: 1 }, { b: 2 }]);
    const jsonl = encodeAll(new RecordEncoder('jsonl', 'none'), [[{ a: 1 }], [{ b: 2 }]]).toString('utf8');
    expect(jsonl).toBe('{"a":1}\n{"b":2}\n');
  });

  it('refuses a blob that is not what its name says', () => {
    expect(() => decodeExportBlob('incidents/x.json', Buffer.from('{"not":"an array"'))).toThrow();
    expect(() => decodeExportBlob('incidents/x.jsonl', Buffer.from('{"a":1}\nnot json\n'))).toThrow();
  });
});
