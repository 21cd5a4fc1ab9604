import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ExportFormat } from '../config';
import { parseIncidentRecord } from '../source/incidentPage';
import { ExportError } from '../errors';
import type { LocalExportFile } from './downloadExports';
import { decodeExportBlob } from './exportReader';
import { writeFileAtomically } from './localFiles';
import { contains, type TimeRange } from './timeRange';

export interface VersionsFileOptions {
  readonly range: TimeRange;
  readonly format: ExportFormat;
  /** Only the newest version in the range of each incident (the state at the end of the range). */
  readonly latestOnly: boolean;
}

interface Version {
  readonly id: string;
  readonly ticks: bigint;
  readonly raw: unknown;
}

/**
 * Writes the incident versions of downloaded export files whose last update lies in the range into one file,
 * ordered by (last update in exact 100-ns ticks, id), each version once: all of them, or with `latestOnly` the
 * newest of each incident. Reads one UTC day at a time (each blob holds the versions of one day), so memory
 * holds a day of versions, plus the newest time of each incident for `latestOnly`. Returns the count written.
 */
export async function writeVersionsFile(
  outDir: string,
  files: readonly LocalExportFile[],
  target: string,
  options: VersionsFileOptions,
): Promise<number> {
  const days = new Map<string, LocalExportFile[]>();
  for (const file of [...files].sort((a, b) => (a.blob < b.blob ? -1 : 1))) {
    const day = dirname(file.blob);
    days.set(day, [...(days.get(day) ?? []), file]);
  }

  let newest: Map<string, bigint> | undefined;
  if (options.latestOnly) {
    newest = new Map();
    for (const dayFiles of days.values()) {
      for (const v of await readDay(outDir, dayFiles, options.range)) {
        if ((newest.get(v.id) ?? -1n) < v.ticks) newest.set(v.id, v.ticks);
      }
    }
  }

  let count = 0;
  await writeFileAtomically(target, async (out) => {
    if (options.format === 'json') await out.write('[');
    for (const dayFiles of days.values()) {
      const versions = (await readDay(outDir, dayFiles, options.range)).sort(compareVersions);
      let text = '';
      let previous: Version | undefined;
      for (const v of versions) {
        if (previous && compareVersions(previous, v) === 0) continue; // the same version twice: write it once
        previous = v;
        if (newest && newest.get(v.id) !== v.ticks) continue;
        const json = JSON.stringify(v.raw);
        text += options.format === 'json' ? `${count === 0 ? '\n' : ',\n'}${json}` : `${json}\n`;
        count++;
      }
      if (text) await out.write(text);
    }
    if (options.format === 'json') await out.write(count === 0 ? ']\n' : '\n]\n');
  });
  return count;
}

/** Versions order by last update, then id: numerically when both ids are numbers, else as text. */
export function compareVersions(a: { id: string; ticks: bigint }, b: { id: string; ticks: bigint }): number {
  if (a.ticks !== b.ticks) return a.ticks < b.ticks ? -1 : 1;
  if (/^\d+$/.test(a.id) && /^\d+$/.test(b.id)) {
    const x = BigInt(a.id);
    const y = BigInt(b.id);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

async function readDay(
  outDir: string,
  files: readonly LocalExportFile[],
  range: TimeRange,
): Promise<Version[]> {
  const versions: Version[] = [];
  for (const file of files) {
    const records = decodeExportBlob(file.file, await readFile(join(outDir, file.file)));
    for (const raw of records) {
      const record = parseIncidentRecord(raw, file.api);
      if (typeof record === 'string') throw new ExportError(`${file.file}: ${record}.`);
      if (contains(range, record.lastUpdate.ticks))
        versions.push({ id: record.id, ticks: record.lastUpdate.ticks, raw });
    }
  }
  return versions;
}
