import type { ExportContainers } from './exporter';
import type { ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore } from '../sink/blobExportStore';
import {
  BACKFILL_RUN_PREFIX,
  CHECKPOINT_BLOB,
  EXPORT_PREFIX,
  isExportBlobName,
  MANIFEST_PREFIX,
  readBlobMetadata,
} from '../export/blobLayout';
import { exportedUntil } from '../export/checkpoint';
import { printable } from '../export/printable';
import { formatDuration } from '../export/duration';
import type { RunOutcome } from '../export/exportRun';
import { formatTicks, ticksToMs } from '../export/timestamp';
import { parseIncidentRecord } from '../source/incidentPage';
import { toError } from '../errors';
import { listBlobsByDay, readExportBlob } from './exportReader';
import { forEachConcurrently } from '../export/forEachConcurrently';

/** Run ids of backfill runs start with this; their manifests sit with the live runs' under runs/. */
export { BACKFILL_RUN_PREFIX };

const DAY_MS = 86_400_000;

export interface StatusOptions {
  readonly nowMs: number;
  /** The export is stale when everything it exported is older than this. */
  readonly maxAgeInMs: number;
  /** How many UTC days of run manifests (and of export folders, for the newest update) to look at. Default 3. */
  readonly days?: number;
  /** How many runs to report, newest first. Default 10. */
  readonly runs?: number;
}

/** One run as its manifest tells it. */
export interface RunRecord {
  readonly manifest: string;
  readonly kind: 'live' | 'backfill';
  readonly runId: string;
  readonly startedAt: string;
  readonly outcome: RunOutcome | 'unreadable';
  readonly incidents: number;
  readonly blobs: number;
  readonly durationInMs: number;
  readonly reason?: string;
  /** The queue message's try that ran it (DEFENDER_TENANTS), and what followed a failure. */
  readonly delivery?: {
    readonly attempt: number;
    readonly maxAttempts: number;
    readonly next?: 'retry' | 'poison';
  };
}

export interface ExportStatus {
  readonly container: string;
  readonly now: string;
  readonly checkpoint?: {
    readonly watermark: string;
    readonly idsAtWatermark: number;
    readonly api: string;
    readonly updatedAt: string;
    readonly runId: string;
    readonly exportStart?: string;
    readonly lastSuccessfulRunAt?: string;
  };
  /** Every version updated before this instant has been exported. */
  readonly exportedUntil?: string;
  readonly exportedUntilAgeInMs?: number;
  /** The newest last-update time in the exports, and the blob that holds it. */
  readonly newestUpdate?: { readonly at: string; readonly ageInMs: number; readonly blob: string };
  readonly runs: readonly RunRecord[];
  readonly maxAgeInMs: number;
  readonly isStale: boolean;
  readonly verdict: string;
}

/**
 * The health of the export in a container: the live checkpoint, how far the export has come and the newest
 * update it holds, and the last runs from their manifests (listed by date prefix, the last `days` UTC days).
 * Stale when there is no checkpoint, or when what it exported is older than `maxAgeInMs`.
 */
export async function readExportStatus(
  { container, stateContainer }: ExportContainers,
  options: StatusOptions,
): Promise<ExportStatus> {
  const { nowMs, maxAgeInMs } = options;
  const days = options.days ?? 3;
  const stored = await new BlobCheckpointStore(stateContainer).read();
  const runs = await readRuns(container, nowMs - (days - 1) * DAY_MS, nowMs, options.runs ?? 10);
  const base = { container: container.containerName, now: new Date(nowMs).toISOString(), runs, maxAgeInMs };
  if (!stored) {
    return {
      ...base,
      isStale: true,
      verdict: `STALE: no ${CHECKPOINT_BLOB} in container '${stateContainer.containerName}'; the export has not run yet.`,
    };
  }
  const doc = stored.document;
  const until = exportedUntil(doc.checkpoint, doc.scannedUntil);
  const ageInMs = Math.max(0, nowMs - ticksToMs(until));
  const isStale = ageInMs > maxAgeInMs;
  const newestUpdate = await findNewestUpdate(container, ticksToMs(until), nowMs, days);
  return {
    ...base,
    checkpoint: {
      watermark: printable(doc.checkpoint.watermark),
      idsAtWatermark: doc.checkpoint.idsAtWatermark.length,
      api: doc.api,
      updatedAt: text(doc.updatedAt),
      runId: text(doc.runId),
      ...(typeof doc.exportStart === 'string' ? { exportStart: printable(doc.exportStart) } : {}),
      ...(typeof doc.lastSuccessfulRunAt === 'string'
        ? { lastSuccessfulRunAt: printable(doc.lastSuccessfulRunAt) }
        : {}),
    },
    exportedUntil: formatTicks(until),
    exportedUntilAgeInMs: ageInMs,
    ...(newestUpdate ? { newestUpdate } : {}),
    isStale,
    verdict: isStale
      ? `STALE: the export is ${formatDuration(ageInMs)} behind, more than the allowed ${formatDuration(maxAgeInMs)}.`
      : `OK: the export is ${formatDuration(ageInMs)} behind, within ${formatDuration(maxAgeInMs)}.`,
  };
}

