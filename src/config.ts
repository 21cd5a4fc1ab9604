import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from './errors';
import { parseDurationInMs } from './export/duration';

import type { DefenderApi, ExportCompression, ExportFormat } from './export/ports';

export type { DefenderApi, ExportCompression, ExportFormat };

/**
 * How the app registration proves itself to Entra: a client secret (Key Vault or, locally, a setting), the
 * user-assigned managed identity as its federated identity credential (no secret at all), or a Key Vault
 * certificate whose key signs the client assertion.
 */
export type CredentialMode = 'secret' | 'federated' | 'certificate';

/** The storage settings alone: what the operators' CLI needs to read the exports (download, status). */
export interface StorageConfig {
  readonly managedIdentityClientId: string | undefined;
  readonly storageAccountUrl: string | undefined;
  readonly storageConnectionString: string | undefined;
  readonly container: string;
  /** Container of the checkpoint (`state/`): the export container unless set apart (WORM exports). */
  readonly stateContainer: string;
}

/** A proxy for outgoing connections, from the standard environment variables. */
export interface ProxySetting {
  /** The proxy's URL, with its credentials if any: never log it (src/source/proxy.ts describeProxy shows it without). */
  readonly url: string;
  /** The variable it came from, e.g. `HTTPS_PROXY`. */
  readonly variable: string;
}

/**
 * The proxy variables the Azure SDK clients honour, read the same way for the incidents API: for https targets
 * `HTTPS_PROXY`, else `ALL_PROXY`, else `HTTP_PROXY`; for http targets `HTTP_PROXY`, else `ALL_PROXY`; upper
 * case first, then lower case. `NO_PROXY` lists hosts reached directly.
 */
export interface ProxySettings {
  readonly https: ProxySetting | undefined;
  readonly http: ProxySetting | undefined;
  /** Lower-case NO_PROXY entries: a host, `.suffix` (the domain and its subdomains), or `*` (everything). */
  readonly noProxy: readonly string[];
}

/** One entry of DEFENDER_TENANTS, validated, with the defaults filled in. */
export interface TenantSetting {
  readonly tenantId: string;
  /** The tenant's export container: its exports, runs and `state/`, in the single-tenant layout. */
  readonly container: string;
  readonly api: DefenderApi;
  /** The app registration in this tenant: the entry's `clientId`, else DEFENDER_CLIENT_ID. */
  readonly clientId: string;
  /** A short name for messages, logs and `--tenant`; default the tenant ID. */
  readonly name: string;
}

/** The storage settings and the tenant list: what the CLI needs to read the exports of one or all tenants. */
export interface TenantStorageConfig extends StorageConfig {
  /** DEFENDER_TENANTS, when set. */
  readonly tenants: readonly TenantSetting[] | undefined;
}

/** The validated, frozen configuration of the exporter. */
export interface ExportConfig extends TenantStorageConfig {
  /** The tenant this configuration exports (with DEFENDER_TENANTS: '' until {@link configForTenant}). */
  readonly tenantId: string;
  /** The name of a DEFENDER_TENANTS entry this configuration exports (for messages and the run summary). */
  readonly tenantName?: string;
  readonly clientId: string;
  /** EXPORT_QUEUE: the queue of the fan-out, one message per tenant (DEFENDER_TENANTS). */
  readonly queue: string;
  readonly api: DefenderApi;
  /** Base URL of the incidents API, without a trailing slash. */
  readonly apiUrl: string;
  readonly authorityHost: string;
  /** How the app authenticates to Entra (DEFENDER_CREDENTIAL). */
  readonly credential: CredentialMode;
  readonly keyVaultUrl: string | undefined;
  readonly keyVaultSecretName: string;
  /** The Key Vault certificate of `certificate` mode. */
  readonly keyVaultCertificateName: string | undefined;
  readonly clientSecret: string | undefined;
  /** The audience of the managed identity's token that `federated` mode presents (per cloud, or the override). */
  readonly federationAudience: string;
  readonly schedule: string;
  readonly initialLookbackInMs: number;
  readonly settleDelayInMs: number;
  /** How far before its position a run re-reads for late-indexed versions (0: off). */
  readonly rereadWindowInMs: number;
  readonly maxRunDurationInMs: number;
  readonly format: ExportFormat;
  readonly compression: ExportCompression;
  readonly includeAlerts: boolean;
  /** Proxy for the incidents API (the SDK clients read the same variables themselves). */
  readonly proxy: ProxySettings;
}

