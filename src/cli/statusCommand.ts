import { createContainerClients } from '../composition/compositionRoot';
import { loadStorageConfig, storageForTenant } from '../config';
import { formatDuration, parseDurationInMs } from '../export/duration';
import { printable } from '../export/printable';
import { ConfigError } from '../errors';
import { systemClock, type Clock } from '../export/ports';
import {
  readExportStatus,
  readTenantsStatus,
  type ExportStatus,
  type TenantsStatus,
} from '../operations/exportStatus';
import { parseOptions, selectTenantStorage, wholeNumber, type Command } from './command';
import { commandHelp } from './commandHelp';

/** `defender-export status`: the health of the export, for people, cron and monitoring; ages on `clock`. */
export function createStatusCommand(clock: Clock = systemClock): Command {
  return {
    ...commandHelp.status,
    async run(args) {
      const { values } = parseOptions(args, {
        'max-age': { type: 'string', default: 'PT2H' },
        days: { type: 'string', default: '3' },
        runs: { type: 'string', default: '10' },
        json: { type: 'boolean', default: false },
        settings: { type: 'string', default: 'local.settings.json' },
        tenant: { type: 'string' },
      });
      const problems: string[] = [];
      const maxAgeInMs = parseDurationInMs(values['max-age']);
      if (maxAgeInMs === undefined)
        problems.push(
          `--max-age is '${values['max-age']}': expected an ISO-8601 duration such as PT2H or PT90M.`,
        );
      const days = wholeNumber(values.days, '--days', 1, 31, problems);
      const runs = wholeNumber(values.runs, '--runs', 1, 1000, problems);
      if (problems.length > 0 || maxAgeInMs === undefined) throw new ConfigError(problems);
      const storage = loadStorageConfig(values.settings);
      const options = { nowMs: clock.now(), maxAgeInMs, days, runs };
      if (storage.tenants && values.tenant === undefined) {
        const all = await readTenantsStatus(
          storage.tenants.map((t) => ({
            name: t.name,
            tenantId: t.tenantId,
            containers: createContainerClients(storageForTenant(storage, t)),
          })),
          options,
        );
        process.stdout.write(values.json ? `${JSON.stringify(all, null, 2)}\n` : formatTenantsStatus(all));
        return all.isStale ? 1 : 0;
      }
      const containers = createContainerClients(selectTenantStorage(storage, values.tenant));

      const status = await readExportStatus(containers, options);
      process.stdout.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return status.isStale ? 1 : 0;
    },
  };
}

export const statusCommand: Command = createStatusCommand();

/** The status of DEFENDER_TENANTS for people: one line per tenant, then the verdict. */
export function formatTenantsStatus(all: TenantsStatus): string {
  const rows = [
    ['TENANT', 'TENANT ID', 'CONTAINER', 'EXPORTED UNTIL', 'LAG', 'LAST OUTCOME', 'HEALTH'],
    ...all.tenants.map((t) => [
      t.name,
      t.tenantId,
      t.status.container,
      t.status.exportedUntil ?? 'never',
      t.status.exportedUntilAgeInMs === undefined ? '' : formatDuration(t.status.exportedUntilAgeInMs),
      t.lastOutcome,
      t.status.isStale ? 'STALE' : 'OK',
    ]),
  ];
  return `${[...table(rows), '', all.verdict].map(printable).join('\n')}\n`;
}

/** Rows as aligned columns (numbers right-aligned in the columns `right`). */
function table(rows: readonly (readonly string[])[], right: readonly number[] = []): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) =>
    `  ${row.map((cell, i) => (right.includes(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd(),
  );
}

/** The status for people: a few labelled lines and a table of runs. */
function formatStatus(s: ExportStatus): string {
  const ago = (ms: number | undefined): string => (ms === undefined ? '' : `, ${formatDuration(ms)} ago`);
  const lines = [`Container:        ${s.container}`];
  if (s.checkpoint) {
    const c = s.checkpoint;
    lines.push(
      `Checkpoint:       ${c.watermark} (${c.idsAtWatermark} id(s) at it), ${c.api} API, written ${c.updatedAt} by run ${c.runId}`,
      `Exported until:   ${s.exportedUntil ?? ''}${ago(s.exportedUntilAgeInMs)}`,
      `Newest update:    ${s.newestUpdate ? `${s.newestUpdate.at}${ago(s.newestUpdate.ageInMs)} (${s.newestUpdate.blob})` : 'none in the last days'}`,
      `Last success:     ${c.lastSuccessfulRunAt ?? 'none yet'}`,
      `Export began at:  ${c.exportStart ?? 'not recorded'}`,
    );
  }
  lines.push('', s.runs.length ? 'Recent runs (newest first):' : 'No run manifests in the last days.');
  if (s.runs.length) {
    const rows = [
      ['STARTED', 'KIND', 'OUTCOME', 'INCIDENTS', 'BLOBS', 'DURATION', 'NOTE'],
      ...s.runs.map((r) => [
        r.startedAt,
        r.kind,
        r.outcome,
        String(r.incidents),
        String(r.blobs),
        formatDuration(r.durationInMs),
        `${r.delivery ? `try ${r.delivery.attempt}/${r.delivery.maxAttempts}${r.delivery.next === 'poison' ? ', poisoned' : ''}: ` : ''}${r.reason ?? ''}`.slice(
          0,
          100,
        ),
      ]),
    ];
    lines.push(...table(rows, [3, 4]));
  }
  lines.push('', s.verdict);
  // readExportStatus already made storage's texts printable; a status built elsewhere gets the same treatment.
  return `${lines.map(printable).join('\n')}\n`;
}