/** A free-text field of the checkpoint document (only its position is validated on read), made printable. */
function text(value: unknown): string {
  return typeof value === 'string' ? printable(value) : '';
}

/** The last `count` runs whose manifests sit in the day folders from `fromMs` to `toMs`, newest first. */
async function readRuns(
  container: ContainerClient,
  fromMs: number,
  toMs: number,
  count: number,
): Promise<RunRecord[]> {
  const manifests = (await listBlobsByDay(container, MANIFEST_PREFIX, fromMs, toMs)).slice(-count).reverse();
  return Promise.all(
    manifests.map(async ({ name }): Promise<RunRecord> => {
      let m: unknown;
      try {
        const bytes = await container.getBlockBlobClient(name).downloadToBuffer();
        m = JSON.parse(bytes.toString('utf8'));
      } catch (thrown) {
        return unreadable(name, toError(thrown).message);
      }
      const checked = checkManifest(m);
      if (typeof checked === 'string') return unreadable(name, checked);
      return { manifest: printable(name), ...checked };
    }),
  );
}

const RUN_OUTCOMES: readonly string[] = [
  'succeeded',
  'partial',
  'concurrent',
  'failed',
] satisfies RunOutcome[];

/**
 * The fields of a run manifest, checked one by one (a manifest is read from storage: anyone with write access
 * may have put anything there), with every text made printable; or what is wrong with it.
 */
function checkManifest(value: unknown): Omit<RunRecord, 'manifest'> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  if (typeof m.runId !== 'string') return "'runId' is not a string";
  if (typeof m.startedAt !== 'string' || Number.isNaN(Date.parse(m.startedAt)))
    return "'startedAt' is not a date-time";
  if (typeof m.outcome !== 'string' || !RUN_OUTCOMES.includes(m.outcome))
    return `'outcome' is not one of ${RUN_OUTCOMES.join(', ')}`;
  const counts: Record<'incidents' | 'blobs' | 'durationInMs', number> = {
    incidents: 0,
    blobs: 0,
    durationInMs: 0,
  };
  for (const key of ['incidents', 'blobs', 'durationInMs'] as const) {
    const n = m[key] ?? 0;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return `'${key}' is not a number`;
    counts[key] = n;
  }
  if (m.reason !== undefined && typeof m.reason !== 'string') return "'reason' is not a string";
  const delivery = checkDelivery(m.delivery);
  const runId = printable(m.runId);
  return {
    kind: runId.startsWith(BACKFILL_RUN_PREFIX) ? 'backfill' : 'live',
    runId,
    startedAt: printable(m.startedAt),
    outcome: m.outcome as RunOutcome,
    ...counts,
    ...(typeof m.reason === 'string' ? { reason: printable(m.reason) } : {}),
    ...(delivery ? { delivery } : {}),
  };
}

/** A manifest's `delivery` (which try of a queue message), when it holds one that reads. */
function checkDelivery(value: unknown): RunRecord['delivery'] {
  if (typeof value !== 'object' || value === null) return undefined;
  const d = value as Record<string, unknown>;
  if (!Number.isSafeInteger(d.attempt) || !Number.isSafeInteger(d.maxAttempts)) return undefined;
  return {
    attempt: d.attempt as number,
    maxAttempts: d.maxAttempts as number,
    ...(d.next === 'retry' || d.next === 'poison' ? { next: d.next } : {}),
  };
}

