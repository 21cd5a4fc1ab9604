import { systemClock, type Clock } from '../export/ports';
import { resolve } from 'node:path';
import { createContainerClient } from '../composition/compositionRoot';
import { loadStorageConfig, type ExportFormat } from '../config';
import { ConfigError } from '../errors';
import { downloadExports } from '../operations/downloadExports';
import type { InflateOptions } from '../operations/exportReader';
import { parseTimeRange } from '../operations/timeRange';
import { writeVersionsFile } from '../operations/versionsFile';
import { parseOptions, selectTenantStorage, wholeNumber, type Command } from './command';
import { commandHelp } from './commandHelp';
import { INTERRUPTED_EXIT_CODE, interruptible } from './interrupt';
import { formatBytes, ProgressBar } from './progressBar';

/**
 * `defender-export download`: the exports of a range of update times, to local files. `options`: the bound on
 * what a gzip blob may inflate to (tests give a small one; the default is maxInflatedBytes in exportReader), and
 * the clock an open range ends at.
 */
export function createDownloadCommand(options: InflateOptions & { clock?: Clock } = {}): Command {
  const { clock = systemClock, ...inflate } = options;
  return {
    ...commandHelp.download,
    async run(args) {
      const { values } = parseOptions(args, {
        from: { type: 'string' },
        to: { type: 'string' },
        out: { type: 'string', default: 'defender-exports' },
        merge: { type: 'string' },
        latest: { type: 'string' },
        format: { type: 'string', default: 'json' },
        concurrency: { type: 'string', default: '4' },
        progress: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        settings: { type: 'string', default: 'local.settings.json' },
        tenant: { type: 'string' },
      });
      const range = parseTimeRange(values.from, values.to, clock.now());
      const format: ExportFormat = values.format === 'jsonl' ? 'jsonl' : 'json';
      const problems: string[] = [];
      if (values.format !== format) problems.push(`--format is '${values.format}': expected json or jsonl.`);
      const concurrency = wholeNumber(values.concurrency, '--concurrency', 1, 64, problems);
      if (problems.length > 0) throw new ConfigError(problems);
      const container = createContainerClient(
        selectTenantStorage(loadStorageConfig(values.settings), values.tenant),
      );
      const outDir = resolve(values.out);

      const showProgress = values.progress || process.stderr.isTTY;
      const bar = showProgress ? new ProgressBar(process.stderr) : undefined;
      let summary;
      try {
        summary = await interruptible((abortSignal) =>
          downloadExports(container, {
            range,
            outDir,
            concurrency,
            abortSignal,
            ...inflate,
            ...(bar ? { onProgress: (p) => bar.update(p) } : {}),
          }),
        );
      } finally {
        bar?.finish();
      }
      for (const failure of summary.failures)
        process.stderr.write(`error: ${failure.blob}: ${failure.reason}\n`);

      const isComplete = !summary.interrupted && summary.failures.length === 0;
      const writeIfAsked = async (target: string | undefined, latestOnly: boolean) => {
        if (!isComplete || target === undefined) return undefined;
        const file = resolve(target);
        return {
          file,
          count: await writeVersionsFile(outDir, summary.files, file, { range, format, latestOnly }),
        };
      };
      const merged = await writeIfAsked(values.merge, false);
      const latest = await writeIfAsked(values.latest, true);
      const written = {
        ...(merged ? { merge: { file: merged.file, versions: merged.count } } : {}),
        ...(latest ? { latest: { file: latest.file, incidents: latest.count } } : {}),
      };

      if (values.json) {
        const { files, ...rest } = summary;
        process.stdout.write(`${JSON.stringify({ ...rest, files: files.length, ...written }, null, 2)}\n`);
      } else {
        process.stdout.write(
          `${summary.downloaded} blob(s) downloaded (${formatBytes(summary.bytes)}), ${summary.alreadyPresent} already present and intact, ` +
            `${summary.emptyBlobs} without incidents skipped: ${summary.records} incident versions in ${summary.files.length} file(s) under ${outDir}\n`,
        );
        if (summary.downloaded > 0)
          process.stdout.write(
            `checked: ${summary.verifiedByContentMd5} by their Content-MD5 (${summary.withoutContentMd5} have none, written before the exporter set it), ` +
              `${summary.verifiedByManifest} by the size and SHA-256 in the manifest of the run that wrote them (${summary.notInManifest} listed in none)\n`,
          );
        if (written.merge)
          process.stdout.write(
            `${written.merge.versions} incident versions in the range merged into ${written.merge.file}\n`,
          );
        if (written.latest)
          process.stdout.write(
            `latest versions of ${written.latest.incidents} incidents written to ${written.latest.file}\n`,
          );
      }
      if (summary.interrupted) return INTERRUPTED_EXIT_CODE;
      if (summary.failures.length > 0) {
        process.stderr.write(
          `${summary.failures.length} blob(s) failed${values.merge || values.latest ? '; --merge and --latest were not written' : ''}. Run the command again to retry them.\n`,
        );
        return 1;
      }
      return 0;
    },
  };
}

export const downloadCommand: Command = createDownloadCommand();
