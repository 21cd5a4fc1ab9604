import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createDownloadCommand } from '../../src/cli/downloadCommand';
import { createContainerClient } from '../../src/composition/compositionRoot';
import { parseStorageConfig } from '../../src/config';
import { formatTicks, parseTimestamp } from '../../src/export/timestamp';
import { DOWNLOAD_STATE_FILE, downloadExports } from '../../src/operations/downloadExports';
import {
  decodeExportBlob,
  MAX_INFLATED_BYTES_CAP,
  maxInflatedBytes,
} from '../../src/operations/exportReader';
import { parseTimeRange } from '../../src/operations/timeRange';
import { runCli, settingsFile, tempDir, type CliResult } from '../support/cli';
import { World, type ExportedVersion } from '../support/world';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const ticks = (text: string): bigint => parseTimestamp(text)!.ticks;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const key = (v: { id: string; lastUpdate: string }): string => `${v.id}@${ticks(v.lastUpdate)}`;

/** Versions in the order --merge promises: last update in exact ticks, then id (numerically). */
function inMergeOrder(versions: readonly ExportedVersion[]): string[] {
  return [...versions]
    .sort((a, b) =>
      ticks(a.lastUpdate) !== ticks(b.lastUpdate)
        ? ticks(a.lastUpdate) < ticks(b.lastUpdate)
          ? -1
          : 1
        : Number(a.id) - Number(b.id),
    )
    .map(key);
}

/** The newest exported version of each incident. */
function newestOf(versions: readonly ExportedVersion[]): string[] {
  const newest = new Map<string, ExportedVersion>();
  for (const v of versions) {
    const seen = newest.get(v.id);
    if (!seen || ticks(seen.lastUpdate) < ticks(v.lastUpdate)) newest.set(v.id, v);
  }
  return inMergeOrder([...newest.values()]);
}

function readVersionsFile(path: string, format: 'json' | 'jsonl'): string[] {
  const text = readFileSync(path, 'utf8');
  const records = (
    format === 'json'
      ? (JSON.parse(text) as Record<string, unknown>[])
      : text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>)
  ) as { id: string; lastUpdateDateTime: string }[];
  return records.map((r) => key({ id: r.id, lastUpdate: r.lastUpdateDateTime }));
}

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).map((f) => f.split('\\').join('/')).sort();
}

