import { gunzipSync } from 'node:zlib';
import { parseTimestamp } from '../../src/export/timestamp';
import { CHECKPOINT_BLOB } from '../../src/export/blobLayout';
import { duplicates, freshContainer, World, wrapWriters } from '../support/world';

const HOUR = 3_600_000;

/** The latest version of every incident updated inside [fromMs, untilMs), as the store holds it. */
function expectedVersions(world: World, untilMs: number, fromMs = 0): string[] {
  return world.tenant.store
    .all()
    .filter((i) => {
      const ms = Number(parseTimestamp(i.lastUpdateTime)!.ticks / 10_000n);
      return ms >= fromMs && ms < untilMs;
    })
    .map((i) => `${i.id}@${parseTimestamp(i.lastUpdateTime)!.ticks}`)
    .sort();
}

function versionsOf(exported: { id: string; lastUpdate: string }[]): string[] {
  return exported.map((v) => `${v.id}@${parseTimestamp(v.lastUpdate)!.ticks}`).sort();
}

describe.each(['graph', 'legacy'] as const)('export from the %s API', (api) => {
  let world: World;
  beforeEach(async () => {
    world = await World.start({ api });
  });
  afterEach(async () => {
    await world.close();
  });

  it('exports every incident of the first 48 hours once, in day folders, and then only what changed', async () => {
    const now = Date.now();
    world.tenant.store.generate(230, { from: new Date(now - 47 * HOUR), to: new Date(now - 60_000) });
    world.tenant.store.generate(5, { from: new Date(now - 60 * HOUR), to: new Date(now - 50 * HOUR) }); // before the lookback

    const first = await world.run();
    expect(first.outcome).toBe('succeeded');
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(versionsOf(exported)).toEqual(expectedVersions(world, now, now - 48 * HOUR));
    expect(first.incidents).toBe(230);

    // Blobs sit in the UTC day folder of the versions they hold, with their metadata.
    for (const v of exported) {
      expect(v.blob.startsWith(`incidents/${v.lastUpdate.slice(0, 10).replace(/-/g, '/')}/`)).toBe(true);
    }
    const [name] = await world.dataBlobNames();
    const props = await world.container.getBlockBlobClient(name!).getProperties();
    expect(props.contentType).toMatch(/^application\/json/);
    expect(props.metadata).toMatchObject({ api, format: 'json', compression: 'none' });
    expect(Number(props.metadata!.recordcount)).toBeGreaterThan(0);
    expect((await world.blobNames('runs/')).length).toBe(1);

    // An incremental run exports only the versions that changed, and nothing twice.
    const changed = world.tenant.store.all().slice(0, 7);
    for (const incident of changed) world.tenant.store.update(incident.id);
    world.advance(1100); // past the settle delay
    const second = await world.run();
    expect(second.outcome).toBe('succeeded');
    expect(second.incidents).toBe(7);
    const all = await world.exported();
    expect(duplicates(all)).toEqual([]);
    expect(all).toHaveLength(237);

    const summaries = world.logs.summaries;
    expect(summaries).toHaveLength(2);
    expect(summaries[1]).toMatchObject({ outcome: 'succeeded', incidents: 7, api });
    expect(summaries[1]!.watermarkAgeInMs).toBeGreaterThanOrEqual(0);
    if (api === 'legacy') expect(world.logs.text).toMatch(/retires on 2027-02-01/);
  });

  it('exports incidents that share one timestamp across several pages exactly once', async () => {
    const now = Date.now();
    const instant = new Date(now - 3 * HOUR).toISOString().replace('Z', '1234Z'); // 7 fractional digits
    for (let i = 0; i < 230; i++) world.tenant.store.add({ lastUpdateTime: instant });
    world.tenant.store.generate(40, { from: new Date(now - 5 * HOUR), to: new Date(now - HOUR) });

    const summary = await world.run();
    expect(summary.outcome).toBe('succeeded');
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(versionsOf(exported)).toEqual(expectedVersions(world, now, now - 48 * HOUR));
  });

  it('exports incidents that share a timestamp across a page boundary exactly once', async () => {
    const now = Date.now();
    const base = now - 10 * HOUR;
    // 49 distinct instants, then 3 incidents at one instant: the first page ends inside the tie.
    for (let i = 0; i < 49; i++) world.tenant.store.add({ lastUpdateTime: new Date(base + i * 1000) });
    const tie = new Date(base + 60_000).toISOString().replace('Z', '5Z');
    for (let i = 0; i < 3; i++) world.tenant.store.add({ lastUpdateTime: tie });
    for (let i = 0; i < 10; i++)
      world.tenant.store.add({ lastUpdateTime: new Date(base + 120_000 + i * 1000) });

    await world.run();
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(versionsOf(exported)).toEqual(expectedVersions(world, now, now - 48 * HOUR));
  });

  it('loses nothing when incidents are updated while it pages', async () => {
    const now = Date.now();
    world.tenant.store.generate(400, { from: new Date(now - 40 * HOUR), to: new Date(now - HOUR) });
    const early = world.tenant.store
      .all()
      .sort((a, b) =>
        parseTimestamp(a.lastUpdateTime)!.ticks < parseTimestamp(b.lastUpdateTime)!.ticks ? -1 : 1,
      )
      .slice(0, 30);
    let moved = false;
    world.tenant.afterPage = () => {
      if (moved) return;
      moved = true;
      // Updated "now": they leave the run's window, shifting every later row under $skip paging.
      for (const incident of early) world.tenant.store.update(incident.id, { lastUpdateTime: new Date() });
    };
    const until = Date.now() - 1000;
    await world.run();
    const exported = await world.exported();
    expect(duplicates(exported)).toEqual([]);
    const ids = new Set(exported.map((v) => v.id));
    // Every incident still inside the window at the end was exported.
    for (const key of expectedVersions(world, until, now - 48 * HOUR))
      expect(ids.has(key.split('@')[0]!)).toBe(true);

    // The moved ones come with their new version in the next run.
    world.advance(1100);
    world.tenant.afterPage = undefined;
    await world.run();
    const after = await world.exported();
    expect(duplicates(after)).toEqual([]);
    expect(versionsOf(after)).toEqual(
      expect.arrayContaining(expectedVersions(world, Date.now() - 1000, now - 48 * HOUR)),
    );
  });

  it('writes jsonl with gzip when asked', async () => {
    world.configure({ api, settings: { EXPORT_FORMAT: 'jsonl', EXPORT_COMPRESSION: 'gzip' } });
    const now = Date.now();
    world.tenant.store.generate(20, { from: new Date(now - 4 * HOUR), to: new Date(now - HOUR) });
    await world.run();
    const [name] = await world.dataBlobNames();
    expect(name).toMatch(/\.jsonl\.gz$/);
    const client = world.container.getBlockBlobClient(name!);
    const props = await client.getProperties();
    expect(props.contentEncoding).toBe('gzip');
    const lines = gunzipSync(await client.downloadToBuffer())
      .toString('utf8')
      .trim()
      .split('\n');
    expect(lines.length).toBe(Number(props.metadata!.recordcount));
    expect(JSON.parse(lines[0]!)).toHaveProperty(api === 'graph' ? 'lastUpdateDateTime' : 'lastUpdateTime');
  });
  it('keeps the checkpoint in EXPORT_STATE_CONTAINER when it is set apart (an immutable export container)', async () => {
    const state = freshContainer('state');
    world.configure({ api, settings: { EXPORT_STATE_CONTAINER: state.containerName } });
    try {
      const now = Date.now();
      world.tenant.store.generate(20, { from: new Date(now - 4 * HOUR), to: new Date(now - HOUR) });
      await world.run();
      world.tenant.store.touchRandom(5);
      world.advance(1100);
      await world.run();

      expect(await world.blobNames('state/')).toEqual([]);
      expect(await state.getBlockBlobClient(CHECKPOINT_BLOB).exists()).toBe(true);
      const exported = await world.exported();
      expect(duplicates(exported)).toEqual([]);
      expect(versionsOf(exported)).toEqual(expect.arrayContaining(expectedVersions(world, now - 1_000)));
    } finally {
      await state.deleteIfExists();
    }
  });
  it('keeps the records in page order while block uploads overlap and finish out of order', async () => {
    let n = 0;
    const staged = new Map<string, Buffer[]>();
    world.configure({
      api,
      settings: { EXPORT_INCLUDE_ALERTS: 'false' },
      composition: {
        pageSize: 5,
        wrapSink: wrapWriters((writer, name) => {
          staged.set(name, []);
          return {
            // Every other upload reports late, so later ones finish first.
            stage: async (block) => {
              staged.get(name)!.push(block);
              const staging = writer.stage(block);
              await new Promise((resolve) => setTimeout(resolve, n++ % 2 === 0 ? 60 : 0));
              await staging;
            },
            commit: (metadata) => writer.commit(metadata),
          };
        }),
      },
    });
    const now = Date.now();
    world.tenant.store.generate(40, { from: new Date(now - 3 * HOUR), to: new Date(now - 2 * HOUR) });
    await world.run();
    expect(n).toBeGreaterThan(4);
    const exported = await world.exported();
    expect(exported).toHaveLength(40);
    // Each blob holds its blocks exactly in the order they were handed over.
    for (const name of await world.dataBlobNames()) {
      const body = await world.container.getBlockBlobClient(name).downloadToBuffer();
      expect(body.equals(Buffer.concat(staged.get(name)!))).toBe(true);
    }
  });
});