/** One tenant's line of the status of DEFENDER_TENANTS. */
export interface TenantStatus {
  readonly name: string;
  readonly tenantId: string;
  readonly status: ExportStatus;
  /** The outcome of the tenant's last run, with its queue try: e.g. `failed (try 5 of 5, poisoned)`. */
  readonly lastOutcome: string;
}

/** The health of every tenant of DEFENDER_TENANTS: stale when any is. */
export interface TenantsStatus {
  readonly tenants: readonly TenantStatus[];
  readonly isStale: boolean;
  readonly verdict: string;
}

/**
 * The status of each tenant in its own container ({@link readExportStatus}), read a few at a time; one that
 * cannot be read is stale with the reason, never a stop for the others.
 */
export async function readTenantsStatus(
  tenants: readonly {
    readonly name: string;
    readonly tenantId: string;
    readonly containers: ExportContainers;
  }[],
  options: StatusOptions,
): Promise<TenantsStatus> {
  const results: TenantStatus[] = [];
  await forEachConcurrently(tenants, 8, async ({ name, tenantId, containers }) => {
    let status: ExportStatus;
    try {
      status = await readExportStatus(containers, options);
    } catch (thrown) {
      status = {
        container: containers.container.containerName,
        now: new Date(options.nowMs).toISOString(),
        runs: [],
        maxAgeInMs: options.maxAgeInMs,
        isStale: true,
        verdict: printable(`STALE: the status could not be read: ${toError(thrown).message}`),
      };
    }
    results.push({ name: printable(name), tenantId, status, lastOutcome: describeLastRun(status.runs[0]) });
  });
  const ordered = tenants.flatMap((t) => results.find((r) => r.tenantId === t.tenantId) ?? []);
  const stale = ordered.filter((t) => t.status.isStale);
  return {
    tenants: ordered,
    isStale: stale.length > 0,
    verdict:
      stale.length > 0
        ? `STALE: ${stale.length} of ${ordered.length} tenant(s): ${stale.map((t) => t.name).join(', ')}.`
        : `OK: all ${ordered.length} tenant(s) within ${formatDuration(options.maxAgeInMs)}.`,
  };
}

/** A run's outcome for the one-line-per-tenant view. */
function describeLastRun(run: RunRecord | undefined): string {
  if (!run) return 'no run yet';
  const d = run.delivery;
  if (!d || run.outcome !== 'failed') return run.outcome;
  const next = d.next === 'poison' ? 'poisoned' : 'retrying';
  return `failed (try ${d.attempt} of ${d.maxAttempts}, ${next})`;
}

/** A manifest that cannot be shown: listed with what is wrong, never a crash. */
function unreadable(name: string, problem: string): RunRecord {
  return {
    manifest: printable(name),
    kind: 'live',
    runId: '',
    startedAt: '',
    outcome: 'unreadable',
    incidents: 0,
    blobs: 0,
    durationInMs: 0,
    reason: printable(`unreadable manifest ${name}: ${problem}`),
  };
}

/**
 * The newest last update in the exports: in the newest blob that holds incidents, looked for in the day folders
 * from the export's position back `days` days (blobs of quiet midnights hold none).
 */
async function findNewestUpdate(
  container: ContainerClient,
  untilMs: number,
  nowMs: number,
  days: number,
): Promise<ExportStatus['newestUpdate']> {
  for (let day = 0; day < days; day++) {
    const dayMs = Math.min(untilMs, nowMs) - day * DAY_MS;
    const blobs = (await listBlobsByDay(container, EXPORT_PREFIX, dayMs, dayMs)).flatMap((b) => {
      const metadata = readBlobMetadata(b.metadata);
      return isExportBlobName(b.name) && typeof metadata !== 'string' && metadata.recordCount > 0
        ? [{ name: b.name, api: metadata.api }]
        : [];
    });
    const newest = blobs.at(-1);
    if (!newest) continue;
    const api = newest.api;
    let max: bigint | undefined;
    for (const raw of await readExportBlob(container, newest.name)) {
      const record = parseIncidentRecord(raw, api);
      if (typeof record !== 'string' && (max === undefined || record.lastUpdate.ticks > max))
        max = record.lastUpdate.ticks;
    }
    if (max === undefined) continue;
    return { at: formatTicks(max), ageInMs: Math.max(0, nowMs - ticksToMs(max)), blob: newest.name };
  }
  return undefined;
}
