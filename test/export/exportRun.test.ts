import { encodeCheckpoint } from '../../src/export/checkpoint';
import { runExport, type ExportRunOptions } from '../../src/export/exportRun';
import type { CheckpointDocument, CheckpointStore } from '../../src/export/ports';
import { timestampFromMs } from '../../src/export/timestamp';
import { ManualClock } from '../support/memory/manualClock';
import { MemoryCheckpointStore } from '../support/memory/memoryCheckpointStore';
import { MemoryExportSink } from '../support/memory/memoryExportSink';
import { MemoryIncidentSource } from '../support/memory/memoryIncidentSource';
import { duplicates, LogRecorder, type ExportedVersion } from '../support/world';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const TENANT = '0f3c2b1a-1111-4222-8333-444455556666';
const OTHER_TENANT = '9a8b7c6d-aaaa-4bbb-8ccc-ddddeeeeffff';

/** runExport over memory ports, on a manual clock; the API's clock is the host's plus `apiAheadInMs`. */
function harness() {
  const clock = new ManualClock(Date.UTC(2026, 2, 10, 12, 0, 0));
  const api = { aheadInMs: 0 };
  const source = new MemoryIncidentSource(() => clock.now() + api.aheadInMs);
  const sink = new MemoryExportSink();
  const checkpoints = new MemoryCheckpointStore();
  const logs = new LogRecorder();
  let runs = 0;
  const h = {
    clock,
    api,
    source,
    sink,
    checkpoints,
    logs,
    run: (options: Partial<ExportRunOptions> = {}) =>
      runExport({
        source,
        checkpoints,
        sink,
        clock,
        logger: logs,
        tenantId: TENANT,
        format: 'json',
        compression: 'none',
        initialLookbackInMs: 6 * HOUR,
        settleDelayInMs: 5 * MINUTE,
        rereadWindowInMs: HOUR,
        maxRunDurationInMs: 10 * MINUTE,
        runId: `run-${++runs}`,
        ...options,
      }),
    /** A version stamped `agoInMs` before the host's now. */
    put: (id: string, agoInMs: number) => source.put(id, timestampFromMs(clock.now() - agoInMs).text),
    async exported(): Promise<ExportedVersion[]> {
      const out: ExportedVersion[] = [];
      for (const name of sink.names('incidents/')) {
        for (const raw of (await sink.readRecords(name)) as Record<string, unknown>[])
          out.push({ id: String(raw.id), lastUpdate: String(raw.lastUpdateDateTime), blob: name, raw });
      }
      return out;
    },
    async document(): Promise<CheckpointDocument> {
      return (await checkpoints.read())!.document;
    },
  };
  return h;
}

/** A checkpoint store whose first write after a blob commit throws (a process killed between the two). */
function killedAfterCommit(store: CheckpointStore): CheckpointStore {
  let killed = false;
  return {
    read: () => store.read(),
    write: (document, etag) => {
      if (document.lastBlob && !killed) {
        killed = true;
        return Promise.reject(new Error('process killed'));
      }
      return store.write(document, etag);
    },
  };
}

