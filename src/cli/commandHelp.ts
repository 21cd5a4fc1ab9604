/**
 * What `--help` prints for each command, apart from the commands' code: the CLI lists and explains the
 * commands without loading them (each loads its own dependencies, some only installed for development).
 */
export const commandHelp = {
  download: {
    summary: 'download the exports of a date range to local files, verified and resumable',
    usage: `Usage: defender-export download --from DATE|DATETIME [--to DATE|DATETIME] [--out DIR] [options]

Copies the export blobs that hold incident versions updated in the range to DIR, in the container's layout
(incidents/YYYY/MM/DD/...), decompressed. Lists only the date folders of the range, downloads in parallel,
checks every file (size; the blob's Content-MD5; the size and SHA-256 listed by the manifest of the run that
wrote it, under runs/; JSON, record count in the blob's metadata) and writes it atomically: a blob that fails a
check is not kept. Run it again to resume: files already written and intact are kept.

Options:
  --from DATE|DATETIME  start of the range: a UTC date (2026-11-24) or a date-time with zone (2026-11-24T06:00:00Z)
  --to DATE|DATETIME    end of the range: a date includes that whole day, a date-time is exclusive (default now)
  --out DIR             where the files go (default ./defender-exports)
  --merge FILE          also write every incident version in the range to FILE, ordered by last update, then id
  --latest FILE         also write the newest version in the range of each incident to FILE (the state at --to)
  --format json|jsonl   format of the --merge and --latest files: one JSON array, or one incident a line (default json)
  --concurrency N       blobs downloaded at once (default 4)
  --progress            draw the progress bar on stderr even when it is not a terminal
  --json                print the summary as JSON on stdout
  --settings FILE       settings file (default local.settings.json); only the storage settings are needed:
                        EXPORT_STORAGE_ACCOUNT_URL (with az login) or EXPORT_STORAGE_CONNECTION_STRING, EXPORT_CONTAINER
  --tenant NAME|ID      with DEFENDER_TENANTS: read that tenant's container instead of EXPORT_CONTAINER

Exit codes: 0 all files verified, 1 a blob failed (the others are kept; run again), 2 bad usage or settings,
130 interrupted (run again to resume).`,
  },
  backfill: {
    summary: 'export history from before the live export began, into the same container, resumably',
    usage: `Usage: defender-export backfill --from DATE [--to DATE] [--concurrency N] [--json] [--verbose] [--settings FILE]

A one-off export of the incidents updated from --from up to --to, or up to where the live export began if
that is earlier, into the same container and layout as the live export. It reads the Defender API with the
Function's settings, in runs that each fit EXPORT_MAX_RUN_DURATION, until the range is done. It keeps its own
checkpoint (state/backfill-<from>-<to>.json): interrupted, the same command resumes; parts of the range that
earlier backfills took are resumed or skipped, not exported again. It never moves the live checkpoint and never
writes a version the live export wrote. The range is cut into time slices exported at once, each with its own
checkpoint; a slice that finishes early takes over half of the rest of another. All of them share one pacer that
finds the API's rate limit (429 + Retry-After) and stays under it.

Options:
  --from DATE|DATETIME  start of the history: a UTC date (2026-01-01) or a date-time with zone
  --to DATE|DATETIME    end: a date includes that whole day, a date-time is exclusive (default: where the live export began)
  --concurrency N       time slices exported at once, 1 to 16 (default 4); 1 reads one page at a time
  --json                print the summary as JSON on stdout
  --verbose             also print debug lines (retries)
  --settings FILE       settings file (default local.settings.json): the same settings as the Function
  --tenant NAME|ID      with DEFENDER_TENANTS (required then): the tenant to backfill, into its container

Exit codes: 0 done (or nothing to do), 1 failed (run again to resume), 2 bad usage or settings,
3 another backfill of this range is running, 130 interrupted (run again to resume).`,
  },
  status: {
    summary: 'show the checkpoint, how fresh the export is and the last runs; exit 1 when stale',
    usage: `Usage: defender-export status [--max-age PT2H] [--days N] [--runs N] [--tenant NAME|ID] [--json] [--settings FILE]

Reads the export's checkpoint (state/checkpoint.json) and the manifests of the last runs (runs/, by date
prefix) and tells how far the export has come: everything updated before "exported until" is in storage.
Exits with 1 when that is older than --max-age, so cron or a monitor can alert on it. With DEFENDER_TENANTS:
one line per tenant (exported until, lag, last outcome, with the queue try of a failure), exit 1 when any
tenant is stale; --tenant shows one tenant in full.

Options:
  --max-age DURATION  ISO-8601 duration the export may lag before it counts as stale (default PT2H)
  --days N            UTC days of run manifests to look at (default 3)
  --runs N            how many recent runs to show (default 10)
  --tenant NAME|ID    with DEFENDER_TENANTS: the full status of that tenant's container
  --json              print the status as JSON on stdout
  --settings FILE     settings file (default local.settings.json); only the storage settings are needed

Exit codes: 0 fresh, 1 stale or never run (or the status could not be read), 2 bad usage or settings.`,
  },
  verify: {
    summary:
      'audit the exports of a date range against the incidents API: exit 1 when a version is missing or doubled',
    usage: `Usage: defender-export verify --from DATE|DATETIME [--to DATE|DATETIME] [--json] [--verbose] [--settings FILE]

Reads the export blobs of the range (never writes to storage) and lists the incidents API over the part of the
range they cover, lightly (Graph: only id and times, without alerts), paced like the export. Every incident
whose current version (id, last update) the API lists there must be in the exports with exactly that version,
and no version may be in them twice. Versions the exports hold that the API no longer lists were superseded by
a later update: fine. The part of the range no export blob covers is reported and not checked.

Options:
  --from DATE|DATETIME  start of the range: a UTC date (2026-11-24) or a date-time with zone (2026-11-24T06:00:00Z)
  --to DATE|DATETIME    end of the range: a date includes that whole day, a date-time is exclusive (default now)
  --json                print the report as JSON on stdout
  --verbose             also print debug lines (retries)
  --settings FILE       settings file (default local.settings.json): the same settings as the Function; storage
                        needs only read access (Storage Blob Data Reader)
  --tenant NAME|ID      with DEFENDER_TENANTS (required then): the tenant to verify, in its container

Exit codes: 0 complete, 1 a version is missing or exported twice, or a blob could not be read, 2 bad usage or
settings, 75 a transient failure (network, 5xx, throttling, out of time): run again later, 130 interrupted.`,
  },
  run: {
    summary: 'run one export cycle with the settings from the environment or local.settings.json',
    usage: `Usage: defender-export run [--settings FILE] [--tenant NAME|ID] [--concurrency N] [--json] [--verbose]

Runs one export cycle, exactly as the hourly Function does, against the services the settings name. With
DEFENDER_TENANTS it exports every tenant in this process (no queue), --concurrency at once, one line per
tenant; a tenant that fails does not stop the others (exit 1 when any failed, 75 when all failures are
transient).
Settings come from the environment, over the "Values" of local.settings.json (see local.settings.sample.json).
Locally, Key Vault and Storage are reached with DefaultAzureCredential (az login) unless AZURE_CLIENT_ID names a
managed identity, or EXPORT_STORAGE_CONNECTION_STRING / DEFENDER_CLIENT_SECRET are set.

Options:
  --settings FILE  settings file (default: local.settings.json in the current folder)
  --tenant NAME|ID with DEFENDER_TENANTS: export only this tenant
  --concurrency N  with DEFENDER_TENANTS: tenants exported at once (default 4)
  --json           print the run summary (with DEFENDER_TENANTS: one per tenant) as JSON on stdout
  --verbose        also print debug lines (retries)`,
  },
  tenants: {
    summary: 'onboarding of DEFENDER_TENANTS: the admin-consent URL of a customer tenant, the list',
    usage: `Usage: defender-export tenants consent-url --tenant ID|NAME [--settings FILE]
       defender-export tenants list [--json] [--settings FILE]

consent-url prints the URL at which an administrator of the customer tenant grants the multi-tenant app
(DEFENDER_CLIENT_ID, or the entry's clientId) its application permissions: <authority>/<tenant>/adminconsent?
client_id=<app>, on DEFENDER_AUTHORITY_HOST (the cloud's authority). The tenant may be listed in DEFENDER_TENANTS
(by name or ID) or not yet (by tenant ID or domain). list prints the tenants, their containers and APIs.

Options:
  --tenant ID|NAME  the customer tenant
  --json            list: print the tenants as JSON
  --settings FILE   settings file (default local.settings.json)`,
  },
  sandbox: {
    summary:
      'run one export cycle against the built-in local sandbox (Azurite and a simulated Defender tenant)',
    usage: `Usage: defender-export sandbox [--api graph|legacy] [--credential secret|federated|certificate] [--tenants N] [--dir DIR] [--reset]

Starts Azurite and a simulated Defender tenant (Entra, a managed identity endpoint, Key Vault, Graph and legacy
incidents APIs over HTTPS on 127.0.0.1), runs one export cycle through the same handler the Azure Function uses, and prints what it wrote.
Run it again for an incremental run. Nothing leaves this machine.

Options:
  --api graph|legacy  which incidents API the export reads (default graph)
  --credential MODE   how the app authenticates (DEFENDER_CREDENTIAL): secret (default; the Key Vault secret),
                      federated (the managed identity as the app's federated credential: no secret, no Key Vault)
                      or certificate (a Key Vault certificate)
  --tenants N         simulate an MSSP with N customer tenants (DEFENDER_TENANTS, 2-20): the timer queues one
                      message per tenant on Azurite's queue, the queue function exports each into its own
                      container; the last tenant has revoked its consent, so it is retried and poisoned
  --dir DIR           where the sandbox keeps its state and copies of the exports (default .sandbox)
  --reset             forget the sandbox's state and start over`,
  },
} as const satisfies Record<string, { readonly summary: string; readonly usage: string }>;
