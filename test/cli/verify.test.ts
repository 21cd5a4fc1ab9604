import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { createVerifyCommand } from '../../src/cli/verifyCommand';
import type { CompositionOptions } from '../../src/composition/compositionRoot';
import { exportBlobName, readBlobMetadata } from '../../src/export/blobLayout';
import { formatTicks, parseTimestamp } from '../../src/export/timestamp';
import type { VerifyReport } from '../../src/operations/verifyExports';
import { runCli, settingsFile, type CliResult } from '../support/cli';
import { azuriteConnectionString, World } from '../support/world';

const HOUR = 3_600_000;
const ticks = (text: string): bigint => parseTimestamp(text)!.ticks;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Field of the Azurite connection string. */
function field(name: string): string {
  return new RegExp(`${name}=([^;]+)`).exec(azuriteConnectionString())![1]!;
}

describe('defender-export verify', () => {
  let world: World;
  const now = Date.now();
  const from = day(now - 3 * 24 * HOUR);

  beforeEach(async () => {
    // Exports written by the real exporter over several days, in small blobs, then updates exported again.
    world = await World.start({
      settings: { EXPORT_INITIAL_LOOKBACK: 'PT72H' },
      composition: { maxBlobBytes: 40_000 },
    });
    world.tenant.store.generate(160, { from: new Date(now - 70 * HOUR), to: new Date(now - 2 * HOUR) });
    expect((await world.run()).outcome).toBe('succeeded');
    for (const incident of world.tenant.store.all().slice(0, 12)) world.tenant.store.update(incident.id);
    world.advance(1100); // past EXPORT_SETTLE_DELAY (PT1S)
    expect((await world.run()).outcome).toBe('succeeded');
  });
  afterEach(async () => {
    world.tenant.intercept = undefined;
    await world.close();
  });

  /** `defender-export verify <args>` wired to the simulated tenant, with the world's settings over `settings`. */
  function verify(
    args: string[],
    settings: Record<string, string> = {},
    composition: Partial<CompositionOptions> = {},
  ): Promise<CliResult> {
    const command = createVerifyCommand(world.composition({ composition }));
    return runCli([...args, '--settings', settingsFile({ ...world.settings, ...settings })], { command });
  }

  /** The JSON report of a verify run (and its exit code). */
  async function report(args: string[] = ['--from', from], settings: Record<string, string> = {}) {
    const result = await verify([...args, '--json'], settings);
    return { code: result.code, stderr: result.stderr, report: JSON.parse(result.stdout) as VerifyReport };
  }

  /**
   * The current version (id@ticks) of every incident in the checked part: updated in [from, to), or at exactly
   * `to` with an id the last blob's end checkpoint names.
   */
  function currentIn(checked: VerifyReport['checked'] & object): string[] {
    return world.tenant.store
      .all()
      .filter((i) => {
        const t = ticks(i.lastUpdateTime);
        return (
          t >= ticks(checked.from) &&
          (t < ticks(checked.to) || (t === ticks(checked.to) && checked.idsAtTo.includes(String(i.id))))
        );
      })
      .map((i) => `${i.id}@${ticks(i.lastUpdateTime)}`)
      .sort();
  }

  /** The Graph list requests made since `since` (an index into the tenant's request log). */
  function listRequests(since: number) {
    return world.tenant.requests
      .slice(since)
      .filter((r) => r.api === 'graph' && r.path === '/v1.0/security/incidents');
  }

  it('verifies a correct export clean (exit 0), listing only ids and times, without alerts', async () => {
    const since = world.tenant.requests.length;
    // Graph answers $select with only the fields asked for: verify must need no more.
    world.tenant.intercept = ({ url }) =>
      url.searchParams.has('$select')
        ? {
            kind: 'corrupt',
            mutate: (document) => {
              const fields = url.searchParams.get('$select')!.split(',');
              document.value = document.value.map((item) =>
                Object.fromEntries(fields.map((f) => [f, item[f]])),
              );
            },
          }
        : undefined;

    const { code, report: r } = await report();
    expect(code).toBe(0);
    expect(r.isComplete).toBe(true);
    expect(r.checked).toBeDefined();
    const expected = currentIn(r.checked!);
    expect(expected.length).toBeGreaterThan(140);
    expect(r).toMatchObject({
      api: 'graph',
      listed: expected.length,
      exported: expected.length + 12, // the versions before the 12 updates are exported and superseded
      superseded: 12,
      missing: { count: 0 },
      duplicated: { count: 0 },
      gaps: [],
      unreadableBlobs: [],
    });
    expect(r.blobs).toBeGreaterThan(5);
    // The range starts before the export did (EXPORT_INITIAL_LOOKBACK) and ends after it: those parts are not checked.
    expect(r.notChecked.map((p) => [p.from, p.to])).toEqual([
      [r.from, r.checked!.from],
      [r.checked!.to, r.to],
    ]);

    const requests = listRequests(since);
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) {
      expect(request.query.$select).toBe('id,lastUpdateDateTime,createdDateTime');
      expect(request.query.$expand).toBeUndefined();
    }

    world.tenant.intercept = undefined;
    const text = await verify(['--from', from]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}checked: +\S+ \.\. \S+ \(the part the export blobs cover[;)]/m);
    expect(text.stdout).toMatch(/^ {2}missing: +0$/m);
    expect(text.stdout).toMatch(
      /^Complete: every current version the API lists from .* The rest of the range was not checked\.$/m,
    );
  });

  it('lists whole incidents when Graph answers 400 to $select, and says so once', async () => {
    const since = world.tenant.requests.length;
    world.tenant.intercept = ({ url }) =>
      url.searchParams.has('$select')
        ? {
            status: 400,
            body: JSON.stringify({
              error: { code: 'BadRequest', message: "Query option 'Select' is not allowed." },
            }),
          }
        : undefined;
    const { code, stderr, report: r } = await report();
    expect(code).toBe(0);
    expect(r.isComplete).toBe(true);
    expect(stderr.match(/Graph refused \$select=id,lastUpdateDateTime,createdDateTime/g)).toHaveLength(1);
    const requests = listRequests(since);
    expect(requests.filter((q) => q.query.$select !== undefined)).toHaveLength(1);
    expect(requests.length).toBeGreaterThan(1);
    expect(requests.every((q) => q.query.$expand === undefined)).toBe(true);
  });

  it('names the versions of a removed blob that the API still lists as current (exit 1)', async () => {
    const blobs: { name: string; versions: string[]; windowFrom: string; windowTo: string }[] = [];
    for await (const blob of world.container.listBlobsFlat({ prefix: 'incidents/', includeMetadata: true })) {
      const metadata = readBlobMetadata(blob.metadata ?? {});
      if (typeof metadata === 'string' || metadata.recordCount === 0) continue;
      blobs.push({
        name: blob.name,
        versions: [],
        windowFrom: metadata.windowFrom.text,
        windowTo: metadata.windowTo.text,
      });
    }
    for (const v of await world.exported())
      blobs.find((b) => b.name === v.blob)!.versions.push(`${v.id}@${ticks(v.lastUpdate)}`);
    const isCurrent = (version: string): boolean => {
      const [id, at] = version.split('@');
      return `${ticks(world.tenant.store.get(id!)!.lastUpdateTime)}` === at;
    };
    // A blob in the middle of the chain, holding versions that are still current.
    const removed = blobs.slice(1, -1).find((b) => b.versions.some(isCurrent))!;
    const byTime = (a: string, b: string): number => {
      const [ta, tb] = [BigInt(a.split('@')[1]!), BigInt(b.split('@')[1]!)];
      const [ia, ib] = [a.split('@')[0]!, b.split('@')[0]!];
      return ta !== tb ? (ta < tb ? -1 : 1) : ia < ib ? -1 : 1;
    };
    const expected = removed.versions.filter(isCurrent).sort(byTime);
    await world.container.deleteBlob(removed.name);

    const { code, report: r } = await report();
    expect(code).toBe(1);
    expect(r.isComplete).toBe(false);
    expect(r.missing.count).toBe(expected.length);
    expect(r.missing.first.map((v) => `${v.id}@${ticks(v.lastUpdate)}`)).toEqual(expected.slice(0, 10));
    // The window of the removed blob is a gap in the chain.
    expect(r.gaps).toEqual([
      { from: formatTicks(ticks(removed.windowFrom)), to: formatTicks(ticks(removed.windowTo)) },
    ]);
    expect(r.duplicated.count).toBe(0);

    const text = await verify(['--from', from]);
    expect(text.code).toBe(1);
    const first = r.missing.first[0]!;
    expect(text.stdout).toContain(`  missing:      ${expected.length}: ${first.id}@${first.lastUpdate}`);
    expect(text.stdout).toMatch(/^ {2}gap: +\S+ \.\. \S+ /m);
    expect(text.stdout).toMatch(
      /^Not complete: \d+ current version\(s\) the API lists are not in the exports/m,
    );
  });

  it('reports a version written into a second blob as duplicated (exit 1)', async () => {
    let original: { name: string; metadata: Record<string, string> } | undefined;
    for await (const blob of world.container.listBlobsFlat({ prefix: 'incidents/', includeMetadata: true })) {
      if (Number(blob.metadata?.recordcount) > 0) original ??= { name: blob.name, metadata: blob.metadata! };
    }
    const metadata = readBlobMetadata(original!.metadata);
    if (typeof metadata === 'string') throw new Error(metadata);
    // A blob named as the layout names them (same day, another start checkpoint), holding the same versions.
    const copy = exportBlobName(
      { watermark: metadata.windowFrom.text, idsAtWatermark: ['copied'] },
      'json',
      'none',
      world.config.tenantId,
    );
    expect(copy).not.toBe(original!.name);
    const body = await world.container.getBlockBlobClient(original!.name).downloadToBuffer();
    await world.container.getBlockBlobClient(copy).uploadData(body, { metadata: original!.metadata });

    const { code, report: r } = await report();
    expect(code).toBe(1);
    expect(r.missing.count).toBe(0);
    expect(r.duplicated.count).toBe(metadata.recordCount);
    expect(r.duplicated.first[0]!.blobs).toEqual([original!.name, copy].sort());

    const text = await verify(['--from', from]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^ {2}duplicated: +${metadata.recordCount}: \\S+@\\S+ in `, 'm'));
    expect(text.stdout).toMatch(/^Not complete: \d+ version\(s\) are exported more than once\.?/m);
  });

  it('never writes to storage: every Storage request is a read, on a SAS that may only read and list', async () => {
    const snapshot = async (): Promise<string[]> => {
      const out: string[] = [];
      for await (const blob of world.container.listBlobsFlat({ includeMetadata: true }))
        out.push(`${blob.name} ${blob.properties.etag} ${JSON.stringify(blob.metadata)}`);
      return out.sort();
    };
    const before = await snapshot();
    const sas = generateBlobSASQueryParameters(
      {
        containerName: world.container.containerName,
        permissions: ContainerSASPermissions.parse('rl'),
        expiresOn: new Date(Date.now() + HOUR),
      },
      new StorageSharedKeyCredential(field('AccountName'), field('AccountKey')),
    ).toString();
    // Storage is reached through a proxy on 127.0.0.1 that records every request's method.
    const blobEndpoint = new URL(field('BlobEndpoint'));
    const methods: string[] = [];
    const proxy = createServer((req, res) => {
      methods.push(`${req.method} ${req.url?.split('?')[0]}`);
      const upstream = request(
        {
          host: blobEndpoint.hostname,
          port: blobEndpoint.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (proxy.address() as AddressInfo).port;
      const {
        code,
        stderr,
        report: r,
      } = await report(['--from', from], {
        EXPORT_STORAGE_CONNECTION_STRING: `BlobEndpoint=http://127.0.0.1:${port}${blobEndpoint.pathname};SharedAccessSignature=${sas}`,
      });
      expect(stderr).not.toMatch(/AuthorizationPermissionMismatch|403/);
      expect(code).toBe(0);
      expect(r.isComplete).toBe(true);
      expect(r.blobs).toBeGreaterThan(5);
      expect(methods.length).toBeGreaterThan(r.blobs);
      expect(methods.filter((m) => !m.startsWith('GET '))).toEqual([]);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
    // Nothing was created, changed or removed.
    expect(await snapshot()).toEqual(before);
  });

  it('exits 75 when the API keeps failing, so a scheduler retries later', async () => {
    world.tenant.intercept = ({ api }) => (api === 'graph' ? { status: 503 } : undefined);
    const result = await verify(['--from', from]);
    expect(result.code).toBe(75);
    expect(result.stdout).toBe('');
  });
});