/** Every setting the product reads, with its default and meaning: the single source for docs and tests. */
export const SETTINGS = {
  DEFENDER_TENANT_ID: {
    default: undefined,
    meaning: 'Entra tenant ID (GUID or verified domain) of the app registration',
  },
  DEFENDER_TENANTS: {
    default: undefined,
    meaning:
      'many tenants from one deployment: a JSON array of `{"tenantId", "container", "api"?, "clientId"?, "name"?}`; each tenant exports to its own container, through the queue `EXPORT_QUEUE`; `DEFENDER_TENANT_ID` is then not needed (docs/tenants.md)',
  },
  DEFENDER_CLIENT_ID: {
    default: undefined,
    meaning:
      'application (client) ID of the app registration (with `DEFENDER_TENANTS`: the multi-tenant app, unless each tenant names its own `clientId`)',
  },
  DEFENDER_API: {
    default: 'graph',
    meaning:
      '`graph` (Microsoft Graph security incidents) or `legacy` (api.security.microsoft.com, retired 2027-02-01)',
  },
  DEFENDER_API_URL: {
    default: undefined,
    meaning: 'base URL of the incidents API; the token scope is `<origin>/.default`',
  },
  DEFENDER_AUTHORITY_HOST: { default: 'https://login.microsoftonline.com', meaning: 'Entra authority host' },
  DEFENDER_CREDENTIAL: {
    default: 'secret',
    meaning:
      'how the app authenticates: `secret` (client secret in Key Vault), `federated` (the managed identity AZURE_CLIENT_ID as its federated credential: no secret) or `certificate` (a Key Vault certificate)',
  },
  DEFENDER_FEDERATION_AUDIENCE: {
    default: undefined,
    meaning:
      "`federated` only: audience of the managed identity's token; default from DEFENDER_AUTHORITY_HOST: `api://AzureADTokenExchange` (`…USGov` on login.microsoftonline.us, `…China` on login.chinacloudapi.cn)",
  },
  KEY_VAULT_URL: {
    default: undefined,
    meaning: 'vault that holds the client secret (`secret`) or the certificate (`certificate`)',
  },
  KEY_VAULT_SECRET_NAME: {
    default: 'defender-client-secret',
    meaning: '`secret` only: name of the secret in the vault',
  },
  KEY_VAULT_CERTIFICATE_NAME: {
    default: undefined,
    meaning: '`certificate` only: name of the certificate in the vault (PEM content type, exportable key)',
  },
  DEFENDER_CLIENT_SECRET: {
    default: undefined,
    meaning: '`secret` only: the client secret itself, for local development only',
  },
  AZURE_CLIENT_ID: {
    default: undefined,
    meaning:
      "client ID of the user-assigned managed identity (Storage, Key Vault, and in `federated` mode the app's credential)",
  },
  EXPORT_STORAGE_ACCOUNT_URL: {
    default: undefined,
    meaning: 'blob endpoint, e.g. https://<account>.blob.core.windows.net (identity-based)',
  },
  EXPORT_STORAGE_CONNECTION_STRING: {
    default: undefined,
    meaning: 'alternative to the URL, e.g. Azurite (local development)',
  },
  EXPORT_CONTAINER: {
    default: 'defender-incidents',
    meaning: 'container for exports (created if missing)',
  },
  EXPORT_STATE_CONTAINER: {
    default: undefined,
    meaning:
      'container for the checkpoint (`state/`), default `EXPORT_CONTAINER`; set it apart when the export container is immutable (WORM)',
  },
  EXPORT_QUEUE: {
    default: 'defender-export-tenants',
    meaning:
      'with `DEFENDER_TENANTS`: the Storage queue on the host account (`AzureWebJobsStorage`) that the timer fills with one message per tenant; failed messages land in `<queue>-poison`',
  },
  EXPORT_SCHEDULE: { default: '0 0 * * * *', meaning: 'NCRONTAB schedule, 6 fields, UTC' },
  EXPORT_INITIAL_LOOKBACK: {
    default: 'PT48H',
    meaning: 'how far back the first run reaches (ISO-8601 duration)',
  },
  EXPORT_SETTLE_DELAY: {
    default: 'PT5M',
    meaning: 'a run exports up to now minus this, so late-indexed updates are not skipped',
  },
  EXPORT_REREAD_WINDOW: {
    default: 'PT1H',
    meaning:
      'each run re-reads this much before its position and exports the versions the API indexed later than the settle delay (never one twice); `PT0S` turns it off',
  },
  EXPORT_MAX_RUN_DURATION: {
    default: 'PT25M',
    meaning: 'time budget of a run, below host.json functionTimeout (30 min); the next run resumes',
  },
  EXPORT_FORMAT: {
    default: 'json',
    meaning: '`json` (one JSON array per blob) or `jsonl` (one incident per line)',
  },
  EXPORT_COMPRESSION: { default: 'none', meaning: '`none` or `gzip`' },
  EXPORT_INCLUDE_ALERTS: {
    default: 'true',
    meaning: 'Graph only: `$expand=alerts` (the legacy API always embeds alerts)',
  },
} as const satisfies Record<string, { default: string | undefined; meaning: string }>;

export type SettingName = keyof typeof SETTINGS;

const DEFAULT_API_URL: Record<DefenderApi, string> = {
  graph: 'https://graph.microsoft.com',
  legacy: 'https://api.security.microsoft.com',
};

/**
 * host.json `functionTimeout` (00:30:00): the Functions host stops a run after this. A test keeps the two equal;
 * the value is a constant because the deployed bundle does not ship beside host.json.
 */
export const FUNCTION_TIMEOUT_IN_MS = 30 * 60_000;
/**
 * host.json `extensions.queues` of the tenant fan-out (docs/tenants.md says why these values): a test keeps them
 * equal; the local queue host of the sandbox and the bench applies them. `maxDequeueCount` is the tries of a
 * tenant's message before the host moves it to the poison queue; each run's manifest says which try it was.
 */
export const QUEUE_SETTINGS = { batchSize: 4, newBatchThreshold: 2, maxDequeueCount: 5 } as const;
export const QUEUE_MAX_DEQUEUE_COUNT = QUEUE_SETTINGS.maxDequeueCount;
/** Time a run needs after its budget is spent: the last blob commit, the checkpoint write, the manifest. */
const FUNCTION_TIMEOUT_MARGIN_IN_MS = 5 * 60_000;
/** The longest EXPORT_MAX_RUN_DURATION for the Function (PT25M, the default). */
const MAX_FUNCTION_RUN_DURATION_IN_MS = FUNCTION_TIMEOUT_IN_MS - FUNCTION_TIMEOUT_MARGIN_IN_MS;

