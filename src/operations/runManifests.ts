import type { ContainerClient } from '@azure/storage-blob';
import { describeStorageError } from '../sink/blobExportStore';
import { MANIFEST_PREFIX, safeRunId } from '../export/blobLayout';
import type { ManifestBlob } from '../export/exportRun';
import { printable } from '../export/printable';
import { toError } from '../errors';
import { forEachConcurrently } from '../export/forEachConcurrently';

/** A run manifest as download reads it: the export blobs it lists, or why it cannot be read. */
export interface RunManifest {
  /** The manifest's blob name (`runs/YYYY/MM/DD/HHMMSSmmm-<run id>.json`). */
  readonly name: string;
  /**
   * The export blobs the run committed, by name; undefined for a manifest of a version before manifests listed
   * them (nothing to check against).
   */
  readonly blobs?: ReadonlyMap<string, ManifestBlob>;
  /** Set when the manifest exists but does not read: the blobs of that run cannot be checked against it. */
  readonly problem?: string;
}

/** Manifests larger than this are not read (a run of 32 MiB blobs lists a few hundred bytes per blob). */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** `runs/YYYY/MM/DD/HHMMSSmmm-<run id>.json`, as manifestBlobName (src/export/blobLayout.ts) writes it. */
const MANIFEST_NAME = /^runs\/(\d{4})\/\d{2}\/\d{2}\/\d{9}-([A-Za-z0-9-]{1,64})\.json$/;

/**
 * The manifests of the runs `runIds` (as export blob metadata names them, in `runid`), by run id. A run starts
 * after the versions it exports were read, so its manifest sits in a year folder of `runs/` from the year of
 * `sinceMs` (the earliest window start of the blobs in question, less a margin) on; only those year folders are
 * listed, once each, and only the manifests of the runs asked for are read. A run without a manifest (it was
 * killed before writing one) has no entry.
 */
export async function readRunManifests(
  container: ContainerClient,
  runIds: ReadonlySet<string>,
  sinceMs: number,
): Promise<Map<string, RunManifest[]>> {
  const found = new Map<string, RunManifest[]>();
  if (runIds.size === 0) return found;
  const sinceYear = new Date(sinceMs).getUTCFullYear();
  const wanted: { name: string; runId: string; size: number }[] = [];
  for (const year of await listYears(container)) {
    if (year < sinceYear) continue;
    const prefix = `${MANIFEST_PREFIX}${year}/`;
    try {
      for await (const blob of container.listBlobsFlat({ prefix })) {
        const runId = MANIFEST_NAME.exec(blob.name)?.[2];
        if (runId !== undefined && runIds.has(runId))
          wanted.push({ name: blob.name, runId, size: blob.properties.contentLength ?? 0 });
      }
    } catch (thrown) {
      throw describeStorageError(thrown, container.containerName, `list '${prefix}'`);
    }
  }
  await forEachConcurrently(wanted, 8, async ({ name, runId, size }) => {
    const manifest = await readManifest(container, name, runId, size);
    found.set(runId, [...(found.get(runId) ?? []), manifest]);
  });
  return found;
}

/** The year folders under `runs/`. */
async function listYears(container: ContainerClient): Promise<number[]> {
  const years: number[] = [];
  try {
    for await (const item of container.listBlobsByHierarchy('/', { prefix: MANIFEST_PREFIX })) {
      const year = item.kind === 'prefix' ? /^runs\/(\d{4})\/$/.exec(item.name)?.[1] : undefined;
      if (year !== undefined) years.push(Number(year));
    }
  } catch (thrown) {
    throw describeStorageError(thrown, container.containerName, `list '${MANIFEST_PREFIX}'`);
  }
  return years;
}

async function readManifest(
  container: ContainerClient,
  name: string,
  runId: string,
  size: number,
): Promise<RunManifest> {
  if (size > MAX_MANIFEST_BYTES)
    return { name, problem: `it is ${size} bytes, larger than any manifest this exporter writes` };
  let value: unknown;
  try {
    const bytes = await container.getBlockBlobClient(name).downloadToBuffer();
    value = JSON.parse(bytes.toString('utf8'));
  } catch (thrown) {
    const error =
      thrown instanceof SyntaxError
        ? thrown
        : describeStorageError(thrown, container.containerName, `read '${name}'`, name);
    return { name, problem: printable(toError(error).message) };
  }
  const checked = checkManifest(value, runId);
  return typeof checked === 'string' ? { name, problem: checked } : { name, ...checked };
}

/**
 * The list of committed blobs in a manifest, each entry checked (a manifest is read from storage: anyone with
 * write access may have put anything there); or what is wrong with it.
 */
function checkManifest(value: unknown, runId: string): { blobs?: Map<string, ManifestBlob> } | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'it is not a JSON object';
  const m = value as Record<string, unknown>;
  if (typeof m.runId !== 'string' || safeRunId(m.runId) !== runId)
    return `its 'runId' is not the run id '${runId}' in its name`;
  if (m.committedBlobs === undefined) return {};
  if (!Array.isArray(m.committedBlobs)) return "its 'committedBlobs' is not a list";
  const blobs = new Map<string, ManifestBlob>();
  for (const [index, entry] of (m.committedBlobs as unknown[]).entries()) {
    const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    if (
      typeof e.name !== 'string' ||
      !isCount(e.records) ||
      !isCount(e.bytes) ||
      typeof e.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(e.sha256)
    )
      return `entry ${index} of its 'committedBlobs' is not a name, records, bytes and a SHA-256`;
    blobs.set(e.name, { name: e.name, records: e.records, bytes: e.bytes, sha256: e.sha256 });
  }
  return { blobs };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