describe('defender-export verify: usage', () => {
  it.each<[string[], RegExp]>([
    [[], /--from is missing/],
    [['--from', '2026-13-01'], /--from is '2026-13-01': expected a UTC date/],
    [['--from', '2026-11-24', '--to', '2026-11-23'], /The range is empty/],
    [['--from', '2026-11-24', '--bogus'], /Unknown option '--bogus'/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const result = await runCli(['verify', ...args, '--settings', settingsFile({})]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('is listed in the help, and needs the Function settings (exit 2)', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/^ {2}verify +audit the exports of a date range/m);
    const usage = await runCli(['verify', '--help']);
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^Usage: defender-export verify --from/);
    const storageOnly = await runCli([
      'verify',
      '--from',
      '2026-11-24',
      '--settings',
      settingsFile({
        EXPORT_STORAGE_CONNECTION_STRING: azuriteConnectionString(),
        EXPORT_CONTAINER: 'exports',
      }),
    ]);
    expect(storageOnly.code).toBe(2);
    expect(storageOnly.stderr).toMatch(/DEFENDER_TENANT_ID/);
  });
});

describe('defender-export verify (legacy API)', () => {
  let world: World;
  afterEach(async () => {
    await world.close();
  });

  it('lists the legacy API as the export does, without $select, and verifies clean', async () => {
    const now = Date.now();
    world = await World.start({ api: 'legacy', settings: { EXPORT_INITIAL_LOOKBACK: 'PT48H' } });
    world.tenant.store.generate(60, { from: new Date(now - 40 * HOUR), to: new Date(now - HOUR) });
    expect((await world.run()).outcome).toBe('succeeded');
    const since = world.tenant.requests.length;
    const command = createVerifyCommand(world.composition());
    const result = await runCli(
      ['--from', day(now - 2 * 24 * HOUR), '--json', '--settings', settingsFile(world.settings)],
      {
        command,
      },
    );
    expect(result.code).toBe(0);
    const r = JSON.parse(result.stdout) as VerifyReport;
    expect(r).toMatchObject({ api: 'legacy', isComplete: true, listed: 60, exported: 60, superseded: 0 });
    const requests = world.tenant.requests.slice(since).filter((q) => q.api === 'legacy');
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((q) => q.query.$select === undefined)).toBe(true);
  });
});
