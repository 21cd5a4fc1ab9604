import { createBackfillCommand } from '../../src/cli/backfillCommand';
import { createExporter, type CompositionOptions } from '../../src/composition/compositionRoot';
import { CHECKPOINT_BLOB } from '../../src/export/blobLayout';
import { formatTicks, parseTimestamp } from '../../src/export/timestamp';
import { runBackfill } from '../../src/operations/backfill';
import { parseTimeRange, type TimeRange } from '../../src/operations/timeRange';
import { runCli, settingsFile, type CliResult } from '../support/cli';
import { duplicates, World } from '../support/world';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ticks = (text: string): bigint => parseTimestamp(text)!.ticks;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

describe('defender-export backfill', () => {
  let world: World;
  let now: number;
  let liveStart: string;
  let liveEtag: string;

  beforeEach(async () => {
    world = await World.start({
      settings: { EXPORT_MAX_RUN_DURATION: 'PT2M', EXPORT_INCLUDE_ALERTS: 'false' },
    });
    now = Date.now();
    world.tenant.store.generate(240, { from: new Date(now - 9 * DAY), to: new Date(now - HOUR) });
    // History right at the boundaries: at the live start (the live export's), 100 ns before it (the backfill's).
    const live = await world.run();
    expect(live.outcome).toBe('succeeded');
    const checkpoint = (await world.checkpoint())!;
    liveStart = checkpoint.document.exportStart as string;
    liveEtag = checkpoint.etag;
    expect(liveStart).toBe(live.windowFrom);
  });
  afterEach(async () => {
    world.tenant.afterPage = undefined;
    await world.close();
  });

  /** Runs the backfill command wired to the simulated tenant, with the world's settings. */
  function backfill(
    args: string[],
    composition: Partial<CompositionOptions> = {},
    onStderr?: (text: string) => void,
  ): Promise<CliResult> {
    const command = createBackfillCommand(world.composition({ composition }));
    return runCli([...args, '--settings', settingsFile(world.settings)], {
      command,
      ...(onStderr ? { onStderr } : {}),
    });
  }

  /** A clock on which every page of the API "takes" a minute: a 2-minute budget holds a few pages. */
  function slowClock(): Partial<CompositionOptions> {
    let fakeNow = Date.now();
    world.tenant.afterPage = () => {
      fakeNow += 60_000;
    };
    return { clock: { now: () => fakeNow }, pageSize: 20, maxBlobBytes: 1 };
  }

  function expectedBefore(end: string, from: number): string[] {
    return world.tenant.store
      .all()
      .filter(
        (i) => ticks(i.lastUpdateTime) >= BigInt(from) * 10_000n && ticks(i.lastUpdateTime) < ticks(end),
      )
      .map((i) => `${i.id}@${ticks(i.lastUpdateTime)}`)
      .sort();
  }

  it('fills in the history before the live export began, in budget-sized runs, never touching the live checkpoint', async () => {
    // Incidents exactly at the live start belong to the live export; 100 ns earlier, to the backfill.
    world.tenant.store.add({ lastUpdateTime: formatTicks(ticks(liveStart) - 1n) });
    const from = now - 8 * DAY;
    const expected = expectedBefore(liveStart, Date.parse(`${day(from)}T00:00:00Z`));
    expect(expected.length).toBeGreaterThan(100);

    const result = await backfill(
      ['--from', day(from), '--to', day(now), '--concurrency', '1', '--json'],
      slowClock(),
    );
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      outcome: 'complete',
      from: `${day(from)}T00:00:00.0000000Z`,
      to: liveStart, // --to reached past the live start: cut there
      liveStart,
      incidents: expected.length,
    });
    expect(summary.runs).toBeGreaterThan(1); // chunks that each fit EXPORT_MAX_RUN_DURATION
    expect(result.stderr).toMatch(/The live export began at .*: the backfill ends there/);

    // The live checkpoint was neither moved nor rewritten; the backfill kept its own.
    expect((await world.checkpoint())!.etag).toBe(liveEtag);
    expect(summary.segments).toEqual([
      expect.objectContaining({ from: summary.from, to: liveStart, status: 'exported' }),
    ]);
    const own = summary.segments[0].checkpointBlob;
    expect(own).toMatch(/^state\/backfill-\d{8}T\d{13}Z-\d{8}T\d{13}Z\.json$/);
    expect(await world.container.getBlockBlobClient(own).exists()).toBe(true);

    // Exactly the history before the live start, each version once, none the live export wrote.
    expect(await world.backfilledVersions()).toEqual(expected);
    const all = await world.exported();
    expect(duplicates(all)).toEqual([]);
    expect(all.map((v) => `${v.id}@${ticks(v.lastUpdate)}`).sort()).toEqual(
      expectedBefore(formatTicks(BigInt(now) * 10_000n), Date.parse(`${day(from)}T00:00:00Z`)),
    );

    // Again: nothing more to write. And the live export carries on as before.
    world.tenant.afterPage = undefined;
    const again = await backfill(['--from', day(from), '--to', day(now), '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      outcome: 'complete',
      runs: 0,
      segments: [expect.objectContaining({ checkpointBlob: own, status: 'done' })],
    });
    world.tenant.store.touchRandom(5);
    world.advance(1100);
    expect(await world.run()).toMatchObject({ outcome: 'succeeded', incidents: 5 });
    expect(duplicates(await world.exported())).toEqual([]);
  });

  it('resumes after an interruption from its own checkpoint, without writing a version twice', async () => {
    const from = now - 8 * DAY;
    const args = ['--from', day(from), '--concurrency', '1', '--json'];
    let signalled = false;
    const interrupted = await backfill(args, slowClock(), (text) => {
      if (!signalled && text.includes('Backfill run 1:')) {
        signalled = true;
        process.emit('SIGINT');
      }
    });
    expect(interrupted.code).toBe(130);
    const partial = JSON.parse(interrupted.stdout);
    expect(partial).toMatchObject({ outcome: 'interrupted', runs: 1 });
    expect(partial.incidents).toBeGreaterThan(0);
    const done = (await world.backfilledVersions()).length;
    expect(done).toBe(partial.incidents);

    const resumed = await backfill(args, slowClock());
    expect(resumed.code).toBe(0);
    const summary = JSON.parse(resumed.stdout);
    expect(summary.outcome).toBe('complete');
    const expected = expectedBefore(liveStart, Date.parse(`${day(from)}T00:00:00Z`));
    expect(summary.incidents).toBe(expected.length - done);
    expect(await world.backfilledVersions()).toEqual(expected);
    expect(duplicates(await world.exported())).toEqual([]);
    expect((await world.checkpoint())!.etag).toBe(liveEtag);
  });

  it('finds where the live export began when its checkpoint predates exportStart', async () => {
    // A checkpoint written before exportStart was recorded.
    const client = world.container.getBlockBlobClient(CHECKPOINT_BLOB);
    const old = JSON.parse((await client.downloadToBuffer()).toString('utf8'));
    delete old.exportStart;
    await client.upload(JSON.stringify(old), JSON.stringify(old).length);
    const from = now - 5 * DAY;
    const result = await backfill(['--from', day(from), '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ outcome: 'complete', liveStart });
    expect(await world.backfilledVersions()).toEqual(
      expectedBefore(liveStart, Date.parse(`${day(from)}T00:00:00Z`)),
    );

    // Once backfill blobs come first in name order, the live start is still the live export's.
    const again = await backfill(['--from', day(now - 6 * DAY), '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ outcome: 'complete', liveStart });
    expect(duplicates(await world.exported())).toEqual([]);
  });

  it('backfills only the gaps that earlier, overlapping backfills left, and writes no version twice', async () => {
    // A first backfill from a date-time in the middle of a day, a second from days earlier, a third inside the first.
    const first = formatTicks(BigInt(Date.parse(`${day(now - 5 * DAY)}T06:30:00Z`)) * 10_000n);
    expect((await backfill(['--from', first, '--concurrency', '1'])).code).toBe(0);
    const second = await backfill(['--from', day(now - 7 * DAY), '--concurrency', '1', '--json']);
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.stdout);
    expect(
      summary.segments.map((s: { from: string; to: string; status: string }) => [s.from, s.to, s.status]),
    ).toEqual([
      [`${day(now - 7 * DAY)}T00:00:00.0000000Z`, first, 'exported'],
      [first, liveStart, 'done'],
    ]);
    const third = await backfill(['--from', day(now - 3 * DAY), '--to', day(now - 2 * DAY), '--json']);
    expect(JSON.parse(third.stdout)).toMatchObject({ outcome: 'complete', runs: 0 });

    expect(duplicates(await world.exported())).toEqual([]);
    expect(await world.backfilledVersions()).toEqual(
      expectedBefore(liveStart, Date.parse(`${day(now - 7 * DAY)}T00:00:00Z`)),
    );
    expect((await world.checkpoint())!.etag).toBe(liveEtag);

    // status tells the backfill runs from the live ones, and judges freshness by the live checkpoint alone.
    const status = await runCli([
      'status',
      '--runs',
      '50',
      '--json',
      '--settings',
      settingsFile({
        EXPORT_STORAGE_CONNECTION_STRING: world.settings.EXPORT_STORAGE_CONNECTION_STRING!,
        EXPORT_CONTAINER: world.container.containerName,
      }),
    ]);
    expect(status.code).toBe(0);
    const { runs, checkpoint } = JSON.parse(status.stdout);
    expect(runs.map((r: { kind: string }) => r.kind)).toEqual(['backfill', 'backfill', 'live']);
    expect(checkpoint.exportStart).toBe(liveStart);
  });

  it('matches the live checkpoint to DEFENDER_TENANT_ID without regard to case', async () => {
    world.configure({ settings: { DEFENDER_TENANT_ID: world.tenant.tenantId.toUpperCase() } });
    const result = await backfill(['--from', formatTicks(ticks(liveStart) + 10_000_000n)]);
    expect(result.stderr).not.toMatch(/belongs to tenant/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Nothing to backfill/);
  });

  it('two overlapping backfills started together export no version twice, and together the whole union', async () => {
    const first = parseTimeRange(day(now - 8 * DAY), day(now - 4 * DAY), now);
    // From a date-time: its export chain meets the other's only at the next midnight.
    const second = parseTimeRange(`${day(now - 6 * DAY)}T06:00:00Z`, undefined, now);
    const backfillOf = (range: TimeRange) =>
      runBackfill(createExporter(world.config, world.composition()), { range, logger: world.logs });
    const outcomes = await Promise.all([backfillOf(first), backfillOf(second)]);
    expect(duplicates(await world.exported())).toEqual([]);
    // One may find part of its range taken by the other, still being written: it says so; run again resumes.
    for (const [i, summary] of outcomes.entries()) {
      expect(['complete', 'concurrent']).toContain(summary.outcome);
      if (summary.outcome === 'concurrent') {
        expect(summary.reason).toMatch(/another backfill.*run again to resume/);
        expect((await backfillOf(i === 0 ? first : second)).outcome).toBe('complete');
      }
    }
    expect(duplicates(await world.exported())).toEqual([]);
    expect(await world.backfilledVersions()).toEqual(
      expectedBefore(liveStart, Date.parse(`${day(now - 8 * DAY)}T00:00:00Z`)),
    );
    expect((await world.checkpoint())!.etag).toBe(liveEtag);
  });

  it('recognises the checkpoints of earlier versions (no claim) and the claims of a backfill that stopped before exporting', async () => {
    const from = day(now - 5 * DAY);
    expect((await backfill(['--from', from, '--concurrency', '1'])).code).toBe(0);
    // An earlier version wrote only state/backfill-<from>-<to>.json: drop the claim log.
    for await (const blob of world.container.listBlobsFlat({ prefix: 'state/backfill-claims/' }))
      await world.container.deleteBlob(blob.name);
    // A backfill that claimed a range and stopped before its first run: its claim alone holds the range.
    const claimedFrom = `${day(now - 7 * DAY)}T00:00:00.0000000Z`;
    const claimedTo = `${day(now - 6 * DAY)}T00:00:00.0000000Z`;
    const claim = JSON.stringify({ schemaVersion: 1, segments: [{ from: claimedFrom, to: claimedTo }] });
    await world.container
      .getBlockBlobClient('state/backfill-claims/0000000000.json')
      .upload(claim, claim.length);

    const result = await backfill(['--from', day(now - 8 * DAY), '--concurrency', '1', '--json']);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(
      summary.segments.map((s: { from: string; to: string; status: string }) => [s.from, s.to, s.status]),
    ).toEqual([
      [`${day(now - 8 * DAY)}T00:00:00.0000000Z`, claimedFrom, 'exported'],
      [claimedFrom, claimedTo, 'exported'], // resumed from its start: nobody had written it
      [claimedTo, `${from}T00:00:00.0000000Z`, 'exported'],
      [`${from}T00:00:00.0000000Z`, liveStart, 'done'],
    ]);
    expect(duplicates(await world.exported())).toEqual([]);
    expect(await world.backfilledVersions()).toEqual(
      expectedBefore(liveStart, Date.parse(`${day(now - 8 * DAY)}T00:00:00Z`)),
    );
    // Its own new segments were claimed after the one it found (index 1), and the range resumed is not claimed twice.
    const claims: string[] = [];
    for await (const blob of world.container.listBlobsFlat({ prefix: 'state/backfill-claims/' }))
      claims.push(blob.name);
    expect(claims).toEqual([
      'state/backfill-claims/0000000000.json',
      'state/backfill-claims/0000000001.json',
    ]);
  });

  it('refuses a --concurrency outside 1 to 16 by name, before touching anything', async () => {
    const result = await backfill(['--from', day(now - DAY), '--concurrency', '0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--concurrency is '0': expected a whole number from 1 to 16/);
    const claims: string[] = [];
    for await (const blob of world.container.listBlobsFlat({ prefix: 'state/backfill' }))
      claims.push(blob.name);
    expect(claims).toEqual([]);
  });

  it('has nothing to do after the live start, and refuses to run before the live export has', async () => {
    const after = await backfill(['--from', formatTicks(ticks(liveStart) + 10_000_000n)]);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^Nothing to backfill: the live export covers everything from /);

    const empty = await World.start({ tenant: world.tenant });
    await empty.container.create();
    try {
      const result = await runCli(['--from', day(now - DAY), '--settings', settingsFile(empty.settings)], {
        command: createBackfillCommand(empty.composition()),
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(
          `No live checkpoint \\(state/checkpoint.json\\) in container '${empty.container.containerName}': the live export has not run yet`,
        ),
      );
    } finally {
      await empty.container.deleteIfExists();
    }
  });
});
