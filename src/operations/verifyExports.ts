import type { ContainerClient } from '@azure/storage-blob';
import { isAfter, watermarkOf, type Checkpoint } from '../export/checkpoint';
import { isExportBlobName, readBlobMetadata, type ExportBlobMetadata } from '../export/blobLayout';
import type { DefenderApi, IncidentSource, ListWindow } from '../export/ports';
import { sameTenant } from '../export/tenant';
import { formatTicks, parseTimestamp, TICKS_PER_MS, ticksToMs } from '../export/timestamp';
import { StorageError, toError } from '../errors';
import { silentLogger, type Logger } from '../logger';
import { parseIncidentRecord } from '../source/incidentPage';
import { listExportBlobs, readExportBlob, type ExportBlobInfo, type InflateOptions } from './exportReader';
import { forEachConcurrently } from '../export/forEachConcurrently';
import { cutEvenly, overlaps, type TimeRange } from './timeRange';

/**
 * The fields `verify` asks Graph for (`$select`): the id and last update it compares, and the creation time the
 * Graph source splits a crowded instant on (see src/source/graphIncidentSource.ts).
 */
export const VERIFY_GRAPH_SELECT: readonly string[] = ['id', 'lastUpdateDateTime', 'createdDateTime'];

/** Port: the export blobs, read only (nothing here can write). */
export interface ExportBlobReader {
  /** The container, for messages. */
  readonly containerName: string;
  /** The export blobs of the UTC days from `fromMs` to `toMs` (inclusive), with their metadata. */
  list(fromMs: number, toMs: number): Promise<readonly ExportBlobInfo[]>;
  /** The records of one export blob, decoded as `download` decodes them. */
  read(name: string): Promise<unknown[]>;
}

/** The export blobs of a container, listed by date prefix and decoded by src/operations/exportReader.ts. */
export function containerExportReader(
  container: ContainerClient,
  inflate: InflateOptions = {},
): ExportBlobReader {
  return {
    containerName: container.containerName,
    list: (fromMs, toMs) => listExportBlobs(container, fromMs, toMs),
    read: (name) => readExportBlob(container, name, inflate),
  };
}

export interface VerifyOptions {
  readonly range: TimeRange;
  /** DEFENDER_TENANT_ID: blobs another tenant wrote into the same container are not this export's. */
  readonly tenantId: string;
  /**
   * EXPORT_REREAD_WINDOW: a version indexed late lands in a blob up to this long after its update, so the blobs
   * of the days that far after the range are read too.
   */
  readonly rereadWindowInMs: number;
  readonly abortSignal?: AbortSignal;
  /** How many versions of each finding the report names; default 10. */
  readonly sampleSize?: number;
  /** Blobs read at once; default 4. */
  readonly concurrency?: number;
  /**
   * Time slices of the covered part listed at once; default 1. Each slice costs at least one request, so more
   * pays off on long ranges only; the source's shared pacer keeps them together at what the API accepts.
   */
  readonly listConcurrency?: number;
  readonly logger?: Logger;
}

/** An incident version: its id and exact last update. */
export interface VersionRef {
  readonly id: string;
  readonly lastUpdate: string;
}