/**
 * Who runs the export: the Function, which host.json's functionTimeout stops, or the operators' CLI (run,
 * backfill), which nothing stops, so it may be given a longer EXPORT_MAX_RUN_DURATION.
 */
export interface ParseOptions {
  readonly runner?: 'function' | 'cli';
}

/** The date after which the legacy API stops working (message center MC1220762). */
export const LEGACY_API_RETIREMENT_DATE = '2027-02-01';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN =
  /^(?=.{3,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/i;
const CONTAINER = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;
const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** A queue name, short enough that the host's `<queue>-poison` is one too (max 63). */
const QUEUE = /^(?=.{3,56}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;
/** A tenant's name in DEFENDER_TENANTS: shown in logs, alerts and tables. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
/** Space-separated cron-like fields: shown in messages (a secret has no spaces). */
const NCRONTAB_SHAPE = /^[\w*,/?#-]+(?:\s+[\w*,/?#-]+)+$/;

function isLoopback(url: URL): boolean {
  return url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
}

/** Characters of a harmless short value (a word, a duration, a name); no `~ + / =` of secrets and keys. */
const HARMLESS = /^[A-Za-z0-9 ._:*,!?-]{1,20}$/;

/**
 * How a bad value appears in a message: quoted when it has the shape of a harmless identifier (a GUID, a
 * domain, a short word, or the setting's own `shape`), else described by its length only, because it may be a
 * secret pasted into the wrong setting and the message ends up in the host's logs and on the CLI's stderr.
 */
function showValue(value: string, expected: string, shape?: RegExp): string {
  if (GUID.test(value) || DOMAIN.test(value) || HARMLESS.test(value) || shape?.test(value) === true) {
    return `'${value}'`;
  }
  return `a ${value.length}-character value that is not ${expected} (not shown: it may be a secret)`;
}

/** A URL for messages: scheme, host and path only, never credentials, query (a SAS) or fragment. */
function showUrl(url: URL): string {
  return `'${url.protocol}//${url.host}${url.pathname}'`;
}

/** Reads settings from an environment, collecting every problem instead of stopping at the first. */
function settingsReader(env: Readonly<Record<string, string | undefined>>) {
  const problems: string[] = [];
  const get = (name: SettingName): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const required = (name: SettingName, pattern: RegExp, form: string, kind: string): string => {
    const value = get(name);
    if (value === undefined) problems.push(`${name} is missing: set it to ${form}.`);
    else if (!pattern.test(value)) problems.push(`${name} is ${showValue(value, kind)}: expected ${form}.`);
    return value ?? '';
  };
  const url = (name: SettingName, fallback: string | undefined): string | undefined => {
    const value = get(name) ?? fallback;
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      problems.push(`${name} is ${showValue(value, 'a URL')}: expected an absolute https:// URL.`);
      return undefined;
    }
    if (parsed.search || parsed.hash || parsed.username || parsed.password) {
      const given = [
        parsed.username || parsed.password ? 'credentials were given in the URL: remove them' : '',
        parsed.search ? 'a query string was given (it may hold a SAS): remove it' : '',
        parsed.hash ? 'a fragment was given: remove it' : '',
      ].filter(Boolean);
      problems.push(
        `${name} is ${showUrl(parsed)} with more: ${given.join('; ')}. Expected a base URL without query, fragment or credentials.`,
      );
      return undefined;
    }
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopback(parsed))) {
      problems.push(
        `${name} is ${showUrl(parsed)}: expected an https:// URL (plain http is allowed for 127.0.0.1 only).`,
      );
      return undefined;
    }
    return value.replace(/\/+$/, '');
  };
  const oneOf = <T extends string>(name: SettingName, allowed: readonly T[]): T => {
    const value = (get(name) ?? SETTINGS[name].default ?? '').toLowerCase();
    if (!(allowed as readonly string[]).includes(value)) {
      const list = allowed.map((a) => `'${a}'`).join(', ');
      problems.push(`${name} is ${showValue(get(name) ?? '', `one of ${list}`)}: expected one of ${list}.`);
      return allowed[0] as T;
    }
    return value as T;
  };
  const duration = (name: SettingName, min: number, max: number, why = ''): number => {
    const text = get(name) ?? SETTINGS[name].default ?? '';
    const ms = parseDurationInMs(text);
    if (ms === undefined) {
      problems.push(
        `${name} is ${showValue(text, 'a duration')}: expected an ISO-8601 duration such as PT48H, P7D or PT5M.`,
      );
      return 0;
    }
    if (ms < min || ms > max) {
      problems.push(
        `${name} is '${text}': expected a duration between ${describe(min)} and ${describe(max)}${why}.`,
      );
    }
    return ms;
  };
  return { problems, get, required, url, oneOf, duration };
}

type SettingsReader = ReturnType<typeof settingsReader>;

/** The storage settings (account, container, identity), validated into the reader's problem list. */
function readStorageSettings({ problems, get, url }: SettingsReader): StorageConfig {
  const managedIdentityClientId = get('AZURE_CLIENT_ID');
  if (managedIdentityClientId !== undefined && !GUID.test(managedIdentityClientId)) {
    problems.push(
      `AZURE_CLIENT_ID is ${showValue(managedIdentityClientId, 'a GUID')}: expected the client ID (a GUID) of the user-assigned managed identity.`,
    );
  }

  const storageAccountUrl = url('EXPORT_STORAGE_ACCOUNT_URL', undefined);
  const storageConnectionString = get('EXPORT_STORAGE_CONNECTION_STRING');
  if (
    storageAccountUrl === undefined &&
    storageConnectionString === undefined &&
    get('EXPORT_STORAGE_ACCOUNT_URL') === undefined
  ) {
    problems.push(
      'EXPORT_STORAGE_ACCOUNT_URL is missing: set it to the blob endpoint (https://<account>.blob.core.windows.net), ' +
        'or set EXPORT_STORAGE_CONNECTION_STRING (e.g. for Azurite).',
    );
  }
  if (
    storageConnectionString !== undefined &&
    !/(AccountName=|UseDevelopmentStorage=true|BlobEndpoint=)/i.test(storageConnectionString)
  ) {
    problems.push(
      'EXPORT_STORAGE_CONNECTION_STRING is not a storage connection string: expected AccountName=...;AccountKey=...;BlobEndpoint=... or UseDevelopmentStorage=true.',
    );
  }
  const container = get('EXPORT_CONTAINER') ?? SETTINGS.EXPORT_CONTAINER.default;
  const stateContainer = get('EXPORT_STATE_CONTAINER') ?? container;
  for (const [name, value] of [
    ['EXPORT_CONTAINER', container],
    ['EXPORT_STATE_CONTAINER', get('EXPORT_STATE_CONTAINER')],
  ] as const) {
    if (value !== undefined && !CONTAINER.test(value)) {
      problems.push(
        `${name} is ${showValue(value, 'a container name', CONTAINER)}: expected 3-63 lowercase letters, digits and single hyphens.`,
      );
    }
  }
  return { managedIdentityClientId, storageAccountUrl, storageConnectionString, container, stateContainer };
}

/** Token exchange audiences per cloud (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity). */
export const FEDERATION_AUDIENCES = {
  global: 'api://AzureADTokenExchange',
  usgov: 'api://AzureADTokenExchangeUSGov',
  china: 'api://AzureADTokenExchangeChina',
} as const;

/** The cloud of an Entra authority host; any other host (a sovereign proxy, the local sandbox) counts as global. */
export function cloudOfAuthority(authorityHost: string): keyof typeof FEDERATION_AUDIENCES {
  const host = new URL(authorityHost).hostname.toLowerCase();
  if (host === 'login.microsoftonline.us') return 'usgov';
  if (host === 'login.chinacloudapi.cn' || host === 'login.partner.microsoftonline.cn') return 'china';
  return 'global';
}

type CredentialSettings = Pick<
  ExportConfig,
  | 'credential'
  | 'keyVaultUrl'
  | 'keyVaultSecretName'
  | 'keyVaultCertificateName'
  | 'clientSecret'
  | 'federationAudience'
>;

/**
 * DEFENDER_CREDENTIAL and the settings each mode needs, validated into the reader's problem list: a setting
 * another mode uses is reported by name (in `federated` mode there must be no secret anywhere, so a Key Vault
 * or secret setting is a mistake worth stopping for, not something to ignore).
 */
function readCredentialSettings(
  reader: SettingsReader,
  authorityHost: string | undefined,
): CredentialSettings {
  const { problems, get, url, oneOf } = reader;
  const credential = oneOf<CredentialMode>('DEFENDER_CREDENTIAL', ['secret', 'federated', 'certificate']);
  const keyVaultUrl = url('KEY_VAULT_URL', undefined);
  const keyVaultSecretName = get('KEY_VAULT_SECRET_NAME') ?? SETTINGS.KEY_VAULT_SECRET_NAME.default;
  const keyVaultCertificateName = get('KEY_VAULT_CERTIFICATE_NAME');
  const clientSecret = get('DEFENDER_CLIENT_SECRET');
  const cloud = authorityHost ? cloudOfAuthority(authorityHost) : 'global';
  const federationAudience = get('DEFENDER_FEDERATION_AUDIENCE') ?? FEDERATION_AUDIENCES[cloud];
  const mode = `DEFENDER_CREDENTIAL=${credential}`;
  const notIn = (name: SettingName, why: string) => {
    if (get(name) !== undefined) problems.push(`${name} is set, but ${mode} ${why}: remove it.`);
  };
  if (keyVaultCertificateName !== undefined && !SECRET_NAME.test(keyVaultCertificateName)) {
    problems.push(
      `KEY_VAULT_CERTIFICATE_NAME is ${showValue(keyVaultCertificateName, 'a certificate name')}: expected 1-127 letters, digits and hyphens.`,
    );
  }
  if (credential !== 'federated') notIn('DEFENDER_FEDERATION_AUDIENCE', 'uses no token exchange');
  if (credential === 'secret') {
    notIn(
      'KEY_VAULT_CERTIFICATE_NAME',
      'authenticates with the client secret (set DEFENDER_CREDENTIAL=certificate to use it)',
    );
    if (keyVaultUrl === undefined && clientSecret === undefined && get('KEY_VAULT_URL') === undefined) {
      problems.push(
        'KEY_VAULT_URL is missing: set it to the vault that holds the client secret (https://<vault>.vault.azure.net), ' +
          'or, for local development only, set DEFENDER_CLIENT_SECRET; or use DEFENDER_CREDENTIAL=federated, which needs no secret.',
      );
    }
  }
  if (credential === 'federated') {
    const why = 'uses no secret, certificate or Key Vault (the managed identity is the credential)';
    for (const name of [
      'DEFENDER_CLIENT_SECRET',
      'KEY_VAULT_URL',
      'KEY_VAULT_SECRET_NAME',
      'KEY_VAULT_CERTIFICATE_NAME',
    ] as const) {
      notIn(name, why);
    }
    if (get('AZURE_CLIENT_ID') === undefined) {
      problems.push(
        'AZURE_CLIENT_ID is missing: DEFENDER_CREDENTIAL=federated needs the client ID (a GUID) of the user-assigned managed identity that the app registration trusts as its federated credential (a system-assigned identity cannot be one).',
      );
    }
    const given = get('DEFENDER_FEDERATION_AUDIENCE');
    const known = Object.entries(FEDERATION_AUDIENCES).find(
      ([, value]) => value.toLowerCase() === given?.toLowerCase(),
    );
    if (given !== undefined && known === undefined && !/^api:\/\/[\w.-]+$/.test(given)) {
      problems.push(
        `DEFENDER_FEDERATION_AUDIENCE is ${showValue(given, 'a token exchange audience')}: expected ${Object.values(FEDERATION_AUDIENCES).join(', ')} (without /.default).`,
      );
    } else if (known !== undefined && known[0] !== cloud) {
      problems.push(
        `DEFENDER_FEDERATION_AUDIENCE is '${given}', the ${known[0]} cloud's, but DEFENDER_AUTHORITY_HOST is in the ${cloud} cloud: token exchange across clouds is not supported. ` +
          `Use '${FEDERATION_AUDIENCES[cloud]}' (or remove the setting), with the app registration and the managed identity in the same cloud.`,
      );
    }
  }
  if (credential === 'certificate') {
    const why = 'authenticates with the certificate';
    notIn('DEFENDER_CLIENT_SECRET', why);
    notIn('KEY_VAULT_SECRET_NAME', `${why} (KEY_VAULT_CERTIFICATE_NAME names it)`);
    if (get('KEY_VAULT_URL') === undefined) {
      problems.push(
        'KEY_VAULT_URL is missing: DEFENDER_CREDENTIAL=certificate needs the vault that holds the certificate (https://<vault>.vault.azure.net).',
      );
    }
    if (keyVaultCertificateName === undefined) {
      problems.push(
        'KEY_VAULT_CERTIFICATE_NAME is missing: DEFENDER_CREDENTIAL=certificate needs the name of the certificate in KEY_VAULT_URL.',
      );
    }
  }
  if (!SECRET_NAME.test(keyVaultSecretName)) {
    problems.push(
      `KEY_VAULT_SECRET_NAME is ${showValue(keyVaultSecretName, 'a secret name')}: expected 1-127 letters, digits and hyphens.`,
    );
  }
  return {
    credential,
    keyVaultUrl,
    keyVaultSecretName,
    keyVaultCertificateName,
    clientSecret,
    federationAudience,
  };
}

/**
 * Validates the storage settings alone (account URL or connection string, container, AZURE_CLIENT_ID) and
 * returns them frozen: what reading the exports needs, without the Defender settings. Pure, like
 * {@link parseConfig}, and with the same rules and messages.
 */
export function parseStorageConfig(env: Readonly<Record<string, string | undefined>>): TenantStorageConfig {
  const reader = settingsReader(env);
  const storage = readStorageSettings(reader);
  const tenants = readTenantsSetting(reader, undefined, 'graph');
  if (reader.problems.length > 0) throw new ConfigError(reader.problems);
  return Object.freeze({ ...storage, tenants });
}

/**
 * Validates the settings and returns a frozen config. Every bad or missing setting is reported at once,
 * by name, with the expected form. Pure: takes the environment as an argument.
 */
export function parseConfig(
  env: Readonly<Record<string, string | undefined>>,
  options: ParseOptions = {},
): ExportConfig {
  const reader = settingsReader(env);
  const { problems, get, required, url, oneOf, duration } = reader;

  const isMultiTenant = get('DEFENDER_TENANTS') !== undefined;
  const tenantId = get('DEFENDER_TENANT_ID');
  if (tenantId === undefined && !isMultiTenant)
    problems.push(
      'DEFENDER_TENANT_ID is missing: set it to the Entra tenant ID (a GUID) of the app registration, or list the tenants in DEFENDER_TENANTS.',
    );
  else if (tenantId !== undefined && !GUID.test(tenantId) && !DOMAIN.test(tenantId)) {
    problems.push(
      `DEFENDER_TENANT_ID is ${showValue(tenantId, 'a GUID or a domain name')}: expected a GUID or a verified domain name such as contoso.onmicrosoft.com.`,
    );
  }
  const defaultClientId = get('DEFENDER_CLIENT_ID');
  const api = oneOf<DefenderApi>('DEFENDER_API', ['graph', 'legacy']);
  const tenants = readTenantsSetting(reader, defaultClientId, api);
  // With DEFENDER_TENANTS, DEFENDER_CLIENT_ID is the multi-tenant app's, needed unless every entry names its own.
  const clientId =
    tenants !== undefined && (defaultClientId === undefined || GUID.test(defaultClientId))
      ? (defaultClientId ?? '')
      : required(
          'DEFENDER_CLIENT_ID',
          GUID,
          'the application (client) ID of the app registration, a GUID',
          'a GUID',
        );
  if (tenants?.some((t) => t.clientId === '')) {
    problems.push(
      'DEFENDER_CLIENT_ID is missing: set it to the application (client) ID of the multi-tenant app registration, or give every DEFENDER_TENANTS entry its own "clientId".',
    );
  }
  if (tenants !== undefined && get('EXPORT_STATE_CONTAINER') !== undefined) {
    problems.push(
      "EXPORT_STATE_CONTAINER is set together with DEFENDER_TENANTS: each tenant keeps its checkpoint in its own container's state/; remove EXPORT_STATE_CONTAINER.",
    );
  }
  const queue = get('EXPORT_QUEUE') ?? SETTINGS.EXPORT_QUEUE.default;
  if (!QUEUE.test(queue)) {
    problems.push(
      `EXPORT_QUEUE is ${showValue(queue, 'a queue name', QUEUE)}: expected 3-63 lowercase letters, digits and single hyphens, at most 56 so that '<queue>-poison' is a queue name too.`,
    );
  }
  const apiUrl = url('DEFENDER_API_URL', DEFAULT_API_URL[api]) ?? DEFAULT_API_URL[api];
  const authorityHost = url('DEFENDER_AUTHORITY_HOST', SETTINGS.DEFENDER_AUTHORITY_HOST.default);
  if (authorityHost?.startsWith('http:')) {
    problems.push(`DEFENDER_AUTHORITY_HOST is '${authorityHost}': Entra requires https, even on 127.0.0.1.`);
  }

  const credentials = readCredentialSettings(reader, authorityHost);
  const storage = readStorageSettings(reader);

  const schedule = get('EXPORT_SCHEDULE') ?? SETTINGS.EXPORT_SCHEDULE.default;
  if (schedule.split(/\s+/).length !== 6) {
    problems.push(
      `EXPORT_SCHEDULE is ${showValue(schedule, 'an NCRONTAB expression', NCRONTAB_SHAPE)}: expected an NCRONTAB expression with 6 fields (second minute hour day month weekday), e.g. '0 0 * * * *'.`,
    );
  }
  const initialLookbackInMs = duration('EXPORT_INITIAL_LOOKBACK', 60_000, 180 * 86_400_000);
  const settleDelayInMs = duration('EXPORT_SETTLE_DELAY', 0, 86_400_000);
  const rereadWindowInMs = duration('EXPORT_REREAD_WINDOW', 0, 7 * 86_400_000);
  const maxRunDurationInMs =
    options.runner === 'cli'
      ? duration('EXPORT_MAX_RUN_DURATION', 30_000, 24 * 3_600_000)
      : duration(
          'EXPORT_MAX_RUN_DURATION',
          30_000,
          MAX_FUNCTION_RUN_DURATION_IN_MS,
          `, which leaves ${FUNCTION_TIMEOUT_MARGIN_IN_MS / 60_000} minutes to finish before host.json functionTimeout (${hostTimeSpan(FUNCTION_TIMEOUT_IN_MS)}) stops the Function (the CLI's run and backfill allow up to P1D)`,
        );
  const format = oneOf<ExportFormat>('EXPORT_FORMAT', ['json', 'jsonl']);
  const compression = oneOf<ExportCompression>('EXPORT_COMPRESSION', ['none', 'gzip']);
  const includeAlertsText = oneOf('EXPORT_INCLUDE_ALERTS', ['true', 'false']);
  const proxy = parseProxySettings(env, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    tenantId: tenants ? '' : (tenantId ?? ''),
    clientId,
    queue,
    tenants,
    api,
    apiUrl,
    authorityHost: authorityHost ?? SETTINGS.DEFENDER_AUTHORITY_HOST.default,
    ...credentials,
    ...storage,
    schedule,
    initialLookbackInMs,
    settleDelayInMs,
    rereadWindowInMs,
    maxRunDurationInMs,
    format,
    compression,
    includeAlerts: includeAlertsText === 'true',
    proxy,
  });
}

