import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { parseConfig, SETTINGS } from '../../src/config';

// The template's guards, evaluated by the real Bicep CLI: `bicep snapshot` compiles a parameter file against
// infra/main.bicep and evaluates the template as Azure Resource Manager would (names, conditions, fail()), without
// a subscription. Each file in params/fail/ must stop with the message its `// expect:` lines give; each file in
// params/pass/ must evaluate, and the resources it predicts are checked below.

const root = join(__dirname, '..', '..');
const paramsDir = join(__dirname, 'params');
const TENANT = '00000000-0000-0000-0000-0000000000bb';
const SUBSCRIPTION = '00000000-0000-0000-0000-0000000000aa';

/** The Bicep CLI: $BICEP, where infra/scripts/install-bicep.sh installs it (.ci/run runs it first), or PATH. */
function findBicep(): string | undefined {
  if (process.env.BICEP) return process.env.BICEP;
  const script = readFileSync(join(root, 'infra/scripts/install-bicep.sh'), 'utf8');
  const version = process.env.BICEP_VERSION ?? /BICEP_VERSION:-([\d.]+)/.exec(script)![1]!;
  const home =
    process.env.DEFENDER_EXPORT_BICEP_HOME ??
    join(homedir(), '.cache', 'defender-incident-export', `bicep-${version}`);
  const installed = join(home, 'packages', 'azure.bicep.commandline.linux-x64', version, 'tools', 'bicep');
  if (existsSync(installed)) return installed;
  return spawnSync('bicep', ['--version']).status === 0 ? 'bicep' : undefined;
}

interface Resource {
  id?: string;
  type: string;
  name: string;
  tags?: Record<string, string>;
  properties?: Record<string, unknown>;
}

type Snapshot = { ok: true; resources: Resource[] } | { ok: false; output: string };

const bicep = findBicep();
// Made only where Bicep runs, so a skipped suite leaves nothing behind.
const work = bicep ? mkdtempSync(join(tmpdir(), 'infra-guards-')) : '';
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Snapshots a parameter file from a copy in a temporary folder, so nothing is written into the repository. */
function runSnapshot(file: string): Promise<Snapshot> {
  const name = basename(file);
  const using = relative(work, join(root, 'infra', 'main.bicep'))
    .split('\\')
    .join('/');
  const text = readFileSync(file, 'utf8').replace(/^using '[^']+'/m, `using '${using}'`);
  writeFileSync(join(work, name), text);
  const args = ['snapshot', join(work, name), '--mode', 'overwrite', '--tenant-id', TENANT];
  args.push(
    '--subscription-id',
    SUBSCRIPTION,
    '--resource-group',
    'rg-defender-export',
    '--location',
    'westeurope',
  );
  return new Promise((resolve) => {
    execFile(bicep!, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) return resolve({ ok: false, output: `${stdout}${stderr}` });
      const snapshotFile = join(work, name.replace(/\.bicepparam$/, '.snapshot.json'));
      const json = JSON.parse(readFileSync(snapshotFile, 'utf8')) as { predictedResources: Resource[] };
      resolve({ ok: true, resources: json.predictedResources });
    });
  });
}

// Each file is snapshotted once, two at a time (a Bicep process takes 2-3 s, mostly its start).
const snapshots = new Map<string, Promise<Snapshot>>();
let slots: Promise<unknown> = Promise.resolve();
let other: Promise<unknown> = Promise.resolve();
function snapshot(file: string): Promise<Snapshot> {
  let result = snapshots.get(file);
  if (result === undefined) {
    result = slots.then(() => runSnapshot(file));
    [slots, other] = [other, result];
    snapshots.set(file, result);
  }
  return result;
}

async function evaluated(file: string): Promise<Resource[]> {
  const result = await snapshot(join(paramsDir, 'pass', file));
  if (!result.ok) throw new Error(result.output);
  return result.resources;
}

const files = (kind: 'pass' | 'fail') =>
  readdirSync(join(paramsDir, kind))
    .filter((f) => f.endsWith('.bicepparam'))
    .sort()
    .map((f) => join(paramsDir, kind, f));