describe('defender-export download', () => {
  let world: World;
  let settings: string;
  let out: string;
  let dataBlobs: { name: string; gz: boolean; recordcount: number }[];
  const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
  const now = Date.now();

  beforeAll(async () => {
    // Exports written by the real exporter: json blobs first, then gzip json lines, with updated incidents.
    world = await World.start({
      settings: { EXPORT_INITIAL_LOOKBACK: 'PT120H' },
      composition: { maxBlobBytes: 40_000 },
    });
    // Two busy stretches around more than two quiet days: a whole UTC day without incidents gets an empty blob
    // that carries the position over its midnight.
    world.tenant.store.generate(60, { from: new Date(now - 118 * HOUR), to: new Date(now - 100 * HOUR) });
    world.tenant.store.generate(100, { from: new Date(now - 40 * HOUR), to: new Date(now - 2 * HOUR) });
    expect((await world.run()).outcome).toBe('succeeded');
    world.configure({
      settings: { EXPORT_INITIAL_LOOKBACK: 'PT120H', EXPORT_FORMAT: 'jsonl', EXPORT_COMPRESSION: 'gzip' },
      composition: { maxBlobBytes: 40_000 },
    });
    // The blob after the first run's checkpoint keeps the name (json) fixed with that checkpoint; the new
    // settings apply from the next one on, so a second batch of updates lands in gzip json lines.
    for (const batch of [world.tenant.store.all().slice(0, 12), world.tenant.store.all().slice(12, 25)]) {
      for (const incident of batch) world.tenant.store.update(incident.id);
      world.advance(1100);
      expect((await world.run()).outcome).toBe('succeeded');
    }

    dataBlobs = [];
    for await (const blob of world.container.listBlobsFlat({ prefix: 'incidents/', includeMetadata: true })) {
      const recordcount = Number(blob.metadata!.recordcount);
      if (recordcount > 0) dataBlobs.push({ name: blob.name, gz: blob.name.endsWith('.gz'), recordcount });
    }
    settings = settingsFile({
      EXPORT_STORAGE_CONNECTION_STRING: world.settings.EXPORT_STORAGE_CONNECTION_STRING!,
      EXPORT_CONTAINER: world.container.containerName,
    });
  });
  afterAll(async () => {
    await world.close();
  });
  beforeEach(() => {
    out = tempDir();
  });

  /** `defender-export download --<option> <value>...` (true: a flag) on the world's container by default. */
  function download(
    options: Readonly<Record<string, string | true>>,
    extra: { settings?: string; onStderr?: (text: string) => void } = {},
  ): Promise<CliResult> {
    const args = Object.entries(options).flatMap(([name, value]) =>
      value === true ? [`--${name}`] : [`--${name}`, value],
    );
    // The command on the world's clock: an open range ends at the world's now.
    return runCli([...args, '--settings', extra.settings ?? settings], {
      command: createDownloadCommand({ clock: world.clock }),
      ...(extra.onStderr ? { onStderr: extra.onStderr } : {}),
    });
  }

  it('downloads a range of json and gzip json-lines blobs, decompressed and verified, and merges them', async () => {
    expect(dataBlobs.some((b) => b.gz)).toBe(true);
    expect(dataBlobs.some((b) => !b.gz)).toBe(true);
    const merged = join(out, 'all.json');
    const latest = join(out, 'latest.json');
    const result = await download({
      from: day(now - 125 * HOUR),
      to: day(now),
      out: join(out, 'files'),
      merge: merged,
      latest,
      json: true,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      blobs: dataBlobs.length,
      downloaded: dataBlobs.length,
      alreadyPresent: 0,
      // Every blob checked by its Content-MD5 and by the manifest of the run that wrote it.
      verifiedByContentMd5: dataBlobs.length,
      withoutContentMd5: 0,
      verifiedByManifest: dataBlobs.length,
      notInManifest: 0,
      failures: [],
      interrupted: false,
      merge: { file: merged },
      latest: { file: latest },
    });
    expect(summary.emptyBlobs).toBeGreaterThan(0); // the blobs that carry the position over quiet days

    // The container's layout, decompressed, byte for byte; and the resume record.
    expect(
      filesUnder(join(out, 'files')).filter((f) => f.startsWith('incidents/') && f.includes('.json')),
    ).toEqual(dataBlobs.map((b) => b.name.replace(/\.gz$/, '')).sort());
    for (const blob of dataBlobs) {
      const bytes = await world.container.getBlockBlobClient(blob.name).downloadToBuffer();
      const local = readFileSync(join(out, 'files', blob.name.replace(/\.gz$/, '')));
      expect(local.equals(blob.gz ? gunzipSync(bytes) : bytes)).toBe(true);
    }
    expect(existsSync(join(out, 'files', DOWNLOAD_STATE_FILE))).toBe(true);

    const exported = await world.exported();
    expect(exported.length).toBe(185);
    expect(summary.records).toBe(185);
    expect(summary.merge.versions).toBe(185);
    expect(readVersionsFile(merged, 'json')).toEqual(inMergeOrder(exported));
    // --latest: the newest version of each incident, which is the tenant's current one.
    expect(summary.latest.incidents).toBe(160);
    const newest = readVersionsFile(latest, 'json');
    expect(newest).toEqual(newestOf(exported));
    expect(newest.sort()).toEqual(
      world.tenant.store
        .all()
        .map((i) => `${i.id}@${ticks(i.lastUpdateTime)}`)
        .sort(),
    );

    // Run again with --format jsonl: everything is already there and intact, nothing is downloaded.
    const again = await download({
      from: day(now - 125 * HOUR),
      out: join(out, 'files'),
      merge: join(out, 'all.jsonl'),
      latest: join(out, 'latest.jsonl'),
      format: 'jsonl',
    });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      new RegExp(`^0 blob\\(s\\) downloaded \\(0 B\\), ${dataBlobs.length} already present and intact`),
    );
    expect(readVersionsFile(join(out, 'all.jsonl'), 'jsonl')).toEqual(inMergeOrder(exported));
    expect(readVersionsFile(join(out, 'latest.jsonl'), 'jsonl')).toEqual(newestOf(exported));
  });

  it('narrows --merge and --latest to an exact date-time range, and downloads only the blobs that meet it', async () => {
    const exported = await world.exported();
    const sorted = inMergeOrder(exported);
    // From the exact update time of one version (inclusive) to that of another (exclusive).
    const fromKey = sorted[40]!;
    const toKey = sorted[120]!;
    const from = formatTicks(BigInt(fromKey.split('@')[1]!));
    const to = formatTicks(BigInt(toKey.split('@')[1]!));
    const result = await download({
      from,
      to,
      out,
      merge: join(out, 'range.jsonl'),
      latest: join(out, 'range-latest.jsonl'),
      format: 'jsonl',
      json: true,
    });
    expect(result.code).toBe(0);
    const inRange = exported.filter(
      (v) => ticks(v.lastUpdate) >= ticks(from) && ticks(v.lastUpdate) < ticks(to),
    );
    expect(readVersionsFile(join(out, 'range.jsonl'), 'jsonl')).toEqual(inMergeOrder(inRange));
    expect(readVersionsFile(join(out, 'range.jsonl'), 'jsonl')).toContain(fromKey);
    expect(readVersionsFile(join(out, 'range.jsonl'), 'jsonl')).not.toContain(toKey);
    expect(readVersionsFile(join(out, 'range-latest.jsonl'), 'jsonl')).toEqual(newestOf(inRange));
    const summary = JSON.parse(result.stdout);
    const blobsInRange = new Set(inRange.map((v) => v.blob));
    expect(summary.downloaded).toBeGreaterThanOrEqual(blobsInRange.size);
    expect(summary.downloaded).toBeLessThan(dataBlobs.length);
  });

  it('resumes after an interruption: keeps intact files, replaces a damaged one, removes half-written ones', async () => {
    const container = createContainerClient(
      parseStorageConfig({
        EXPORT_STORAGE_CONNECTION_STRING: world.settings.EXPORT_STORAGE_CONNECTION_STRING!,
        EXPORT_CONTAINER: world.container.containerName,
      }),
    );
    const range = parseTimeRange(day(now - 125 * HOUR), undefined, Date.now());
    const controller = new AbortController();
    const first = await downloadExports(container, {
      range,
      outDir: out,
      concurrency: 1,
      abortSignal: controller.signal,
      onProgress: (p) => {
        if (p.files === 3) controller.abort();
      },
    });
    expect(first).toMatchObject({ interrupted: true, downloaded: 3, failures: [] });
    const written = filesUnder(out).filter((f) => /^incidents\/.*\.jsonl?$/.test(f));
    expect(written).toHaveLength(3);

    // A kill in the middle of a write leaves a hidden .partial file; a damaged file no longer matches its record.
    const damaged = join(out, written[1]!);
    truncateSync(damaged, 10);
    const partial = join(dirname(damaged), `.${written[1]!.split('/').pop()!}.0a1b2c3d.partial`);
    writeFileSync(partial, '[{"id":');

    const progress: string[] = [];
    const second = await download(
      { from: day(now - 125 * HOUR), out, progress: true, json: true },
      { onStderr: (t) => progress.push(t) },
    );
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({
      downloaded: dataBlobs.length - 2,
      alreadyPresent: 2,
      failures: [],
    });
    expect(existsSync(partial)).toBe(false);
    const damagedBlob = dataBlobs.find((b) => b.name.replace(/\.gz$/, '') === written[1])!;
    const original = await world.container.getBlockBlobClient(damagedBlob.name).downloadToBuffer();
    expect(readFileSync(damaged).equals(damagedBlob.gz ? gunzipSync(original) : original)).toBe(true);
    // The progress bar went to stderr only: count, bytes, rate and ETA.
    expect(progress.join('')).toMatch(
      new RegExp(
        `\\] +${dataBlobs.length - 2}/${dataBlobs.length - 2} files +[\\d.]+ (KiB|MiB)/[\\d.]+ (KiB|MiB) +[\\d.]+ (B|KiB|MiB)/s +ETA 0s`,
      ),
    );
    expect(second.stdout).not.toMatch(/ETA/);
  });

  it('stops on Ctrl-C with exit 130, and the same command then completes', async () => {
    const options = { from: day(now - 125 * HOUR), out, progress: true } as const;
    let signalled = false;
    const interrupted = await download(options, {
      onStderr: (text) => {
        if (!signalled && text.includes(' files ')) {
          signalled = true;
          process.emit('SIGINT');
        }
      },
    });
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/Interrupted: stopping; run the same command again to resume/);
    expect(process.listenerCount('SIGINT')).toBe(0);
    const resumed = await download(options);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(
      /\nchecked: (\d+) by their Content-MD5 \(0 have none, written before the exporter set it\), \1 by the size and SHA-256 in the manifest of the run that wrote them \(0 listed in none\)\n$/,
    );
    expect(filesUnder(out).filter((f) => /^incidents\/.*\.jsonl?$/.test(f))).toHaveLength(dataBlobs.length);
  });

  it('refuses to copy a blob that does not verify, says which, and writes no merged file', async () => {
    const other = await World.start({ tenant: world.tenant });
    try {
      world.tenant.store.generate(10, { from: new Date(now - 5 * HOUR), to: new Date(now - 3 * HOUR) });
      await other.run();
      const [name] = await other.dataBlobNames();
      const client = other.container.getBlockBlobClient(name!);
      const props = await client.getProperties();
      await client.setMetadata({
        ...props.metadata,
        recordcount: String(Number(props.metadata!.recordcount) + 1),
      });
      const day5 = new Date(now - 5 * HOUR).toISOString().slice(0, 10);
      await other.container
        .getBlockBlobClient(`incidents/${day5.replace(/-/g, '/')}/evil.json`)
        .upload('[]', 2, { metadata: { recordcount: '1' } });
      const merged = join(out, 'all.json');
      const result = await download(
        { from: day(now - 50 * HOUR), out, merge: merged },
        {
          settings: settingsFile({
            EXPORT_STORAGE_CONNECTION_STRING: other.settings.EXPORT_STORAGE_CONNECTION_STRING!,
            EXPORT_CONTAINER: other.container.containerName,
          }),
        },
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error: ${name}: it holds ${props.metadata!.recordcount} records, but its metadata says`,
      );
      expect(result.stderr).toMatch(/evil\.json: not named as this exporter names blobs; not copied/);
      expect(result.stderr).toMatch(/--merge and --latest were not written/);
      expect(existsSync(merged)).toBe(false);
      expect(existsSync(join(out, name!))).toBe(false);
      expect(filesUnder(out).some((f) => f.includes('evil'))).toBe(false);
    } finally {
      await other.container.deleteIfExists();
    }
  });

  /** Another world on the same tenant with a few exports, and settings for its container. */
  async function smallWorld(
    compression: 'none' | 'gzip' = 'none',
  ): Promise<{ other: World; settings: string }> {
    const other = await World.start({ tenant: world.tenant, settings: { EXPORT_COMPRESSION: compression } });
    world.tenant.store.generate(10, { from: new Date(now - 5 * HOUR), to: new Date(now - 3 * HOUR) });
    expect((await other.run()).outcome).toBe('succeeded');
    return {
      other,
      settings: settingsFile({
        EXPORT_STORAGE_CONNECTION_STRING: other.settings.EXPORT_STORAGE_CONNECTION_STRING!,
        EXPORT_CONTAINER: other.container.containerName,
      }),
    };
  }

  it('refuses a gzip bomb under an export name, names it, and still lands the other blobs', async () => {
    const { other, settings: otherSettings } = await smallWorld('gzip');
    try {
      const exported = await other.dataBlobNames();
      const props = await other.container.getBlockBlobClient(exported[0]!).getProperties();
      // 16 MiB of zeros: 16 KiB gzipped; the command below is given a 1 MiB limit to keep the test fast.
      const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));
      const bombName = `${exported[0]!.slice(0, exported[0]!.lastIndexOf('/'))}/0000000000000-0123456789ab.json.gz`;
      await other.container.getBlockBlobClient(bombName).upload(bomb, bomb.length, {
        metadata: { ...props.metadata, recordcount: '1' },
        blobHTTPHeaders: { blobContentType: 'application/json', blobContentEncoding: 'gzip' },
      });
      const limits: number[] = [];
      const command = createDownloadCommand({
        maxInflatedBytes: (compressed: number) => {
          limits.push(compressed);
          return 1024 * 1024;
        },
      });
      const result = await runCli(
        ['--from', day(now - 3 * DAY), '--out', out, '--json', '--settings', otherSettings],
        { command },
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error: ${bombName}: Export blob '${bombName}' inflates beyond 1 MiB (${bomb.length} bytes stored); ` +
          'it is not an export of this tool: move it away',
      );
      expect(limits).toContain(bomb.length);
      const summary = JSON.parse(result.stdout);
      expect(summary).toMatchObject({ downloaded: exported.length, blobs: exported.length + 1 });
      for (const name of exported) expect(existsSync(join(out, name.replace(/\.gz$/, '')))).toBe(true);
      expect(existsSync(join(out, bombName.replace(/\.gz$/, '')))).toBe(false);
    } finally {
      await other.container.deleteIfExists();
    }
  });

  it('bounds inflation by default at max(64 MiB, 200 x the stored size), at most 512 MiB', () => {
    const MiB = 1024 * 1024;
    expect(maxInflatedBytes(611 * 1024)).toBe(200 * 611 * 1024);
    expect(maxInflatedBytes(100 * 1024)).toBe(64 * MiB);
    expect(maxInflatedBytes(32 * MiB)).toBe(MAX_INFLATED_BYTES_CAP);
    expect(MAX_INFLATED_BYTES_CAP).toBeLessThanOrEqual(512 * MiB);
    expect(MAX_INFLATED_BYTES_CAP).toBeGreaterThan(500 * MiB);
    // The reader applies it: a bomb past the default limit of its size is refused without inflating it whole.
    const bomb = gzipSync(Buffer.alloc(65 * MiB));
    expect(() => decodeExportBlob('incidents/2026/01/01/0000000000000-0123456789ab.json.gz', bomb)).toThrow(
      /inflates beyond 64 MiB/,
    );
  });

  it('downloads X.json and X.json.gz to two files, keeps both on a rerun, and merges the versions of both', async () => {
    const { other, settings: otherSettings } = await smallWorld('none');
    try {
      const blobs = await other.dataBlobNames();
      const total = (await other.exported()).length;
      const plain = blobs[0];
      const client = other.container.getBlockBlobClient(plain!);
      const props = await client.getProperties();
      // An older exporter could leave both under one checkpoint name: the sibling holds other versions.
      const records = JSON.parse((await client.downloadToBuffer()).toString('utf8')) as {
        id: string;
        lastUpdateDateTime: string;
      }[];
      const siblingRecords = records.map((r) => ({ ...r, id: `${r.id}0000` }));
      const sibling = gzipSync(JSON.stringify(siblingRecords));
      await other.container.getBlockBlobClient(`${plain!}.gz`).upload(sibling, sibling.length, {
        metadata: { ...props.metadata, compression: 'gzip' },
        blobHTTPHeaders: { blobContentType: 'application/json', blobContentEncoding: 'gzip' },
      });
      const merged = join(out, 'all.json');
      const files = join(out, 'files');
      const args = ['download', '--from', day(now - 3 * DAY), '--out', files, '--merge', merged, '--json'];
      const first = await runCli([...args, '--settings', otherSettings]);
      expect(first.stderr).not.toMatch(/error/);
      expect(first.code).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({
        downloaded: blobs.length + 1,
        files: blobs.length + 1,
        records: total + records.length,
        // The sibling is not in the manifest of the run its metadata names: checked by its Content-MD5 only.
        verifiedByContentMd5: blobs.length + 1,
        verifiedByManifest: blobs.length,
        notInManifest: 1,
      });
      const local = filesUnder(files).filter((f) => f.startsWith('incidents/') && /\.json$/.test(f));
      expect(local).toEqual([...blobs, plain!.replace(/\.json$/, '.gunzipped.json')].sort());
      expect(JSON.parse(readFileSync(join(files, plain!), 'utf8'))).toEqual(records);
      expect(
        JSON.parse(readFileSync(join(files, plain!.replace(/\.json$/, '.gunzipped.json')), 'utf8')),
      ).toEqual(siblingRecords);
      const versions = readVersionsFile(merged, 'json');
      expect(versions).toHaveLength(total + records.length);
      for (const r of [...records, ...siblingRecords])
        expect(versions).toContain(key({ id: r.id, lastUpdate: r.lastUpdateDateTime }));

      const rerun = await runCli([...args, '--settings', otherSettings]);
      expect(rerun.code).toBe(0);
      expect(JSON.parse(rerun.stdout)).toMatchObject({
        downloaded: 0,
        alreadyPresent: blobs.length + 1,
        records: total + records.length,
      });
      expect(readVersionsFile(merged, 'json')).toHaveLength(total + records.length);
    } finally {
      await other.container.deleteIfExists();
    }
  });

  it('fails a blob whose bytes were changed after the commit, by manifest or Content-MD5, keeps the others, and passes once restored', async () => {
    const other = await World.start({
      tenant: world.tenant,
      composition: { maxBlobBytes: 20_000, pageSize: 5 },
    });
    try {
      world.tenant.store.generate(20, { from: new Date(now - 5 * HOUR), to: new Date(now - 3 * HOUR) });
      expect((await other.run()).outcome).toBe('succeeded');
      const blobs = await other.dataBlobNames();
      expect(blobs.length).toBeGreaterThanOrEqual(4);
      const [rewritten, forged, withoutMd5] = blobs as [string, string, string];
      const originals = new Map<string, { bytes: Buffer; md5: Uint8Array }>();
      for (const name of [rewritten, forged, withoutMd5]) {
        const client = other.container.getBlockBlobClient(name);
        originals.set(name, {
          bytes: await client.downloadToBuffer(),
          md5: (await client.getProperties()).contentMD5!,
        });
      }
      /** Overwrites a blob with the SDK, keeping its metadata and content type: a valid export, other bytes. */
      const tamper = async (name: string): Promise<void> => {
        const client = other.container.getBlockBlobClient(name);
        const props = await client.getProperties();
        const records = JSON.parse(originals.get(name)!.bytes.toString('utf8')) as Record<string, unknown>[];
        records[0] = { ...records[0], title: 'changed after the export' };
        const body = Buffer.from(JSON.stringify(records));
        await client.upload(body, body.length, {
          metadata: props.metadata!,
          blobHTTPHeaders: { blobContentType: props.contentType! },
        });
      };
      // Rewritten whole: Storage gives the upload a Content-MD5 of the new bytes; only the manifest tells.
      await tamper(rewritten);
      // Rewritten and the old Content-MD5 set back on it: the Content-MD5 tells.
      await tamper(forged);
      await other.container.getBlockBlobClient(forged).setHTTPHeaders({
        blobContentType: 'application/json; charset=utf-8',
        blobContentMD5: originals.get(forged)!.md5,
      });
      // A blob of an older version, without Content-MD5: checked by the manifest only, not failed.
      // (Its blocks committed again without one, as those versions committed them; same bytes, same metadata.)
      const old = other.container.getBlockBlobClient(withoutMd5);
      const { committedBlocks } = await old.getBlockList('committed');
      await old.commitBlockList(
        committedBlocks!.map((b) => b.name),
        {
          metadata: (await old.getProperties()).metadata!,
          blobHTTPHeaders: { blobContentType: 'application/json; charset=utf-8' },
        },
      );
      expect((await old.getProperties()).contentMD5).toBeUndefined();
      const otherSettings = settingsFile({
        EXPORT_STORAGE_CONNECTION_STRING: other.settings.EXPORT_STORAGE_CONNECTION_STRING!,
        EXPORT_CONTAINER: other.container.containerName,
      });
      const from = day(now - 3 * DAY);
      const args = ['download', '--from', from, '--out', out, '--json', '--settings', otherSettings];
      const result = await runCli(args);
      expect(result.code).toBe(1);
      const [manifest] = await other.blobNames('runs/');
      const original = originals.get(rewritten)!.bytes;
      expect(result.stderr).toContain(`error: ${rewritten}: its `);
      expect(result.stderr).toContain(
        `are not what run manifest '${manifest}' lists for it (${original.length} bytes, SHA-256 ${sha256(original)}): ` +
          'its Content-MD5 matches them, so the blob was rewritten whole after the run committed it',
      );
      expect(result.stderr).toContain(
        `error: ${forged}: its bytes do not match its Content-MD5 (received MD5 `,
      );
      expect(result.stderr).toContain('docs/deploy.md, "A blob fails verification"');
      const summary = JSON.parse(result.stdout);
      expect(summary).toMatchObject({
        blobs: blobs.length,
        downloaded: blobs.length - 2,
        verifiedByContentMd5: blobs.length - 3,
        withoutContentMd5: 1,
        verifiedByManifest: blobs.length - 2,
        notInManifest: 0,
      });
      expect(summary.failures.map((f: { blob: string }) => f.blob).sort()).toEqual(
        [rewritten, forged].sort(),
      );
      // The changed blobs are not kept; every other one is, byte for byte.
      expect(existsSync(join(out, rewritten))).toBe(false);
      expect(existsSync(join(out, forged))).toBe(false);
      for (const name of blobs.filter((b) => b !== rewritten && b !== forged)) {
        const bytes = await other.container.getBlockBlobClient(name).downloadToBuffer();
        expect(readFileSync(join(out, name)).equals(bytes)).toBe(true);
      }

      // Restored to what the run committed, the same command completes.
      for (const name of [rewritten, forged]) {
        const { bytes } = originals.get(name)!;
        await other.container.getBlockBlobClient(name).upload(bytes, bytes.length, {
          metadata: (await other.container.getBlockBlobClient(name).getProperties()).metadata!,
          blobHTTPHeaders: { blobContentType: 'application/json; charset=utf-8' },
        });
      }
      const restored = await runCli(args);
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);
      expect(JSON.parse(restored.stdout)).toMatchObject({
        downloaded: 2,
        alreadyPresent: blobs.length - 2,
        verifiedByContentMd5: 2,
        verifiedByManifest: 2,
        failures: [],
      });

      // A manifest that no longer reads cannot vouch for the blobs of its run: they fail, by name, and say why.
      await other.container.getBlockBlobClient(manifest!).upload('{"runId":', 9);
      const unreadable = await runCli([...args.slice(0, 3), '--out', tempDir(), '--settings', otherSettings]);
      expect(unreadable.code).toBe(1);
      expect(unreadable.stderr).toContain(
        `error: ${blobs[0]}: run manifest '${manifest}' of the run that wrote it does not read (`,
      );
      expect(unreadable.stderr).toMatch(
        /or move it out of runs\/ to check the blob by its Content-MD5 alone/,
      );
    } finally {
      await other.container.deleteIfExists();
    }
  });

  it('reads legacy exports by incidentId and lastUpdateTime for --latest', async () => {
    const legacy = await World.start({ api: 'legacy', settings: { EXPORT_COMPRESSION: 'gzip' } });
    try {
      legacy.tenant.store.generate(30, { from: new Date(now - 20 * HOUR), to: new Date(now - 2 * HOUR) });
      await legacy.run();
      const updated = legacy.tenant.store.all().slice(0, 6);
      for (const incident of updated) legacy.tenant.store.update(incident.id);
      legacy.advance(1100);
      await legacy.run();
      const latest = join(out, 'latest.jsonl');
      const result = await download(
        { from: day(now - DAY), out, latest, format: 'jsonl', json: true },
        {
          settings: settingsFile({
            EXPORT_STORAGE_CONNECTION_STRING: legacy.settings.EXPORT_STORAGE_CONNECTION_STRING!,
            EXPORT_CONTAINER: legacy.container.containerName,
          }),
        },
      );
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ records: 36, latest: { incidents: 30 } });
      const lines = readFileSync(latest, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { incidentId: number; lastUpdateTime: string });
      expect(lines.map((r) => `${r.incidentId}@${ticks(r.lastUpdateTime)}`).sort()).toEqual(
        legacy.tenant.store
          .all()
          .map((i) => `${i.id}@${ticks(i.lastUpdateTime)}`)
          .sort(),
      );
    } finally {
      await legacy.close();
    }
  });
});