/** The keys a DEFENDER_TENANTS entry may have; any other is a typo worth reporting. */
const TENANT_KEYS = ['tenantId', 'container', 'api', 'clientId', 'name'] as const;

/**
 * DEFENDER_TENANTS, when set: a JSON array of tenants, each checked (GUIDs, container names, the API, the name,
 * unknown keys) and the list for duplicate tenants, containers and names, every problem into the reader's list,
 * named by index. Tenant IDs must be GUIDs here: a domain and a GUID of one tenant could not be told apart, and
 * two entries for one tenant would export it twice.
 */
function readTenantsSetting(
  { problems, get }: SettingsReader,
  defaultClientId: string | undefined,
  defaultApi: DefenderApi,
): readonly TenantSetting[] | undefined {
  const text = get('DEFENDER_TENANTS');
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    problems.push(
      'DEFENDER_TENANTS is not valid JSON: expected an array such as [{"tenantId": "<GUID>", "container": "<container>"}].',
    );
    return [];
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    problems.push(
      'DEFENDER_TENANTS is not a non-empty JSON array: expected [{"tenantId": "<GUID>", "container": "<container>"}, ...].',
    );
    return [];
  }
  const tenants: TenantSetting[] = [];
  const seen = {
    tenantId: new Map<string, number>(),
    container: new Map<string, number>(),
    name: new Map<string, number>(),
  };
  for (const [index, entry] of (parsed as unknown[]).entries()) {
    const at = `DEFENDER_TENANTS[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${at} is not an object: expected {"tenantId": "<GUID>", "container": "<container>"}.`);
      continue;
    }
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!(TENANT_KEYS as readonly string[]).includes(key))
        problems.push(
          `${at} has the unknown key ${showValue(key, 'a key')}: expected only ${TENANT_KEYS.join(', ')}.`,
        );
    }
    const field = (key: (typeof TENANT_KEYS)[number]): string | undefined => {
      const value = e[key];
      if (value === undefined) return undefined;
      if (typeof value !== 'string') {
        problems.push(`${at}.${key} is not a string.`);
        return undefined;
      }
      return value.trim();
    };
    const tenantId = field('tenantId');
    if (tenantId === undefined)
      problems.push(`${at}.tenantId is missing: set it to the customer's tenant ID (a GUID).`);
    else if (!GUID.test(tenantId))
      problems.push(
        `${at}.tenantId is ${showValue(tenantId, 'a GUID')}: expected the tenant ID, a GUID (not a domain name).`,
      );
    const container = field('container');
    if (container === undefined)
      problems.push(`${at}.container is missing: set it to the tenant's own export container.`);
    else if (!CONTAINER.test(container))
      problems.push(
        `${at}.container is ${showValue(container, 'a container name', CONTAINER)}: expected 3-63 lowercase letters, digits and single hyphens.`,
      );
    const apiText = field('api');
    const api = apiText === undefined ? defaultApi : apiText.toLowerCase();
    if (api !== 'graph' && api !== 'legacy')
      problems.push(
        `${at}.api is ${showValue(apiText ?? '', "'graph' or 'legacy'")}: expected 'graph' or 'legacy'.`,
      );
    const clientId = field('clientId');
    if (clientId !== undefined && !GUID.test(clientId))
      problems.push(
        `${at}.clientId is ${showValue(clientId, 'a GUID')}: expected the application (client) ID, a GUID.`,
      );
    const name = field('name');
    if (name !== undefined && !TENANT_NAME.test(name))
      problems.push(
        `${at}.name is ${showValue(name, 'a name', TENANT_NAME)}: expected 1-64 letters, digits, spaces, dots, hyphens and underscores.`,
      );
    const tenant: TenantSetting = {
      tenantId: (tenantId ?? '').toLowerCase(),
      container: container ?? '',
      api: api === 'legacy' ? 'legacy' : 'graph',
      clientId: clientId ?? defaultClientId ?? '',
      name: name ?? (tenantId ?? '').toLowerCase(),
    };
    for (const key of ['tenantId', 'container', 'name'] as const) {
      const value = tenant[key].toLowerCase();
      if (value === '' || (key === 'name' && name === undefined)) continue;
      const first = seen[key].get(value);
      if (first !== undefined)
        problems.push(
          `${at}.${key} '${tenant[key]}' repeats DEFENDER_TENANTS[${first}].${key}: each tenant needs its own ${key === 'tenantId' ? 'entry' : key}.`,
        );
      else seen[key].set(value, index);
    }
    tenants.push(Object.freeze(tenant));
  }
  return Object.freeze(tenants);
}