/** The settings that reference another resource, which a snapshot leaves as expressions; stand-ins for them. */
const DEPLOYED_AT_RUN_TIME: Record<string, string> = {
  DEFENDER_AUTHORITY_HOST: 'https://login.microsoftonline.com',
  KEY_VAULT_URL: 'https://vault.vault.azure.net/',
  AZURE_CLIENT_ID: '00000000-0000-0000-0000-0000000000cc',
  EXPORT_STORAGE_ACCOUNT_URL: 'https://account.blob.core.windows.net/',
};

/** The app settings of a snapshot, as the Function would read them. */
function appSettings(resources: Resource[]): Record<string, string> {
  const config = resources.find(
    (r) => r.type === 'Microsoft.Web/sites/config' && r.name.endsWith('/appsettings'),
  );
  const settings = config!.properties as Record<string, string>;
  return Object.fromEntries(
    Object.entries(settings).map(([name, value]) => [
      name,
      value.startsWith('[') ? (DEPLOYED_AT_RUN_TIME[name] ?? value) : value,
    ]),
  );
}

const ofType = (resources: Resource[], type: string) => resources.filter((r) => r.type === type);
/** Resource properties, read as the JSON they are. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const props = (resource: Resource | undefined) => resource!.properties as Record<string, Json>;
/** The container WORM policies the deployment sends. */
const wormPolicies = (resources: Resource[]) =>
  ofType(resources, 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies');
/** The tiering and deletion of the export blobs (the lifecycle policy's first rule). */
const baseBlobActions = (resources: Resource[]): unknown =>
  props(ofType(resources, 'Microsoft.Storage/storageAccounts/managementPolicies')[0]).policy.rules[0]
    .definition.actions.baseBlob;
/** The alert rules by their name without prefix and suffix: 'run-failed', 'export-behind', 'export-stale'. */
function alerts(resources: Resource[]): Map<string, Record<string, Json>> {
  return new Map(
    ofType(resources, 'Microsoft.Insights/scheduledQueryRules').map((r) => [
      r.name.split('-').slice(1, -1).join('-'),
      props(r),
    ]),
  );
}

if (!bicep && process.env.CI) {
  it('has the Bicep CLI in CI', () => {
    throw new Error(
      'CI is set but no Bicep CLI was found: .ci/run installs it with infra/scripts/install-bicep.sh; or set BICEP.',
    );
  });
}

(bicep ? describe : describe.skip)('the template guards, evaluated by the Bicep CLI', () => {
  beforeAll(() => {
    for (const file of [...files('pass'), ...files('fail')]) void snapshot(file);
  });

  describe.each(files('fail').map((f) => [basename(f), f]))('%s', (_name, file) => {
    it('stops the deployment with a message that names the parameters', async () => {
      const text = readFileSync(file, 'utf8');
      const expected = [...text.matchAll(/^\/\/ expect: (.+)$/gm)].map((m) => m[1]!);
      expect(expected.length).toBeGreaterThan(0);
      const result = await snapshot(file);
      expect(result.ok).toBe(false);
      const output = result.ok ? '' : result.output;
      for (const fragment of expected) expect(output).toContain(fragment);
      // A parameter's own constraint (a decorator) is reported at the line of that parameter.
      for (const [, param] of text.matchAll(/^\/\/ expect-param: (\w+)$/gm)) {
        const line = Number(/\.bicepparam\((\d+),\d+\) : Error/.exec(output)?.[1]);
        expect(text.split('\n')[line - 1]).toMatch(new RegExp(`^param ${param} =`));
      }
    });
  });

  it('has a parameter file for each guard', () => {
    expect(files('fail').length).toBeGreaterThanOrEqual(10);
    expect(files('pass').map((f) => basename(f))).toEqual([
      'certificate.bicepparam',
      'defaults.bicepparam',
      'edges.bicepparam',
      'federated.bicepparam',
      'second-environment.bicepparam',
      'tenants.bicepparam',
      'worm-locked-archive.bicepparam',
    ]);
  });

  describe('with tenants', () => {
    let resources: Resource[] = [];
    beforeAll(async () => {
      resources = await evaluated('tenants.bicepparam');
    });

    it('deploys DEFENDER_TENANTS, the queue and its poison queue, the queue role, and a container per tenant', () => {
      const settings = appSettings(resources);
      const config = parseConfig(settings, { runner: 'function' });
      expect(config.tenants?.map((t) => [t.name, t.container, t.api])).toEqual([
        ['Contoso', 'contoso-incidents', 'graph'],
        ['5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f', 'fabrikam-incidents', 'legacy'],
      ]);
      expect(config.queue).toBe('defender-export-tenants');
      expect(settings.AzureWebJobsStorage__queueServiceUri).toBeDefined();
      expect(
        ofType(resources, 'Microsoft.Storage/storageAccounts/queueServices/queues').map((r) =>
          r.name.split('/').pop(),
        ),
      ).toEqual(['defender-export-tenants', 'defender-export-tenants-poison']);
      const containers = ofType(resources, 'Microsoft.Storage/storageAccounts/blobServices/containers').map(
        (r) => r.name.split('/').pop(),
      );
      expect(containers).toEqual(expect.arrayContaining(['contoso-incidents', 'fabrikam-incidents']));
      const roles = JSON.stringify(ofType(resources, 'Microsoft.Authorization/roleAssignments'));
      expect(roles).toContain('974c5e8b-45b9-4653-ba55-5f855dd0fb88'); // Storage Queue Data Contributor
    });
  });

  describe('with the defaults', () => {
    let resources: Resource[] = [];
    beforeAll(async () => {
      resources = await evaluated('defaults.bicepparam');
    });

    it('deploys the settings the code reads, and the code accepts them as the Function', () => {
      const settings = appSettings(resources);
      const exportSettings = Object.keys(settings).filter((name) => name in SETTINGS);
      expect(exportSettings.sort()).toEqual(
        Object.keys(SETTINGS)
          // Local-only settings, DEFENDER_API_URL, which the template sets only when defenderApiUrl is given, and
          // the settings of the other credential modes.
          .filter(
            (name) =>
              ![
                'DEFENDER_CLIENT_SECRET',
                'EXPORT_STORAGE_CONNECTION_STRING',
                'DEFENDER_API_URL',
                'KEY_VAULT_CERTIFICATE_NAME',
                'DEFENDER_FEDERATION_AUDIENCE',
              ].includes(name),
          )
          .sort(),
      );
      expect(Object.values(settings).filter((value) => value.startsWith('['))).toEqual(
        Object.keys(settings)
          .filter(
            (name) => name.startsWith('AzureWebJobsStorage__') || name.startsWith('APPLICATIONINSIGHTS_'),
          )
          .filter((name) => name !== 'AzureWebJobsStorage__credential')
          .map((name) => settings[name]),
      );
      const config = parseConfig(settings, { runner: 'function' });
      expect(config.maxRunDurationInMs).toBe(25 * 60_000);
      expect(settings['AzureWebJobs.exportIncidents.Disabled']).toBe('false');
    });

    it('creates no queue and grants no queue role without tenants', () => {
      expect(ofType(resources, 'Microsoft.Storage/storageAccounts/queueServices/queues')).toEqual([]);
      expect(JSON.stringify(ofType(resources, 'Microsoft.Authorization/roleAssignments'))).not.toContain(
        '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
      );
      expect(appSettings(resources).DEFENDER_TENANTS).toBe('');
    });

    it('creates no Event Grid topic unless asked', () => {
      expect(ofType(resources, 'Microsoft.EventGrid/systemTopics')).toEqual([]);
    });

    it('sends no WORM policy, and ages exports to Cool, then Cold', () => {
      expect(wormPolicies(resources)).toEqual([]);
      const [policy] = ofType(resources, 'Microsoft.Storage/storageAccounts/managementPolicies');
      expect(baseBlobActions(resources)).toEqual({
        tierToCool: { daysAfterCreationGreaterThan: 30 },
        tierToCold: { daysAfterCreationGreaterThan: 90 },
      });
      // Versioning keeps one checkpoint version per run; they go after softDeleteDays.
      expect(props(policy).policy.rules[1]).toMatchObject({
        name: 'prune-versions',
        definition: { actions: { version: { delete: { daysAfterCreationGreaterThan: 14 } } } },
      });
    });

    it('alerts on a failed run, on exports older than staleAfterHours, and on no run since the deployment', () => {
      const rules = alerts(resources);
      expect([...rules.keys()].sort()).toEqual(['export-behind', 'export-stale', 'run-failed']);
      const behind = rules.get('export-behind')!.criteria.allOf[0];
      expect(behind.query).toContain('watermarkAgeInMs = tolong(s.watermarkAgeInMs)');
      expect(behind.query).not.toMatch(/toint/);
      expect(behind.query).toContain('outcome = tostring(s.outcome)');
      // The latest summary of each tenant, one alert per tenant that names it.
      expect(behind.query).toContain(
        '| summarize arg_max(timestamp, outcome, watermarkAgeInMs) by tenantId, tenant',
      );
      expect(behind.dimensions).toEqual([{ name: 'tenant', operator: 'Include', values: ['*'] }]);
      expect(behind.query).toContain(`| where exportedUntilAgeInMs > ${3 * 3_600_000}`);
      expect([behind.operator, behind.threshold]).toEqual(['GreaterThan', 0]);
      const notRunning = rules.get('export-stale')!;
      expect(notRunning.enabled).toBe(true);
      expect(notRunning.windowSize).toBe('PT3H');
      expect(notRunning.criteria.allOf[0].query).toContain(
        '| where invocations == 0 and now() > datetime(2026-12-01T10:00:00Z) + 3h',
      );
    });

    it('names the vault as before outside azd', () => {
      const app = ofType(resources, 'Microsoft.Web/sites')[0]!.name;
      const suffix = app.split('-').pop()!;
      expect(ofType(resources, 'Microsoft.KeyVault/vaults')[0]!.name).toBe(`dix-kv-${suffix}`.slice(0, 24));
    });
  });

  it('leaves a locked WORM policy alone, and names the vault after the azd environment', async () => {
    const resources = await evaluated('worm-locked-archive.bicepparam');
    const defaults = await evaluated('defaults.bicepparam');
    expect(wormPolicies(resources)).toEqual([]);
    expect(baseBlobActions(resources)).toEqual({
      tierToCool: { daysAfterCreationGreaterThan: 30 },
      tierToArchive: { daysAfterCreationGreaterThan: 90 },
      delete: { daysAfterCreationGreaterThan: 365 },
    });
    const name = (r: Resource[], type: string) => ofType(r, type)[0]!.name;
    expect(name(resources, 'Microsoft.Web/sites')).toBe(name(defaults, 'Microsoft.Web/sites'));
    expect(name(resources, 'Microsoft.KeyVault/vaults')).not.toBe(
      name(defaults, 'Microsoft.KeyVault/vaults'),
    );
    expect(name(resources, 'Microsoft.KeyVault/vaults')).toMatch(/^dix-kv-[a-z0-9]{13}$/);
    expect(appSettings(resources).EXPORT_SCHEDULE).toBe('0 30 2 * * *');
  });

  it('gives a second deployment with a nameSeed its own names, and lets the portal call the app by default', async () => {
    const second = await evaluated('second-environment.bicepparam');
    const defaults = await evaluated('defaults.bicepparam');
    // Every resource, child and extension resources too, has another ID than in the first deployment.
    const defaultIds = new Set(defaults.map((r) => r.id));
    expect(second.length).toBe(defaults.length);
    expect(second.filter((r) => r.id === undefined || defaultIds.has(r.id)).map((r) => r.type)).toEqual([]);
    const cors = (r: Resource[]) =>
      (props(ofType(r, 'Microsoft.Web/sites')[0]) as { siteConfig: { cors: { allowedOrigins: string[] } } })
        .siteConfig.cors.allowedOrigins;
    // The snapshot leaves the cloud's values to Azure: the portal of the cloud deployed to (portal.azure.com).
    expect(cors(defaults)).toEqual(['[environment().portal]']);
    expect(cors(second)).toEqual([]);
  });

  it('deploys each guard at its limit, and the code accepts what the guards let through', async () => {
    const resources = await evaluated('edges.bicepparam');
    const [worm] = ofType(
      resources,
      'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies',
    );
    expect(props(worm).immutabilityPeriodSinceCreationInDays).toBe(30);
    const settings = appSettings(resources);
    expect(settings.EXPORT_MAX_RUN_DURATION).toBe('PT25M');
    expect(settings['AzureWebJobs.exportIncidents.Disabled']).toBe('true');
    const [topic] = ofType(resources, 'Microsoft.EventGrid/systemTopics');
    const [account] = ofType(resources, 'Microsoft.Storage/storageAccounts').filter((r) =>
      r.name.includes('data'),
    );
    expect(props(topic)).toEqual({
      source: `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-defender-export/providers/Microsoft.Storage/storageAccounts/${account!.name}`,
      topicType: 'Microsoft.Storage.StorageAccounts',
    });
    expect(parseConfig(settings, { runner: 'function' }).schedule).toBe('0 */15 * * * *');
    // A function disabled on purpose pages no one; the other alerts stay on.
    const rules = alerts(resources);
    expect(rules.get('export-stale')!.enabled).toBe(false);
    expect(rules.get('export-behind')!.enabled).toBe(true);
    expect(ofType(resources, 'Microsoft.Storage/storageAccounts').map((r) => r.name)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ab1host[a-z0-9]+$/),
        expect.stringMatching(/^ab1data/),
      ]),
    );
  });

  it('federated: no Key Vault, no vault role, no secret or vault setting, and the code accepts it', async () => {
    const resources = await evaluated('federated.bicepparam');
    expect(resources.filter((r) => r.type.startsWith('Microsoft.KeyVault/'))).toEqual([]);
    const roles = ofType(resources, 'Microsoft.Authorization/roleAssignments').map((r) =>
      String(props(r).roleDefinitionId),
    );
    expect(roles.some((id) => id.includes('4633458b-17de-408a-b874-0445c86b69e6'))).toBe(false);
    const settings = appSettings(resources);
    expect(Object.keys(settings).filter((k) => /KEY_VAULT|SECRET/.test(k))).toEqual([]);
    // The cross-cloud guard needs the deployment's cloud (environment()), which only Resource Manager knows:
    // the snapshot leaves it as the expression that checks it, then gives the mode.
    expect(settings.DEFENDER_CREDENTIAL).toMatch(
      /^\[if\(.*across clouds is not supported.*variables\('credential'\)\)\]$/,
    );
    settings.DEFENDER_CREDENTIAL = 'federated';
    expect(parseConfig(settings, { runner: 'function' })).toMatchObject({
      credential: 'federated',
      federationAudience: 'api://AzureADTokenExchange',
    });
  });

  it('certificate: the vault with its Secrets User role, and the certificate named in the settings', async () => {
    const resources = await evaluated('certificate.bicepparam');
    expect(ofType(resources, 'Microsoft.KeyVault/vaults')).toHaveLength(1);
    expect(ofType(resources, 'Microsoft.KeyVault/vaults/secrets')).toEqual([]);
    const settings = appSettings(resources);
    expect(settings).toMatchObject({
      DEFENDER_CREDENTIAL: 'certificate',
      KEY_VAULT_CERTIFICATE_NAME: 'dix-cert',
    });
    expect(settings.KEY_VAULT_SECRET_NAME).toBeUndefined();
    expect(parseConfig(settings, { runner: 'function' }).keyVaultCertificateName).toBe('dix-cert');
  });

  it('refuses the run budget the guard refuses, as the code does', async () => {
    const settings = {
      ...appSettings(await evaluated('defaults.bicepparam')),
      EXPORT_MAX_RUN_DURATION: 'PT26M',
    };
    expect(() => parseConfig(settings, { runner: 'function' })).toThrow(/EXPORT_MAX_RUN_DURATION/);
  });
});
