import type { Checkpoint } from '../../src/export/checkpoint';
import { encodeBlobMetadata, exportBlobName } from '../../src/export/blobLayout';
import { parseTimestamp } from '../../src/export/timestamp';
import type { ExportBlobInfo } from '../../src/operations/exportReader';
import { parseTimeRange } from '../../src/operations/timeRange';
import { verifyExports, type ExportBlobReader, type VerifyOptions } from '../../src/operations/verifyExports';
import { MemoryIncidentSource } from '../support/memory/memoryIncidentSource';

/**
 * verifyExports over in-memory ports: export blobs laid out and described exactly as the exporter writes them
 * (names from exportBlobName, metadata from encodeBlobMetadata), and an incident source that lists the current
 * version of each incident.
 */
const TENANT = 'contoso.onmicrosoft.com';

interface BlobSpec {
  /** The checkpoint the blob starts at (its name and `windowfrom`). */
  from: Checkpoint;
  /** The checkpoint it ends at (`windowto`, `endcheckpoint`). */
  end: Checkpoint;
  /** Versions as `id@lastUpdate`. */
  versions: string[];
  tenantId?: string;
  late?: number;
}

/** The export blobs of a container, in memory, listed by UTC day folder as Storage lists them by prefix. */
class MemoryExports implements ExportBlobReader {
  readonly containerName = 'exports';
  readonly blobs = new Map<string, { info: ExportBlobInfo; records: unknown[] }>();
  readonly reads: string[] = [];
  listedDays: [number, number] | undefined;

  add(spec: BlobSpec): string {
    const name = exportBlobName(spec.from, 'json', 'none', spec.tenantId ?? TENANT);
    const records = spec.versions.map((v) => {
      const [id, lastUpdateDateTime] = v.split('@');
      return { id, lastUpdateDateTime, displayName: `incident ${id}` };
    });
    this.put(name, records, {
      ...encodeBlobMetadata({
        api: 'graph',
        tenantId: spec.tenantId ?? TENANT,
        format: 'json',
        compression: 'none',
        recordCount: records.length,
        lateCount: spec.late ?? 0,
        windowFrom: parseTimestamp(spec.from.watermark)!,
        windowTo: parseTimestamp(spec.end.watermark)!,
        runId: 'run-1',
        endCheckpoint: spec.end,
      }),
    });
    return name;
  }

  put(name: string, records: unknown[], metadata: Record<string, string>): void {
    this.blobs.set(name, { info: { name, size: 1, etag: '"1"', metadata }, records });
  }

  list(fromMs: number, toMs: number): Promise<readonly ExportBlobInfo[]> {
    this.listedDays = [fromMs, toMs];
    const first = dayFolder(fromMs);
    const last = dayFolder(toMs);
    return Promise.resolve(
      [...this.blobs.values()]
        .map((b) => b.info)
        .filter((b) => {
          const day = b.name.slice('incidents/'.length, 'incidents/YYYY/MM/DD'.length);
          return day >= first && day <= last;
        })
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
  }

  read(name: string): Promise<unknown[]> {
    this.reads.push(name);
    const blob = this.blobs.get(name);
    return blob ? Promise.resolve(blob.records) : Promise.reject(new Error(`no blob ${name}`));
  }
}

function dayFolder(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '/');
}

const at = (watermark: string, ...ids: string[]): Checkpoint => ({ watermark, idsAtWatermark: ids });