/**
 * The single-tenant configuration of one DEFENDER_TENANTS entry: its tenant, app, API and container (state
 * included), the shared settings otherwise. What the exporter, `status`, `download`, `verify` and `backfill` work
 * on, exactly as with DEFENDER_TENANT_ID and EXPORT_CONTAINER. DEFENDER_API_URL, when set, serves every tenant;
 * else each tenant's API has its default URL.
 */
export function configForTenant(config: ExportConfig, tenant: TenantSetting): ExportConfig {
  return Object.freeze({
    ...config,
    tenantId: tenant.tenantId,
    tenantName: tenant.name,
    clientId: tenant.clientId,
    api: tenant.api,
    apiUrl: config.apiUrl === DEFAULT_API_URL[config.api] ? DEFAULT_API_URL[tenant.api] : config.apiUrl,
    container: tenant.container,
    stateContainer: tenant.container,
    tenants: undefined,
  });
}

/** Every DEFENDER_TENANTS entry as its own configuration ({@link configForTenant}); the config itself without. */
export function tenantConfigs(config: ExportConfig): ExportConfig[] {
  return config.tenants ? config.tenants.map((t) => configForTenant(config, t)) : [config];
}

/**
 * The DEFENDER_TENANTS entry that `key` names: its tenant ID or its name (case-insensitive). A ConfigError that
 * lists the known ones when none does, or when DEFENDER_TENANTS is not set.
 */
