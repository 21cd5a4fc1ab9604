import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InvocationContext, type Timer } from '@azure/functions';
import {
  createContainerClients,
  createExporter,
  createTenantExporters,
} from '../composition/compositionRoot';
import { parseConfig, SETTINGS, tenantConfigs } from '../config';
import { ConfigError } from '../errors';
import type { RunSummary } from '../export/exportRun';
import { createExportTenantHandler } from '../functions/exportTenantHandler';
import { readTenantsStatus } from '../operations/exportStatus';
import { fanOutCycle } from '../sandbox/fanOutCycle';
import { LocalQueueHost } from '../sandbox/localQueueHost';
import { SimulatedTenants } from '../sandbox/simulatedTenants';
import { formatTenantsStatus } from './statusCommand';
import { decodeExportBlob } from '../operations/exportReader';
import { createExportIncidentsHandler } from '../functions/exportIncidentsHandler';
import { startAzurite } from '../sandbox/azurite';
import { defenderTime, type Incident } from '../sandbox/incidentStore';
import { SANDBOX_CERTIFICATE, SimulatedTenant } from '../sandbox/simulatedTenant';
import type { CredentialMode } from '../config';
import { parseOptions, type Command } from './command';
import { commandHelp } from './commandHelp';

interface SandboxState {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  seed: number;
  lastRunAt: number;
  store: { nextId: number; incidents: Incident[] };
}

const SETTLE = 'PT5S';

/**
 * `npm start` without real settings: Azurite (data under .sandbox/azurite) and a simulated Defender tenant
 * (kept in .sandbox/tenant.json) on 127.0.0.1, and one export cycle through the Function's own handler.
 * Each new run first lets the simulated analysts change some incidents, so the run is incremental.
 */
