import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { azuriteConnectionString, freshContainer } from '../support/world';
import { runCli, settingsFile, tempDir } from '../support/cli';

/** Field of the Azurite connection string. */
function field(name: string): string {
  return new RegExp(`${name}=([^;]+)`).exec(azuriteConnectionString())![1]!;
}

describe('defender-export: usage, settings and storage errors', () => {
  const storage = (values: Record<string, string> = {}): string =>
    settingsFile({
      EXPORT_STORAGE_CONNECTION_STRING: azuriteConnectionString(),
      EXPORT_CONTAINER: 'missing-container',
      ...values,
    });

  it.each(['download', 'backfill', 'status', 'run'])(
    '%s --help prints its usage and exits 0',
    async (name) => {
      const result = await runCli([name, '--help']);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Usage: defender-export ${name}`));
    },
  );

  it('lists the new commands and the exit codes in the top-level help', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ {2}download +download the exports/m);
    expect(result.stdout).toMatch(/^ {2}backfill +export history/m);
    expect(result.stdout).toMatch(/^ {2}status +show the checkpoint/m);
    expect(result.stdout).toMatch(/130 interrupted/);
  });

  it.each<[string[], RegExp]>([
    [['download', '--from', '2026-13-01'], /--from is '2026-13-01': expected a UTC date \(2026-11-24\)/],
    [['download', '--from', '24.11.2026'], /--from is '24.11.2026': expected a UTC date/],
    [['download', '--from', '2026-11-24T06:00:00'], /--from is '2026-11-24T06:00:00'.*with a zone/],
    [
      ['download', '--from', '2026-11-24', '--to', '2026-11-23'],
      /The range is empty: --from 2026-11-24 .* is not before --to 2026-11-23/,
    ],
    [['download', '--from', '2999-01-01'], /The range is empty: .* is not before now/],
    [['download'], /--from is missing/],
    [['download', '--from', '2026-11-24', '--format', 'csv'], /--format is 'csv': expected json or jsonl/],
    [['download', '--from', '2026-11-24', '--concurrency', '0'], /--concurrency is '0'/],
    [['download', '--from', '2026-11-24', '--bogus'], /Unknown option '--bogus'/],
    [['backfill', '--from', '2026-11-24', '--to', '2026-11-24T00:00:00Z'], /The range is empty/],
    [['status', '--days', 'x'], /--days is 'x'/],
  ])('%j is a usage error (exit 2) that says what is wrong', async (args, message) => {
    const result = await runCli([...args, '--settings', storage()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('asks download and status for the storage settings only', async () => {
    const empty = settingsFile({});
    for (const args of [['download', '--from', '2026-11-24'], ['status']]) {
      const result = await runCli([...args, '--settings', empty]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/EXPORT_STORAGE_ACCOUNT_URL is missing/);
      expect(result.stderr).not.toMatch(/DEFENDER_/);
    }
  });

  it.each([
    ['download', ['--from', '2026-11-24', '--out', tempDir()]],
    ['status', []],
  ])('%s names a missing container and the settings to check (exit 1)', async (name, args) => {
    const result = await runCli([name, ...args, '--settings', storage()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: Container 'missing-container' does not exist in the storage account\. Check EXPORT_CONTAINER and the account/,
    );
  });

  it('names the role to grant on a permission error, and prints no key or signature', async () => {
    const container = freshContainer('perm');
    await container.create();
    try {
      // A SAS that may read blobs but not list them: Storage answers 403 AuthorizationPermissionMismatch.
      const sas = generateBlobSASQueryParameters(
        {
          containerName: container.containerName,
          permissions: ContainerSASPermissions.parse('r'),
          expiresOn: new Date(Date.now() + 3_600_000),
        },
        new StorageSharedKeyCredential(field('AccountName'), field('AccountKey')),
      ).toString();
      const signature = decodeURIComponent(/sig=([^&]+)/.exec(sas)![1]!);
      const readOnly = storage({
        EXPORT_STORAGE_CONNECTION_STRING: `BlobEndpoint=${field('BlobEndpoint')};SharedAccessSignature=${sas}`,
        EXPORT_CONTAINER: container.containerName,
      });
      for (const args of [['download', '--from', '2026-11-24', '--out', tempDir()], ['status']]) {
        const result = await runCli([...args, '--settings', readOnly]);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(
          new RegExp(
            `Storage refused to list '(incidents|runs)/\\d{4}/\\d{2}/\\d{2}/' in container '${container.containerName}' \\(403 AuthorizationPermissionMismatch\\)`,
          ),
        );
        expect(result.stderr).toMatch(
          /'Storage Blob Data Reader' is enough for the CLI's download, status and verify/,
        );
        expect(`${result.stdout}${result.stderr}`).not.toContain(signature);
      }

      // A wrong account key: 403 AuthorizationFailure, and the key stays out of the output.
      const wrongKey = Buffer.alloc(64, 7).toString('base64');
      const result = await runCli([
        'status',
        '--settings',
        storage({
          EXPORT_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=${field('AccountName')};AccountKey=${wrongKey};BlobEndpoint=${field('BlobEndpoint')};`,
          EXPORT_CONTAINER: container.containerName,
        }),
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/\(403 AuthorizationFailure\)/);
      expect(`${result.stdout}${result.stderr}`).not.toContain(wrongKey);
      expect(`${result.stdout}${result.stderr}`).not.toContain(field('AccountKey'));
    } finally {
      await container.deleteIfExists();
    }
  });
});