export function findTenant(config: Pick<TenantStorageConfig, 'tenants'>, key: string): TenantSetting {
  const wanted = key.trim().toLowerCase();
  const found = config.tenants?.find((t) => t.tenantId === wanted || t.name.toLowerCase() === wanted);
  if (found) return found;
  if (!config.tenants)
    throw new ConfigError([
      `--tenant ${showValue(key, 'a tenant')} needs DEFENDER_TENANTS: set it, or leave out --tenant.`,
    ]);
  throw new ConfigError([
    `--tenant ${showValue(key, 'a tenant')} is not in DEFENDER_TENANTS: expected one of ${config.tenants.map((t) => `'${t.name}'`).join(', ')} (a name or a tenant ID).`,
  ]);
}

/** The storage settings of one tenant of DEFENDER_TENANTS (its container, state included). */
export function storageForTenant<C extends TenantStorageConfig>(config: C, tenant: TenantSetting): C {
  return Object.freeze({
    ...config,
    container: tenant.container,
    stateContainer: tenant.container,
    tenants: undefined,
  });
}

/** What `tenants consent-url` needs: the app's client ID, the authority, and the tenant list if any. */
export interface ConsentConfig {
  readonly clientId: string | undefined;
  readonly authorityHost: string;
  readonly tenants: readonly TenantSetting[] | undefined;
}