export interface VerifyReport {
  readonly container: string;
  readonly api: DefenderApi;
  /** The range asked for: [from, to). */
  readonly from: string;
  readonly to: string;
  /**
   * The part of the range the export blobs cover, from the earliest window start to the furthest end checkpoint,
   * `to` exclusive, and at exactly `to` the versions of the ids that checkpoint names (`idsAtTo`; the next blob
   * holds the others): only this part was checked. Undefined when no blob covers any of the range.
   */
  checked: { from: string; to: string; idsAtTo: readonly string[] } | undefined;
  /** The parts of the range outside {@link checked}: nothing was compared there. */
  notChecked: { from: string; to: string }[];
  /** Stretches inside {@link checked} that no blob's window covers (a blob removed, a backfill not finished). */
  gaps: { from: string; to: string }[];
  /** Export blobs read (they hold versions of the range). */
  blobs: number;
  /** Blobs without incidents (they carry the position over a quiet midnight). */
  emptyBlobs: number;
  /** Blobs under incidents/ that another tenant wrote into this container: not this export's, not read. */
  otherTenantBlobs: number;
  /** Blobs that could not be read or are not this tool's: their versions are not counted. */
  unreadableBlobs: { blob: string; reason: string }[];
  /** Current versions the API lists in the checked part. */
  listed: number;
  /** Versions the exports hold in the checked part (each counted once). */
  exported: number;
  /** Of them, versions the API no longer lists: superseded by a later update, which is fine. */
  superseded: number;
  /** Items the API listed without a valid id or update time: they cannot be compared (the export quarantines them). */
  unplaceable: number;
  /** Listed versions of the checked part that no export blob holds. */
  missing: { count: number; first: VersionRef[] };
  /** Versions of the range that more than one blob (or one blob twice) holds. */
  duplicated: { count: number; first: (VersionRef & { blobs: string[] })[] };
  /** Requests to the incidents API. */
  requests: number;
  /** Nothing missing, nothing doubled, every blob read. */
  isComplete: boolean;
}

interface ExportedVersion {
  readonly id: string;
  readonly ticks: bigint;
  readonly text: string;
  readonly blobs: string[];
}

interface CoveringBlob {
  readonly info: ExportBlobInfo;
  readonly metadata: ExportBlobMetadata;
}

/**
 * Audits the exports of `range` against the incidents API: every incident whose current version (id, last
 * update) the API lists inside the part of the range the export blobs cover must be in the exports with exactly
 * that version, and no version may be exported twice. Versions the exports hold that the API no longer lists
 * were superseded by a later update and are fine. Reads the blobs through `exports` (read only) and lists the
 * API over the covered part only, through the same `listPages` the export pages with.
 */