describe('legacy paging inside one crowded instant', () => {
  it('loses nothing when rows before the $skip offset leave the instant and the next page comes back empty', async () => {
    const world = await World.start({ api: 'legacy' });
    try {
      world.configure({ api: 'legacy', composition: { pageSize: 3 } });
      const instant = new Date(Date.now() - 2 * HOUR);
      const crowd = Array.from({ length: 6 }, () => world.tenant.store.add({ lastUpdateTime: instant }));
      // The legacy API lists newest created first; the first two of that order leave the instant (updated)
      // right after the page at $skip=2 was served, so the page at $skip=4 is empty although a row is unread.
      const [first, second] = [...crowd].sort((a, b) =>
        a.createdTime === b.createdTime ? b.id - a.id : a.createdTime < b.createdTime ? 1 : -1,
      );
      let skip: string | null = null;
      let moved = false;
      world.tenant.intercept = ({ api, url }) => {
        if (api === 'legacy') skip = url.searchParams.get('$skip');
        return undefined;
      };
      world.tenant.afterPage = () => {
        if (skip !== '2' || moved) return;
        moved = true;
        world.tenant.store.update(first!.id);
        world.tenant.store.update(second!.id);
      };
      await world.run();
      expect(moved).toBe(true);
      const exported = new Set((await world.exported()).map((v) => v.id));
      const stayed = crowd.filter((i) => i !== first && i !== second).map((i) => String(i.id));
      expect(stayed.filter((id) => !exported.has(id))).toEqual([]);
    } finally {
      await world.close();
    }
  });
});