export const sandboxCommand: Command = {
  ...commandHelp.sandbox,
  async run(args) {
    const { values } = parseOptions(args, {
      api: { type: 'string', default: 'graph' },
      credential: { type: 'string', default: 'secret' },
      dir: { type: 'string', default: '.sandbox' },
      reset: { type: 'boolean', default: false },
      tenants: { type: 'string' },
    });
    if (values.tenants !== undefined)
      return runTenantsSandbox(values.tenants, String(values.api), String(values.credential));
    const dir = resolve(String(values.dir));
    if (values.reset) rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'azurite'), { recursive: true });
    const statePath = join(dir, 'tenant.json');
    const saved = existsSync(statePath)
      ? (JSON.parse(readFileSync(statePath, 'utf8')) as SandboxState)
      : undefined;

    const print = (line = ''): void => {
      process.stdout.write(`${line}\n`);
    };
    const azurite = await startAzurite({ location: join(dir, 'azurite') });
    const tenant = await SimulatedTenant.start({
      seed: (saved?.seed ?? 7) + 1,
      ...(saved
        ? { tenantId: saved.tenantId, clientId: saved.clientId, clientSecret: saved.clientSecret }
        : {}),
    });
    try {
      const now = Date.now();
      if (saved) {
        tenant.store.load(saved.store);
        const changed = simulateActivity(tenant, saved.lastRunAt, now);
        print(
          `Simulated tenant: ${tenant.store.size} incidents; since the last run, analysts updated ${changed.updated} and ${changed.created} new ones arrived.`,
        );
      } else {
        tenant.store.generate(300, { from: new Date(now - 72 * 3_600_000), to: new Date(now - 60_000) });
        print(
          `Simulated tenant: ${tenant.store.size} incidents updated over the last 72 hours (the first run exports the last 48).`,
        );
      }

      const credential = String(values.credential);
      const config = parseConfig({
        DEFENDER_TENANT_ID: tenant.tenantId,
        DEFENDER_CLIENT_ID: tenant.clientId,
        DEFENDER_API: String(values.api),
        DEFENDER_API_URL: tenant.origin,
        DEFENDER_AUTHORITY_HOST: tenant.origin,
        ...tenant.credentialSettings(credential),
        EXPORT_STORAGE_CONNECTION_STRING: azurite.connectionString,
        EXPORT_SETTLE_DELAY: SETTLE,
      });
      if (config.credential === 'certificate') await tenant.createCertificate(SANDBOX_CERTIFICATE);
      if (config.credential !== 'secret') {
        // Nothing else to authenticate with: the app accepts no secret and the vault holds none.
        tenant.validClientSecrets.clear();
        tenant.secrets.delete(tenant.secretName);
      }
      const composition = {
        ca: tenant.ca,
        azureCredential: tenant.managedIdentityCredential(),
        identityEndpoint: tenant.identityEndpoint,
      };
      const handler = createExportIncidentsHandler(() => config, createExporter, composition);
      const context = new InvocationContext({
        invocationId: `sandbox-${new Date(now).toISOString().replace(/[-:.]/g, '').slice(0, 15)}`,
        functionName: 'exportIncidents',
        logHandler: (level, ...logArgs) => {
          process.stderr.write(`  [${level}] ${logArgs.map(String).join(' ')}\n`);
        },
      });
      const timer: Timer = {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: '', next: '', lastUpdated: '' },
      };
      print(`Export cycle (${config.api} API, settle delay ${SETTLE}), log lines on stderr:`);
      const summary = await handler(timer, context);

      const requests = (api: string) => tenant.requests.filter((r) => r.api === api).length;
      print('');
      print(describeCredential(tenant, config.credential, requests));
      const container = createExporter(config, {
        logger: { debug() {}, info() {}, warn() {}, error() {} },
        ...composition,
      }).container;
      print('');
      print(
        `Outcome: ${summary.outcome}; ${summary.incidents} incident versions in ${summary.blobs} blob(s), ${summary.pages} pages, ${summary.requests} requests.`,
      );
      print(
        `Window: ${summary.windowFrom} .. ${summary.windowUntil}; checkpoint now at ${summary.watermark}.`,
      );
      for (const name of summary.blobNames) {
        const bytes = await container.getBlockBlobClient(name).downloadToBuffer();
        const target = join(dir, 'exports', name);
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, bytes);
        print(`  ${name}  ${decodeExportBlob(name, bytes).length} incidents, ${bytes.length} bytes`);
      }
      print('');
      print(
        `Copies of these blobs are in ${join(dir, 'exports')}: each is a JSON array of incidents exactly as the API returned them.`,
      );
      print(
        `In the container '${config.container}' (Azurite data in ${join(dir, 'azurite')}): incidents/YYYY/MM/DD/… exports, runs/… manifests, state/checkpoint.json.`,
      );
      print(
        `Try: jq '.[0] | {id, displayName, status, lastUpdateDateTime, alerts: (.alerts | length)}' ${summary.blobNames[0] ? join(dir, 'exports', summary.blobNames[0]) : '<blob>'}`,
      );
      print('Run `npm start` again for an incremental run; `npm start -- --reset` starts over.');

      const state: SandboxState = {
        tenantId: tenant.tenantId,
        clientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        seed: (saved?.seed ?? 7) + 1,
        lastRunAt: now,
        store: tenant.store.toJSON(),
      };
      writeFileSync(statePath, JSON.stringify(state));
      return summary.outcome === 'succeeded' ? 0 : 1;
    } finally {
      await tenant.close();
      await azurite.stop();
    }
  },
};

/** How the app authenticated in this cycle, and what it asked of the identity endpoint and Key Vault. */
function describeCredential(
  tenant: SimulatedTenant,
  mode: CredentialMode,
  requests: (api: string) => number,
): string {
  const counts = `${requests('identity')} managed identity token request(s), ${requests('keyvault')} Key Vault request(s), ${requests('entra')} Entra request(s)`;
  switch (mode) {
    case 'federated':
      return (
        `Credential: federated. The managed identity ${tenant.identityClientId} (principal ID ${tenant.identityPrincipalId}) got a token for api://AzureADTokenExchange ` +
        `and presented it as the app's client assertion; Entra matched it with the app's federated credential (issuer ${tenant.identityIssuer}, subject ${tenant.identityPrincipalId}). ` +
        `No secret exists: ${counts}.`
      );
    case 'certificate':
      return `Credential: certificate. The key of Key Vault certificate '${SANDBOX_CERTIFICATE}' (read through its secret, in memory) signed the client assertion; Entra checked it with the public certificate uploaded to the app: ${counts}.`;
    default:
      return `Credential: secret. The client secret came from Key Vault secret '${tenant.secretName}': ${counts}.`;
  }
}