describe('runExport over memory ports: the chain rules', () => {
  it('fixes the successor with the checkpoint: a run with other settings at that position writes that name', async () => {
    const h = harness();
    await h.run();
    const successor = (await h.document()).successor!;
    expect(successor).toMatch(/\.json$/);
    h.put('a', 20 * MINUTE);
    h.put('b', 15 * MINUTE);
    h.clock.advance(HOUR);
    const summary = await h.run({ format: 'jsonl', compression: 'gzip' });
    expect(summary.outcome).toBe('succeeded');
    expect(summary.blobNames[0]).toBe(successor);
    // The next successor follows the settings of the run that fixed it.
    expect((await h.document()).successor).toMatch(/\.jsonl\.gz$/);
    expect((await h.exported()).map((v) => v.id).sort()).toEqual(['a', 'b']);
  });

  it('writes one successor when two runs with different settings race from one checkpoint', async () => {
    const h = harness();
    await h.run();
    h.put('a', 20 * MINUTE);
    h.clock.advance(HOUR);
    const outcomes = await Promise.all([h.run(), h.run({ format: 'jsonl', compression: 'gzip' })]);
    expect(outcomes.map((s) => s.outcome).sort()).toEqual(['concurrent', 'succeeded']);
    const exported = await h.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported.map((v) => v.id)).toEqual(['a']);
  });

  it('adopts a blob committed before a lost checkpoint write, only forward and only of this tenant', async () => {
    const h = harness();
    await h.run();
    h.put('a', 20 * MINUTE);
    h.clock.advance(HOUR);
    const killed = await h.run({ checkpoints: killedAfterCommit(h.checkpoints) }).catch((e: unknown) => e);
    expect(killed).toBeInstanceOf(Error);
    const before = await h.document();
    const name = before.successor!;
    const committed = h.sink.blobs.get(name)!;
    expect(committed).toBeDefined();

    // Of another tenant: refused, the checkpoint stays.
    h.sink.blobs.set(name, { ...committed, metadata: { ...committed.metadata, tenantid: OTHER_TENANT } });
    await expect(h.run()).rejects.toThrow(/written for another tenant/);
    expect((await h.document()).checkpoint).toEqual(before.checkpoint);

    // Ending at (not after) the position it follows: refused.
    h.sink.blobs.set(name, {
      ...committed,
      metadata: { ...committed.metadata, endcheckpoint: encodeCheckpoint(before.checkpoint) },
    });
    await expect(h.run()).rejects.toThrow(/is not after the checkpoint/);
    expect((await h.document()).checkpoint).toEqual(before.checkpoint);

    // As committed: adopted, not written again.
    h.sink.blobs.set(name, committed);
    const summary = await h.run();
    expect(summary.outcome).toBe('succeeded');
    expect(summary.recoveredBlobs).toBe(1);
    const exported = await h.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported.map((v) => v.id)).toEqual(['a']);
  });

  it('finds the end of the chain when the checkpoint is gone, and goes on from there', async () => {
    const h = harness();
    h.put('a', 3 * HOUR);
    h.put('b', 2 * HOUR);
    await h.run();
    h.checkpoints.delete();
    h.put('c', -30 * MINUTE);
    h.clock.advance(HOUR);
    const summary = await h.run();
    expect(summary.outcome).toBe('succeeded');
    expect(h.logs.text).toMatch(
      /No checkpoint in the state container, but EXPORT_CONTAINER holds this tenant's exports/,
    );
    const exported = await h.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported.map((v) => v.id).sort()).toEqual(['a', 'b', 'c']);
    // The chain's start is kept, not the lookback of the run that found it.
    expect((await h.document()).exportStart).toBe(timestampFromMs(Date.UTC(2026, 2, 10, 6, 0, 0)).text);
  });

  it("does not continue another tenant's chain", async () => {
    const h = harness();
    h.put('a', 2 * HOUR);
    await h.run({ tenantId: OTHER_TENANT });
    h.checkpoints.delete();
    h.clock.advance(HOUR);
    await h.run();
    expect(h.logs.text).not.toMatch(/continuing that chain/);
    expect(h.logs.text).toMatch(/No checkpoint yet: the first run starts at/);
  });

  it('moves past midnight when the last page of the day already resumed from midnight (time slices)', async () => {
    const h = harness();
    h.source.resumeAtWindowEnd = true;
    const midnight = Date.UTC(2026, 2, 10);
    for (const [id, at] of [
      ['a', midnight - 2 * HOUR],
      ['b', midnight - HOUR],
      ['c', midnight + HOUR],
      ['d', midnight + 2 * HOUR],
    ] as const)
      h.source.put(id, timestampFromMs(at).text);
    // A blob is cut after every page (1 byte), so the day's last blob ends exactly at midnight.
    const summary = await h.run({ maxBlobBytes: 1, initialLookbackInMs: 24 * HOUR });
    expect(summary.outcome).toBe('succeeded');
    expect((await h.exported()).map((v) => v.id).sort()).toEqual(['a', 'b', 'c', 'd']);
    for (const name of h.sink.names('incidents/')) {
      const m = (await h.sink.committedMetadata(name))!;
      expect(m.windowfrom! < m.windowto!).toBe(true);
    }
  });

  it('re-reads the window before the position and exports versions the API indexed late, once', async () => {
    const h = harness();
    h.put('a', 30 * MINUTE);
    await h.run();
    const position = (await h.document()).checkpoint.watermark;
    // Stamped 20 minutes ago (before the position), visible only now.
    h.put('late', 20 * MINUTE);
    h.clock.advance(10 * MINUTE);
    const summary = await h.run();
    expect(summary.lateVersions).toBe(1);
    expect((await h.document()).checkpoint.watermark > position).toBe(true);
    h.clock.advance(10 * MINUTE);
    expect((await h.run()).lateVersions).toBe(0);
    const exported = await h.exported();
    expect(duplicates(exported)).toEqual([]);
    expect(exported.map((v) => v.id).sort()).toEqual(['a', 'late']);
  });

  it('does not re-read when EXPORT_REREAD_WINDOW is 0: a late version stays behind the position', async () => {
    const h = harness();
    h.put('a', 30 * MINUTE);
    await h.run({ rereadWindowInMs: 0 });
    h.put('late', 20 * MINUTE);
    h.clock.advance(10 * MINUTE);
    expect((await h.run({ rereadWindowInMs: 0 })).lateVersions).toBe(0);
    expect((await h.exported()).map((v) => v.id)).toEqual(['a']);
  });

  it("ends the window by the API's clock when the host's is ahead, and by the host's when it is behind", async () => {
    const h = harness();
    h.api.aheadInMs = -20 * MINUTE;
    // Settled by the host's clock, not yet by the API's.
    h.put('early', 10 * MINUTE);
    const first = await h.run();
    expect(first.windowUntil).toBe(timestampFromMs(h.clock.now() - 25 * MINUTE).text);
    expect(first.apiClockSkewInMs).toBe(-20 * MINUTE);
    expect(h.source.windows.every((w) => w.until <= first.windowUntil)).toBe(true);
    expect(await h.exported()).toEqual([]);

    h.api.aheadInMs = 3 * MINUTE;
    h.clock.advance(30 * MINUTE);
    const second = await h.run();
    expect(second.windowUntil).toBe(timestampFromMs(h.clock.now() - 5 * MINUTE).text);
    expect((await h.exported()).map((v) => v.id)).toEqual(['early']);
  });
});