export async function verifyExports(
  source: IncidentSource,
  exports: ExportBlobReader,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const { range } = options;
  const logger = options.logger ?? silentLogger;
  const sampleSize = options.sampleSize ?? 10;
  const report: VerifyReport = {
    container: exports.containerName,
    api: source.api,
    from: formatTicks(range.fromTicks),
    to: formatTicks(range.toTicks),
    checked: undefined,
    notChecked: [],
    gaps: [],
    blobs: 0,
    emptyBlobs: 0,
    otherTenantBlobs: 0,
    unreadableBlobs: [],
    listed: 0,
    exported: 0,
    superseded: 0,
    unplaceable: 0,
    missing: { count: 0, first: [] },
    duplicated: { count: 0, first: [] },
    requests: 0,
    isComplete: false,
  };

  // A late version sits in a blob that starts at most EXPORT_REREAD_WINDOW after its update.
  const rereadTicks = BigInt(Math.max(0, options.rereadWindowInMs)) * TICKS_PER_MS;
  const listed = await exports.list(ticksToMs(range.fromTicks), ticksToMs(range.toTicks - 1n + rereadTicks));
  const covering: CoveringBlob[] = [];
  const toRead: CoveringBlob[] = [];
  for (const info of listed) {
    const metadata = isExportBlobName(info.name)
      ? readBlobMetadata(info.metadata)
      : 'is not named as this tool names export blobs';
    if (typeof metadata === 'string') {
      report.unreadableBlobs.push({ blob: info.name, reason: metadata });
      continue;
    }
    if (metadata.tenantId !== undefined && !sameTenant(metadata.tenantId, options.tenantId)) {
      report.otherTenantBlobs++;
      continue;
    }
    const blob = { info, metadata };
    if (overlaps(range, metadata.windowFrom.ticks, metadata.windowTo.ticks)) covering.push(blob);
    // Its versions lie in its window, or (late versions) up to EXPORT_REREAD_WINDOW before it.
    const mayHoldRange =
      metadata.windowTo.ticks >= range.fromTicks && metadata.windowFrom.ticks < range.toTicks + rereadTicks;
    if (!mayHoldRange) continue;
    if (metadata.recordCount === 0) report.emptyBlobs++;
    else toRead.push(blob);
  }

  const exported = new Map<string, ExportedVersion>();
  await forEachConcurrently(
    toRead,
    options.concurrency ?? 4,
    async ({ info, metadata }) => {
      let records: unknown[];
      try {
        records = await exports.read(info.name);
      } catch (thrown) {
        if (thrown instanceof StorageError) throw thrown; // Storage failed, not the blob: the command fails
        report.unreadableBlobs.push({ blob: info.name, reason: toError(thrown).message });
        return;
      }
      if (records.length !== metadata.recordCount) {
        report.unreadableBlobs.push({
          blob: info.name,
          reason: `it holds ${records.length} records, but its metadata says ${metadata.recordCount}`,
        });
      }
      report.blobs++;
      records.forEach((raw, index) => {
        const record = parseIncidentRecord(raw, metadata.api);
        if (typeof record === 'string') {
          report.unreadableBlobs.push({ blob: info.name, reason: `record ${index} ${record}` });
          return;
        }
        const ticks = record.lastUpdate.ticks;
        if (ticks < range.fromTicks || ticks >= range.toTicks) return;
        const key = versionKey(record.id, ticks);
        const seen = exported.get(key);
        if (seen) seen.blobs.push(info.name);
        else exported.set(key, { id: record.id, ticks, text: record.lastUpdate.text, blobs: [info.name] });
      });
    },
    options.abortSignal,
  );
  options.abortSignal?.throwIfAborted();
  report.unreadableBlobs.sort((a, b) => compareText(a.blob, b.blob));

  const doubled = [...exported.values()].filter((v) => v.blobs.length > 1).sort(byTime);
  report.duplicated = {
    count: doubled.length,
    first: doubled.slice(0, sampleSize).map((v) => ({
      id: v.id,
      lastUpdate: v.text,
      blobs: [...v.blobs].sort(compareText),
    })),
  };

  const span = coveredSpan(covering, range);
  if (span) {
    report.checked = {
      from: formatTicks(span.fromTicks),
      to: formatTicks(span.toTicks),
      idsAtTo: span.end?.idsAtWatermark ?? [],
    };
    report.gaps = gapsIn(covering, span);
    if (span.fromTicks > range.fromTicks)
      report.notChecked.push({ from: report.from, to: report.checked.from });
    if (span.toTicks < range.toTicks) report.notChecked.push({ from: report.checked.to, to: report.to });
    logger.info(
      `Read ${report.blobs} export blob(s); listing the incidents API from ${report.checked.from} to ${report.checked.to}.`,
    );

    const isChecked = (id: string, ticks: bigint, text: string): boolean =>
      ticks >= span.fromTicks &&
      ticks < range.toTicks &&
      (span.end === undefined || !isAfter({ id, lastUpdate: { text, ticks } }, span.end));
    const listedKeys = new Set<string>();
    const window = {
      from: { watermark: report.checked.from, idsAtWatermark: [] },
      // One tick past the end checkpoint's instant: the versions at it that the checkpoint names are checked too.
      until: formatTicks(span.end === undefined ? range.toTicks : span.toTicks + 1n),
    };
    const signal = options.abortSignal ? { abortSignal: options.abortSignal } : {};
    const missingVersions: { id: string; ticks: bigint; text: string }[] = [];
    // The window in time slices listed at once (each part from its start to the next one's, no row in two):
    // verify is bound by the API's rate, which the source's shared pacer finds, not by its latency.
    const parts = cutWindow(window, options.listConcurrency ?? 1);
    await forEachConcurrently(parts, parts.length, async (part) => {
      for await (const page of source.listPages(part, signal)) {
        report.unplaceable += page.rejected?.length ?? 0;
        for (const r of page.records) {
          const key = versionKey(r.id, r.lastUpdate.ticks);
          if (listedKeys.has(key) || !isChecked(r.id, r.lastUpdate.ticks, r.lastUpdate.text)) continue;
          listedKeys.add(key);
          if (!exported.has(key))
            missingVersions.push({ id: r.id, ticks: r.lastUpdate.ticks, text: r.lastUpdate.text });
        }
      }
    });
    report.listed = listedKeys.size;
    for (const [key, v] of exported) {
      if (!isChecked(v.id, v.ticks, v.text)) continue;
      report.exported++;
      if (!listedKeys.has(key)) report.superseded++;
    }
    missingVersions.sort(byTime);
    report.missing = {
      count: missingVersions.length,
      first: missingVersions.slice(0, sampleSize).map((v) => ({ id: v.id, lastUpdate: v.text })),
    };
  } else {
    report.notChecked.push({ from: report.from, to: report.to });
  }
  report.requests = source.stats.requests;
  report.isComplete =
    report.missing.count === 0 && report.duplicated.count === 0 && report.unreadableBlobs.length === 0;
  return report;
}

