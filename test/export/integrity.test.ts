import { createHash } from 'node:crypto';
import type { ManifestBlob, RunSummary } from '../../src/export/exportRun';
import { decodeExportBlob } from '../../src/export/recordDecoder';
import { World } from '../support/world';

const HOUR = 3_600_000;

const md5 = (bytes: Buffer): string => createHash('md5').update(bytes).digest('base64');
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe.each([
  ['json', 'none'],
  ['json', 'gzip'],
  ['jsonl', 'none'],
  ['jsonl', 'gzip'],
] as const)('blobs that prove themselves (%s, compression %s)', (format, compression) => {
  let world: World;
  beforeAll(async () => {
    world = await World.start({
      settings: { EXPORT_FORMAT: format, EXPORT_COMPRESSION: compression, EXPORT_INITIAL_LOOKBACK: 'PT72H' },
      // Pages of 10 and blobs cut at 150 kB: several blocks per blob, several blobs per run.
      composition: { pageSize: 10, maxBlobBytes: 150_000 },
    });
  });
  afterAll(async () => {
    await world.close();
  });

  it('commits every blob with the Content-MD5 of its bytes, and the manifest lists each with records, size and SHA-256', async () => {
    const now = Date.now();
    // Only the last hours hold incidents: the quiet midnights before are carried by empty blobs.
    world.tenant.store.generate(70, { from: new Date(now - 6 * HOUR), to: new Date(now - 60_000) });
    const first = await world.run();
    expect(first.outcome).toBe('succeeded');
    for (const incident of world.tenant.store.all().slice(0, 15)) world.tenant.store.update(incident.id);
    world.advance(1100); // past the settle delay
    const second = await world.run();
    expect(second).toMatchObject({ outcome: 'succeeded', incidents: 15 });

    // What Storage holds, read back through the SDK.
    const stored: ManifestBlob[] = [];
    let multiBlock = 0;
    let empty = 0;
    for await (const item of world.container.listBlobsFlat({ prefix: 'incidents/', includeMetadata: true })) {
      const client = world.container.getBlockBlobClient(item.name);
      const bytes = await client.downloadToBuffer();
      const props = await client.getProperties();
      expect(props.contentMD5).toBeDefined();
      expect(Buffer.from(props.contentMD5!).toString('base64')).toBe(md5(bytes));
      // The listing shows the same Content-MD5 (what `az storage blob download` checks against).
      expect(Buffer.from(item.properties.contentMD5!).toString('base64')).toBe(md5(bytes));
      const records = decodeExportBlob(item.name, bytes);
      expect(records).toHaveLength(Number(item.metadata!.recordcount));
      const { committedBlocks } = await client.getBlockList('committed');
      if (committedBlocks!.length > 1) multiBlock++;
      if (records.length === 0) empty++;
      stored.push({ name: item.name, records: records.length, bytes: bytes.length, sha256: sha256(bytes) });
    }
    expect(multiBlock).toBeGreaterThan(1);
    expect(empty).toBeGreaterThan(0);

    // Each run's manifest lists exactly the blobs it committed; together, every blob in the container.
    const manifests: RunSummary[] = [];
    for (const name of await world.blobNames('runs/')) {
      const body = await world.container.getBlockBlobClient(name).downloadToBuffer();
      manifests.push(JSON.parse(body.toString('utf8')) as RunSummary);
    }
    expect(manifests.map((m) => m.runId).sort()).toEqual([first.runId, second.runId].sort());
    const listed = manifests.flatMap((m) => m.committedBlobs);
    const byName = (a: ManifestBlob, b: ManifestBlob): number => (a.name < b.name ? -1 : 1);
    expect([...listed].sort(byName)).toEqual([...stored].sort(byName));
    for (const m of manifests) {
      expect(m.committedBlobs.filter((b) => b.records > 0).map((b) => b.name)).toEqual(m.blobNames);
      expect(m.committedBlobs.reduce((n, b) => n + b.records, 0)).toBe(m.incidents);
    }
    // The log line stays short: no list of blobs in it.
    for (const line of world.logs.lines.filter((l) => l.text.startsWith('export summary ')))
      expect(line.text).not.toMatch(/committedBlobs|sha256/);
  });
});