describe('verifyExports', () => {
  let source: MemoryIncidentSource;
  let exports: MemoryExports;
  const options = (from: string, to: string, extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
    range: parseTimeRange(from, to, Date.now()),
    tenantId: TENANT,
    rereadWindowInMs: 3_600_000,
    ...extra,
  });

  beforeEach(() => {
    source = new MemoryIncidentSource(() => undefined, 2);
    exports = new MemoryExports();
  });

  /** Lists each of `versions` (id@lastUpdate) as the current version of its incident. */
  function current(...versions: string[]): void {
    for (const v of versions) {
      const [id, lastUpdate] = v.split('@');
      source.put(id!, lastUpdate!);
    }
  }

  it('is complete when every current version of the covered part is exported once, superseded ones aside', async () => {
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T06:00:00.1234567Z', '2'),
      versions: ['1@2026-11-24T01:00:00Z', '3@2026-11-24T02:00:00.5Z', '2@2026-11-24T06:00:00.1234567Z'],
    });
    exports.add({
      from: at('2026-11-24T06:00:00.1234567Z', '2'),
      end: at('2026-11-24T12:00:00Z'),
      versions: ['4@2026-11-24T06:00:00.1234567Z', '3@2026-11-24T07:00:00Z'],
    });
    // Incident 3 was updated again after its first export: its older version is superseded, not an error.
    current('1@2026-11-24T01:00:00Z', '2@2026-11-24T06:00:00.1234567Z', '4@2026-11-24T06:00:00.1234567Z');
    current('3@2026-11-24T07:00:00Z', '5@2026-11-24T13:00:00Z'); // 5: after the exports end, not checked

    const report = await verifyExports(source, exports, options('2026-11-24', '2026-11-24'));
    expect(report).toMatchObject({
      isComplete: true,
      checked: { from: '2026-11-24T00:00:00.0000000Z', to: '2026-11-24T12:00:00.0000000Z' },
      notChecked: [{ from: '2026-11-24T12:00:00.0000000Z', to: '2026-11-25T00:00:00.0000000Z' }],
      gaps: [],
      blobs: 2,
      listed: 4,
      exported: 5,
      superseded: 1,
      missing: { count: 0, first: [] },
      duplicated: { count: 0, first: [] },
    });
    // The API was listed over the covered part only.
    expect(source.windows).toEqual([
      { from: '2026-11-24T00:00:00.0000000Z', until: '2026-11-24T12:00:00.0000001Z' },
    ]);
  });

  it('lists the covered part in consecutive time slices at once with listConcurrency, with the same findings', async () => {
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T12:00:00Z'),
      versions: ['1@2026-11-24T01:00:00Z', '2@2026-11-24T03:00:00Z', '3@2026-11-24T09:00:00Z'],
    });
    current(
      '1@2026-11-24T01:00:00Z',
      '2@2026-11-24T03:00:00Z',
      '3@2026-11-24T09:00:00Z',
      '4@2026-11-24T06:00:00Z',
    );
    const report = await verifyExports(
      source,
      exports,
      options('2026-11-24', '2026-11-24', { listConcurrency: 4 }),
    );
    expect(report).toMatchObject({ isComplete: false, listed: 4, missing: { count: 1 } });
    expect(report.missing.first).toEqual([{ id: '4', lastUpdate: '2026-11-24T06:00:00Z' }]);
    // Four slices that tile the covered part: none overlaps, none leaves a gap.
    expect([...source.windows].sort((a, b) => (a.from < b.from ? -1 : 1))).toEqual([
      { from: '2026-11-24T00:00:00.0000000Z', until: '2026-11-24T03:00:00.0000000Z' },
      { from: '2026-11-24T03:00:00.0000000Z', until: '2026-11-24T06:00:00.0000000Z' },
      { from: '2026-11-24T06:00:00.0000000Z', until: '2026-11-24T09:00:00.0000000Z' },
      { from: '2026-11-24T09:00:00.0000000Z', until: '2026-11-24T12:00:00.0000001Z' },
    ]);
  });

  it('names the missing versions of a removed blob, and the gap it leaves', async () => {
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T02:00:00Z', '1'),
      versions: ['1@2026-11-24T02:00:00Z'],
    });
    // The blob from 02:00 (ids 1) to 04:00 is gone.
    exports.add({
      from: at('2026-11-24T04:00:00Z'),
      end: at('2026-11-24T06:00:00Z'),
      versions: ['9@2026-11-24T04:00:00Z', '8@2026-11-24T05:00:00Z'],
    });
    current('1@2026-11-24T02:00:00Z', '7@2026-11-24T03:00:00Z', '6@2026-11-24T02:00:00Z');
    current('9@2026-11-24T04:00:00Z', '8@2026-11-24T05:00:00Z');

    const report = await verifyExports(
      source,
      exports,
      options('2026-11-24', '2026-11-24T06:00:00Z', { sampleSize: 1 }),
    );
    expect(report.isComplete).toBe(false);
    expect(report.missing).toEqual({
      count: 2,
      first: [{ id: '6', lastUpdate: '2026-11-24T02:00:00Z' }],
    });
    expect(report.gaps).toEqual([
      { from: '2026-11-24T02:00:00.0000000Z', to: '2026-11-24T04:00:00.0000000Z' },
    ]);
    expect(report.notChecked).toEqual([]);
  });

  it('reports a version that two blobs hold as duplicated, with both blobs', async () => {
    const first = exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T02:00:00Z'),
      versions: ['1@2026-11-24T01:00:00Z'],
    });
    const second = exports.add({
      from: at('2026-11-24T02:00:00Z'),
      end: at('2026-11-24T04:00:00Z'),
      versions: ['1@2026-11-24T01:00:00Z', '2@2026-11-24T03:00:00Z'],
      late: 1,
    });
    current('1@2026-11-24T01:00:00Z', '2@2026-11-24T03:00:00Z');

    const report = await verifyExports(source, exports, options('2026-11-24', '2026-11-25'));
    expect(report.isComplete).toBe(false);
    expect(report.missing.count).toBe(0);
    expect(report.duplicated).toEqual({
      count: 1,
      first: [{ id: '1', lastUpdate: '2026-11-24T01:00:00Z', blobs: [first, second].sort() }],
    });
  });

  it('checks the versions at the end instant that the end checkpoint names, and leaves the others to the next blob', async () => {
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T05:00:00.5Z', 'a'),
      versions: ['a@2026-11-24T05:00:00.5Z'],
    });
    current('a@2026-11-24T05:00:00.5Z', 'b@2026-11-24T05:00:00.5Z');
    const report = await verifyExports(source, exports, options('2026-11-24', '2026-11-25'));
    expect(report).toMatchObject({
      isComplete: true,
      checked: { to: '2026-11-24T05:00:00.5000000Z', idsAtTo: ['a'] },
      listed: 1,
      exported: 1,
    });

    exports.blobs.clear();
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T05:00:00.5Z', 'a', 'b'),
      versions: ['a@2026-11-24T05:00:00.5Z'],
    });
    const missingB = await verifyExports(source, exports, options('2026-11-24', '2026-11-25'));
    expect(missingB.missing.first).toEqual([{ id: 'b', lastUpdate: '2026-11-24T05:00:00.5Z' }]);
  });

  it('finds a version indexed late in a blob of the next day, within EXPORT_REREAD_WINDOW', async () => {
    exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-25T00:00:00Z'),
      versions: ['1@2026-11-24T10:00:00Z'],
    });
    // The re-read after midnight found 2, updated at 23:50, and wrote it into the first blob of the next day.
    exports.add({
      from: at('2026-11-25T00:00:00Z'),
      end: at('2026-11-25T01:00:00Z'),
      versions: ['2@2026-11-24T23:50:00Z', '3@2026-11-25T00:30:00Z'],
      late: 1,
    });
    current('1@2026-11-24T10:00:00Z', '2@2026-11-24T23:50:00Z', '3@2026-11-25T00:30:00Z');

    const report = await verifyExports(source, exports, options('2026-11-24', '2026-11-24'));
    expect(report).toMatchObject({ isComplete: true, listed: 2, exported: 2, notChecked: [] });
    expect(dayFolder(exports.listedDays![1])).toBe('2026/11/25');

    // Without a re-read window no blob of the next day is read: the late version shows as missing.
    const without = await verifyExports(
      source,
      exports,
      options('2026-11-24', '2026-11-24', { rereadWindowInMs: 0 }),
    );
    expect(without.missing.first).toEqual([{ id: '2', lastUpdate: '2026-11-24T23:50:00Z' }]);
  });

  it('checks only the part of the range the blobs cover, and nothing without blobs', async () => {
    exports.add({
      from: at('2026-11-24T06:00:00Z'),
      end: at('2026-11-24T08:00:00Z'),
      versions: ['2@2026-11-24T07:00:00Z'],
    });
    // 1 (before the export began) and 3 (after its end) are in the range but not in the covered part.
    current('1@2026-11-24T05:00:00Z', '2@2026-11-24T07:00:00Z', '3@2026-11-24T09:00:00Z');
    const report = await verifyExports(source, exports, options('2026-11-24', '2026-11-24'));
    expect(report).toMatchObject({
      isComplete: true,
      checked: { from: '2026-11-24T06:00:00.0000000Z', to: '2026-11-24T08:00:00.0000000Z' },
      notChecked: [
        { from: '2026-11-24T00:00:00.0000000Z', to: '2026-11-24T06:00:00.0000000Z' },
        { from: '2026-11-24T08:00:00.0000000Z', to: '2026-11-25T00:00:00.0000000Z' },
      ],
      listed: 1,
    });

    const empty = await verifyExports(source, exports, options('2026-11-26', '2026-11-26'));
    expect(empty).toMatchObject({
      checked: undefined,
      notChecked: [{ from: '2026-11-26T00:00:00.0000000Z', to: '2026-11-27T00:00:00.0000000Z' }],
      listed: 0,
    });
    expect(source.windows).toHaveLength(1); // the API was not asked for a range nothing covers
  });

  it("skips another tenant's blobs, reports a blob that is not this tool's, and reads only the blobs that can hold the range", async () => {
    const early = exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T00:20:00Z'),
      versions: ['0@2026-11-24T00:10:00Z'],
    });
    exports.add({
      from: at('2026-11-24T00:20:00Z'),
      end: at('2026-11-24T02:00:00Z'),
      versions: ['1@2026-11-24T01:00:00Z'],
    });
    const foreign = exports.add({
      from: at('2026-11-24T00:00:00Z'),
      end: at('2026-11-24T02:00:00Z'),
      versions: ['1@2026-11-24T01:00:00Z'],
      tenantId: 'fabrikam.onmicrosoft.com',
    });
    exports.put('incidents/2026/11/24/planted.json', [], { api: 'graph' });
    current('1@2026-11-24T01:00:00Z');

    const report = await verifyExports(
      source,
      exports,
      options('2026-11-24T00:30:00Z', '2026-11-24T02:00:00Z'),
    );
    expect(report).toMatchObject({
      otherTenantBlobs: 1,
      unreadableBlobs: [
        {
          blob: 'incidents/2026/11/24/planted.json',
          reason: 'is not named as this tool names export blobs',
        },
      ],
      missing: { count: 0 },
      duplicated: { count: 0 },
      isComplete: false,
    });
    expect(exports.reads).not.toContain(foreign);
    expect(exports.reads).not.toContain(early);
  });
});