/** A listing window in up to `parts` consecutive windows on millisecond boundaries, none overlapping. */
function cutWindow(window: ListWindow, parts: number): ListWindow[] {
  const untilTicks = parseTimestamp(window.until)?.ticks;
  if (untilTicks === undefined || parts <= 1) return [window];
  const pieces = cutEvenly(watermarkOf(window.from).ticks, untilTicks, parts);
  return pieces.map(([from, until], i) => ({
    from: i === 0 ? window.from : { watermark: formatTicks(from), idsAtWatermark: [] },
    until: i === pieces.length - 1 ? window.until : formatTicks(until),
  }));
}

/**
 * The part of the range the blobs' windows cover: from the earliest window start to the furthest end checkpoint
 * (`end`, undefined when the range ends first). Versions at exactly the end instant are covered when the end
 * checkpoint names them (the next blob holds the others).
 */
function coveredSpan(
  covering: readonly CoveringBlob[],
  range: TimeRange,
): { fromTicks: bigint; toTicks: bigint; end: Checkpoint | undefined } | undefined {
  if (covering.length === 0) return undefined;
  let fromTicks = covering[0]!.metadata.windowFrom.ticks;
  let furthest = covering[0]!.metadata;
  for (const { metadata } of covering) {
    if (metadata.windowFrom.ticks < fromTicks) fromTicks = metadata.windowFrom.ticks;
    const ticks = metadata.windowTo.ticks;
    const best = furthest.windowTo.ticks;
    if (
      ticks > best ||
      (ticks === best &&
        metadata.endCheckpoint.idsAtWatermark.length > furthest.endCheckpoint.idsAtWatermark.length)
    )
      furthest = metadata;
  }
  if (fromTicks < range.fromTicks) fromTicks = range.fromTicks;
  const endTicks = furthest.windowTo.ticks;
  if (endTicks >= range.toTicks) return { fromTicks, toTicks: range.toTicks, end: undefined };
  // A span that ends before it starts covers nothing of the range (a blob that ends right at --from).
  if (endTicks < fromTicks || (endTicks === fromTicks && furthest.endCheckpoint.idsAtWatermark.length === 0))
    return undefined;
  return { fromTicks, toTicks: endTicks, end: furthest.endCheckpoint };
}

/** Stretches of the span that no blob's window [windowFrom, windowTo] covers, in time order. */
function gapsIn(
  covering: readonly CoveringBlob[],
  span: { fromTicks: bigint; toTicks: bigint },
): { from: string; to: string }[] {
  const windows = covering
    .map((b) => ({ from: b.metadata.windowFrom.ticks, to: b.metadata.windowTo.ticks }))
    .sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  const gaps: { from: string; to: string }[] = [];
  let reach = span.fromTicks;
  for (const w of windows) {
    if (w.from > reach && reach < span.toTicks)
      gaps.push({ from: formatTicks(reach), to: formatTicks(w.from < span.toTicks ? w.from : span.toTicks) });
    if (w.to > reach) reach = w.to;
  }
  return gaps;
}

function versionKey(id: string, ticks: bigint): string {
  return `${id}\u0000${ticks}`;
}

function byTime(a: { id: string; ticks: bigint }, b: { id: string; ticks: bigint }): number {
  return a.ticks !== b.ticks ? (a.ticks < b.ticks ? -1 : 1) : compareText(a.id, b.id);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
