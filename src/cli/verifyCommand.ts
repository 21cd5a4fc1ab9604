import { systemClock } from '../export/ports';
import { createVerifyPorts, type CompositionOptions } from '../composition/compositionRoot';
import { loadConfig } from '../config';
import { printable } from '../export/printable';
import { parseTimeRange } from '../operations/timeRange';
import { verifyExports, type VerifyReport } from '../operations/verifyExports';
import { parseOptions, RANGE_COMMAND_OPTIONS, selectTenant, type Command } from './command';
import { commandHelp } from './commandHelp';
import { consoleLogger } from './consoleLogger';
import { INTERRUPTED_EXIT_CODE, interruptible } from './interrupt';

/**
 * `defender-export verify`, wired with these composition options (the local sandbox's certificate in tests;
 * none in production): the exports of a range audited against the incidents API. Never writes to storage.
 */
export function createVerifyCommand(composition: Omit<CompositionOptions, 'logger'> = {}): Command {
  return {
    ...commandHelp.verify,
    async run(args) {
      const { values } = parseOptions(args, RANGE_COMMAND_OPTIONS);
      const range = parseTimeRange(values.from, values.to, (composition.clock ?? systemClock).now());
      const config = selectTenant(loadConfig(values.settings, { runner: 'cli' }), values.tenant);
      const logger = consoleLogger({ verbose: values.verbose });
      const { source, exports } = createVerifyPorts(config, { ...composition, logger });
      let interrupted = false;
      const report = await interruptible(async (abortSignal) => {
        try {
          return await verifyExports(source, exports, {
            range,
            tenantId: config.tenantId,
            rereadWindowInMs: config.rereadWindowInMs,
            abortSignal,
            logger,
          });
        } catch (thrown) {
          if (!abortSignal.aborted) throw thrown;
          interrupted = true;
          return undefined;
        }
      });
      if (interrupted || !report) return INTERRUPTED_EXIT_CODE;
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      return report.isComplete ? 0 : 1;
    },
  };
}

export const verifyCommand = createVerifyCommand();

/** The report for people: what was checked, the counts, the first versions of each finding, the verdict. */
export function formatReport(r: VerifyReport): string {
  const lines = [`Verified container ${r.container} (${r.api} API), ${r.from} .. ${r.to}:`];
  if (r.checked) {
    const atTo = r.checked.idsAtTo.length;
    lines.push(
      `  checked:      ${r.checked.from} .. ${r.checked.to} (the part the export blobs cover` +
        (atTo > 0 ? `; at its end instant, the ${atTo} incident(s) the last blob ends with)` : ')'),
    );
  }
  for (const part of r.notChecked)
    lines.push(`  not checked:  ${part.from} .. ${part.to} (no export blob covers it)`);
  for (const gap of r.gaps)
    lines.push(`  gap:          ${gap.from} .. ${gap.to} (no blob's window covers it: a blob removed?)`);
  lines.push(
    `  blobs:        ${r.blobs} read, ${r.emptyBlobs} without incidents` +
      (r.otherTenantBlobs > 0 ? `, ${r.otherTenantBlobs} of another tenant skipped` : ''),
    `  listed:       ${r.listed} current version(s) the API lists in the checked part` +
      (r.unplaceable > 0 ? ` (and ${r.unplaceable} item(s) without a valid id or update time)` : ''),
    `  exported:     ${r.exported} version(s) in the checked part, ${r.superseded} of them superseded by a later update (fine)`,
    `  missing:      ${r.missing.count}${sample(
      r.missing.first.map((v) => `${v.id}@${v.lastUpdate}`),
      r.missing.count,
    )}`,
    `  duplicated:   ${r.duplicated.count}${sample(
      r.duplicated.first.map((v) => `${v.id}@${v.lastUpdate} in ${v.blobs.join(', ')}`),
      r.duplicated.count,
    )}`,
  );
  for (const u of r.unreadableBlobs) lines.push(`  unreadable:   ${u.blob}: ${u.reason}`);
  lines.push('', verdict(r));
  // Ids and blob names come from the API and storage: make them printable.
  return `${lines.map(printable).join('\n')}\n`;
}

function sample(items: readonly string[], count: number): string {
  if (items.length === 0) return '';
  return `: ${items.join('; ')}${count > items.length ? `; and ${count - items.length} more` : ''}`;
}

function verdict(r: VerifyReport): string {
  if (!r.checked)
    return 'Nothing checked: no export blob of this export covers any of the range (see `defender-export status`).';
  const problems = [
    ...(r.missing.count > 0
      ? [
          `${r.missing.count} current version(s) the API lists are not in the exports (a blob removed or lost; ` +
            'one indexed late, close to where the export stands, may still come with the next run)',
        ]
      : []),
    ...(r.duplicated.count > 0 ? [`${r.duplicated.count} version(s) are exported more than once`] : []),
    ...(r.unreadableBlobs.length > 0
      ? [`${r.unreadableBlobs.length} blob problem(s): their versions were not counted`]
      : []),
  ];
  const unchecked = r.notChecked.length > 0 ? ' The rest of the range was not checked.' : '';
  return problems.length === 0
    ? `Complete: every current version the API lists from ${r.checked.from} to ${r.checked.to} is exported, and none twice.${unchecked}`
    : `Not complete: ${problems.join('; ')}.${unchecked}`;
}