/** Validates the settings `tenants consent-url` reads (pure, like {@link parseConfig}). */
export function parseConsentConfig(env: Readonly<Record<string, string | undefined>>): ConsentConfig {
  const reader = settingsReader(env);
  const clientId = reader.get('DEFENDER_CLIENT_ID');
  if (clientId !== undefined && !GUID.test(clientId))
    reader.problems.push(
      `DEFENDER_CLIENT_ID is ${showValue(clientId, 'a GUID')}: expected the application (client) ID, a GUID.`,
    );
  const authorityHost =
    reader.url('DEFENDER_AUTHORITY_HOST', SETTINGS.DEFENDER_AUTHORITY_HOST.default) ??
    SETTINGS.DEFENDER_AUTHORITY_HOST.default;
  const tenants = readTenantsSetting(reader, clientId, 'graph');
  if (reader.problems.length > 0) throw new ConfigError(reader.problems);
  return Object.freeze({ clientId, authorityHost, tenants });
}

/** Reads the settings of `tenants consent-url`, from the same sources as {@link loadConfig}. */
export function loadConsentConfig(localSettingsPath?: string): ConsentConfig {
  return parseConsentConfig({ ...readLocalSettings(localSettingsPath), ...process.env });
}

/** A tenant ID or domain as `--tenant` may give one for a tenant not yet listed; undefined when it is neither. */
export function isTenantIdentifier(value: string): boolean {
  return GUID.test(value) || DOMAIN.test(value);
}