/** Analysts worked the queue since the last run: some incidents updated, a few new ones, stamped in between. */
function simulateActivity(
  tenant: SimulatedTenant,
  lastRunAt: number,
  now: number,
): { updated: number; created: number } {
  // After the last run's window (it ended at its start minus the settle delay) and inside this run's.
  const from = lastRunAt;
  const to = Math.max(from + 1, now - 6_000);
  const stamp = (): string => defenderTime(from + Math.floor(Math.random() * Math.max(1, to - from)));
  const all = tenant.store.all();
  const updated = Math.min(all.length, 12);
  for (let i = 0; i < updated; i++)
    tenant.store.update(all[Math.floor(Math.random() * all.length)]!.id, { lastUpdateTime: stamp() });
  const created = 4;
  for (let i = 0; i < created; i++) tenant.store.add({ lastUpdateTime: stamp() });
  return { updated, created };
}

/**
 * `npm start -- --tenants N`: an MSSP with N customer tenants on a fresh, in-memory Azurite (blob and queue) and
 * one simulated server, the last tenant with its consent revoked; one cycle of the Function as deployed with
 * DEFENDER_TENANTS: the timer's handler queues a message per tenant, the queue function's handler exports each
 * into its tenant's container, the failing tenant is retried (at once here; after host.json's visibilityTimeout
 * in Azure) and poisoned; then the per-tenant status.
 */
async function runTenantsSandbox(count: string, api: string, credential: string): Promise<number> {
  const n = Number(count);
  if (!Number.isInteger(n) || n < 2 || n > 20)
    throw new ConfigError([`--tenants is '${count}': expected a whole number from 2 to 20.`]);
  const print = (line = ''): void => {
    process.stdout.write(`${line}\n`);
  };
  const azurite = await startAzurite();
  const sim = await SimulatedTenants.start({ customers: n, incidents: 120, tenant: { seed: 11 } });
  try {
    const revoked = sim.customers[n - 1]!;
    revoked.hasConsent = false;
    const config = parseConfig({
      ...sim.settings(
        {
          connectionString: azurite.connectionString,
          containerPrefix: 'customer-',
          queue: SETTINGS.EXPORT_QUEUE.default,
        },
        credential,
      ),
      DEFENDER_API: api,
      EXPORT_SETTLE_DELAY: SETTLE,
    });
    if (config.credential === 'certificate') await sim.home.createCertificate(SANDBOX_CERTIFICATE);
    print(
      `Simulated MSSP: ${n} customer tenants with 120 incidents each, one multi-tenant app (DEFENDER_CREDENTIAL=${config.credential}); customer-${n - 1} revoked its consent.`,
    );
    const queueHost = await LocalQueueHost.start(azurite.connectionString, config.queue);
    const composition = {
      ca: sim.ca,
      identityEndpoint: sim.home.identityEndpoint,
      azureCredential: sim.home.managedIdentityCredential(),
    };
    print(
      `Cycle: the timer queues one message per tenant on '${config.queue}', the queue function exports each (log lines on stderr):`,
    );
    const report = await fanOutCycle({
      config,
      queueHost,
      handler: createExportTenantHandler(() => config, createTenantExporters, composition),
      cycleId: 'sandbox-cycle',
      now: Date.now,
      log: (level, text) => process.stderr.write(`  [${level}] ${text}\n`),
    });
    print('');
    for (const done of report.completed) {
      const summary = done.result as RunSummary | undefined;
      if (summary)
        print(
          `  ${summary.tenantName ?? summary.tenantId}: ${summary.outcome}, ${summary.incidents} incident versions in ${summary.blobs} blob(s)`,
        );
    }
    for (const failed of report.failures)
      print(`  try ${failed.dequeueCount} failed: ${failed.error.split('\n')[0]?.slice(0, 160) ?? ''}`);
    print(`  poison queue '${config.queue}-poison': ${report.poisoned.length} message(s)`);
    print('');
    print('Status (defender-export status with DEFENDER_TENANTS):');
    const status = await readTenantsStatus(
      tenantConfigs(config).map((c) => ({
        name: c.tenantName ?? c.tenantId,
        tenantId: c.tenantId,
        containers: createContainerClients(c),
      })),
      { nowMs: Date.now(), maxAgeInMs: 2 * 3_600_000 },
    );
    process.stdout.write(formatTenantsStatus(status));
    print('');
    print(
      'Each tenant has its own container (customer-0, customer-1, ...) in the single-tenant layout; nothing is kept after this run (in-memory Azurite).',
    );
    return report.completed.length === n - 1 && report.poisoned.length === 1 ? 0 : 1;
  } finally {
    await sim.close();
    await azurite.stop();
  }
}