/**
 * The settings the Functions host needs before any config is parsed: whether the app fans out over a queue
 * (DEFENDER_TENANTS is set), which decides the functions it registers. Reads the process environment.
 */
export function fanOutSettings(): { readonly isFanOut: boolean } {
  return { isFanOut: Boolean(process.env.DEFENDER_TENANTS?.trim()) };
}

/** The standard proxy variables, as the Azure SDK reads them (each also in lower case). */
const PROXY_VARIABLES = {
  https: 'HTTPS_PROXY',
  all: 'ALL_PROXY',
  http: 'HTTP_PROXY',
  no: 'NO_PROXY',
} as const;

/**
 * The standard proxy variables (not product settings: the platform or the network team sets them), validated
 * into `problems`. Pure: takes the environment. A proxy URL may hold credentials; messages never show them.
 */
function parseProxySettings(
  env: Readonly<Record<string, string | undefined>>,
  problems: string[] = [],
): ProxySettings {
  const read = (name: string): ProxySetting | undefined => {
    for (const variable of [name, name.toLowerCase()]) {
      const value = env[variable]?.trim();
      if (!value) continue;
      let parsed: URL;
      try {
        parsed = new URL(value.includes('://') ? value : `http://${value}`);
      } catch {
        problems.push(
          `${variable} is ${showValue(value, 'a URL')}: expected a proxy URL such as http://proxy:3128.`,
        );
        return undefined;
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        problems.push(
          `${variable} is ${showUrl(parsed)}: expected an http:// or https:// proxy URL such as http://proxy:3128.`,
        );
        return undefined;
      }
      return { url: parsed.href, variable };
    }
    return undefined;
  };
  const httpsProxy = read(PROXY_VARIABLES.https);
  const allProxy = read(PROXY_VARIABLES.all);
  const httpProxy = read(PROXY_VARIABLES.http);
  const noProxy = (env[PROXY_VARIABLES.no] ?? env[PROXY_VARIABLES.no.toLowerCase()] ?? '')
    .split(/[\s,]+/)
    .map((entry) => entry.trim().toLowerCase().replace(/^\*\./, '.'))
    .filter((entry) => entry !== '');
  return Object.freeze({
    https: httpsProxy ?? allProxy ?? httpProxy,
    http: httpProxy ?? allProxy,
    noProxy: Object.freeze(noProxy),
  });
}

/** A host.json time span, hh:mm:ss. */
function hostTimeSpan(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
}

function describe(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 86_400_000 === 0) return `P${ms / 86_400_000}D`;
  if (ms % 3_600_000 === 0) return `PT${ms / 3_600_000}H`;
  if (ms % 60_000 === 0) return `PT${ms / 60_000}M`;
  return `PT${ms / 1000}S`;
}

/**
 * Reads the settings: the process environment over the `Values` of a `local.settings.json` (the Functions
 * convention for local runs), when a path is given. The only place in the product that reads the environment.
 */
export function loadConfig(localSettingsPath?: string, options: ParseOptions = {}): ExportConfig {
  return parseConfig({ ...readLocalSettings(localSettingsPath), ...process.env }, options);
}

/** Reads the storage settings alone, from the same sources as {@link loadConfig}. */
export function loadStorageConfig(localSettingsPath?: string): TenantStorageConfig {
  return parseStorageConfig({ ...readLocalSettings(localSettingsPath), ...process.env });
}

/** True when real settings are given (environment or local.settings.json), i.e. not the sandbox. */
export function hasRealSettings(localSettingsPath?: string): boolean {
  const merged = { ...readLocalSettings(localSettingsPath), ...process.env };
  return Boolean(merged.DEFENDER_TENANT_ID?.trim() || merged.DEFENDER_TENANTS?.trim());
}

function readLocalSettings(path: string | undefined): Record<string, string> {
  if (!path || !existsSync(path)) return {};
  const text = readFileSync(path, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (thrown) {
    // The parser's message quotes the text around the error, which may be a secret: give only where it is.
    const at = jsonErrorPosition(text, (thrown as Error).message);
    throw new ConfigError([
      `${path} is not valid JSON${at ? ` (line ${at.line}, column ${at.column})` : ''}. Fix it, e.g. check it with an editor that validates JSON.`,
    ]);
  }
  const values = (parsed as { Values?: unknown } | null)?.Values;
  if (typeof values !== 'object' || values === null)
    throw new ConfigError([`${path} has no "Values" object.`]);
  return Object.fromEntries(
    Object.entries(values).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

/**
 * Where JSON.parse failed, from its message: Node 22 says "(line L column C)", Node 20 "at position N" (an
 * offset into the text); some messages say neither, then the position is not known.
 */
function jsonErrorPosition(text: string, message: string): { line: number; column: number } | undefined {
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lineColumn) return { line: Number(lineColumn[1]), column: Number(lineColumn[2]) };
  const position = /at position (\d+)/.exec(message);
  if (!position) return undefined;
  const before = text.slice(0, Number(position[1]));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}
