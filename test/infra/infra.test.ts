import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDurationInMs } from '../../src/export/duration';
import { FUNCTION_TIMEOUT_IN_MS, SETTINGS } from '../../src/config';

// Structural checks of the deployment against the code. The real Bicep compiler and linter run in .ci/run
// (infra/scripts/check-bicep.sh); these tests hold what a compiler cannot know: that the deployment and the
// code agree, and that the security review's properties are there.

const root = join(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const bicep = read('infra/main.bicep');

/** The text of the balanced `{...}` (or `(...)` too) that starts at the first opener after `marker`. */
function block(text: string, marker: string, openers = /[{(]/): string {
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`'${marker}' not found in infra/main.bicep`);
  const start = text.slice(at).search(openers) + at;
  const open = text[start]!;
  const close = open === '{' ? '}' : ')';
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === open) depth++;
    else if (text[i] === close && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`unbalanced '${open}' after '${marker}'`);
}

/** Property names set in an object literal (one per line, Bicep style; quoted names may have dots). */
function keys(objectText: string): string[] {
  return [...objectText.matchAll(/(?:^\s*|\{\s*)(?:'([A-Za-z_][\w.]*)'|([A-Za-z_]\w*))\s*:/gm)].map(
    (m) => (m[1] ?? m[2])!,
  );
}

/** Each resource declaration: symbol, type, API version and its body. */
function resources(): { symbol: string; type: string; apiVersion: string; body: string }[] {
  return [...bicep.matchAll(/^resource (\w+) '([\w./]+)@([\w-]+)'/gm)].map((m) => ({
    symbol: m[1]!,
    type: m[2]!,
    apiVersion: m[3]!,
    body: block(bicep, m[0], /\{/),
  }));
}

const params = [...bicep.matchAll(/^param (\w+) (\w+)(?: = (.+))?$/gm)].map((m) => ({
  name: m[1]!,
  type: m[2]!,
  default: m[3],
  decorators: bicep
    .slice(0, m.index)
    .split(/\n(?=\S)/)
    .slice(-6)
    .join('\n'),
}));

// Settings that only a developer's machine uses: never in the deployed app.
const LOCAL_ONLY = ['DEFENDER_CLIENT_SECRET', 'EXPORT_STORAGE_CONNECTION_STRING'];
// Settings of the Functions host itself, identity-based (docs/azure-notes.md#azure-functions).
const HOST_SETTINGS = [
  'AzureWebJobsStorage__blobServiceUri',
  'AzureWebJobsStorage__tableServiceUri',
  'AzureWebJobsStorage__queueServiceUri',
  'AzureWebJobsStorage__credential',
  'AzureWebJobsStorage__clientId',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING',
  // Set by every deployment (exportFunctionDisabled), so a provision does not re-enable a disabled function.
  'AzureWebJobs.exportIncidents.Disabled',
];

describe('the deployment agrees with the code', () => {
  // The credential mode's settings (Key Vault, certificate, federation audience) and all the others.
  const exportSettings =
    block(bicep, 'var credentialSettings = union(') + block(bicep, 'var exportSettings = union(');
  const hostSettings = block(bicep, 'var hostSettings =');

  it('sets every setting the code reads, and no other, except the local-only ones', () => {
    const deployed = keys(exportSettings).sort();
    const expected = Object.keys(SETTINGS)
      .filter((name) => !LOCAL_ONLY.includes(name))
      .sort();
    expect(deployed).toEqual(expected);
    expect(keys(hostSettings).sort()).toEqual([...HOST_SETTINGS].sort());
    expect(block(bicep, "resource appSettings 'config'")).toMatch(
      /properties: union\(hostSettings, exportSettings\)/,
    );
  });

  it('takes a client secret in secret mode only, and has no vault in federated mode', () => {
    // Secure parameters are not evaluated offline (bicep snapshot), so this guard is checked in the text.
    const storesSecret = bicep.slice(bicep.indexOf('var storesSecret ='), bicep.indexOf('var usesVault ='));
    expect(storesSecret).toMatch(
      /credentialMode == 'secret'\s*\? !empty\(defenderClientSecret\)\s*: \(empty\(defenderClientSecret\)\s*\? false\s*: fail\('defenderClientSecret is given but credentialMode/,
    );
    expect(bicep).toMatch(/^resource clientSecret '[^']+' = if \(storesSecret\) \{/m);
    for (const symbol of ['vault', 'vaultAudit', 'vaultSecretsUser']) {
      expect(bicep).toMatch(new RegExp(`^resource ${symbol} '[^']+' = if \\(usesVault\\) \\{`, 'm'));
    }
    expect(bicep).toMatch(/^var usesVault = credential != 'federated'$/m);
  });

  it('puts no secret in app settings: the client secret stays in Key Vault, storage uses the identity', () => {
    const all = exportSettings + hostSettings;
    expect(all).not.toMatch(
      /defenderClientSecret|listKeys\(|AccountKey|SharedAccessSignature|InstrumentationKey/,
    );
    expect(keys(all).filter((k) => /SECRET$|PASSWORD|_KEY$|CONNECTION_STRING/.test(k))).toEqual([
      'APPLICATIONINSIGHTS_CONNECTION_STRING', // not a secret: local auth is off, ingestion needs Entra
    ]);
    expect(hostSettings).toMatch(/AzureWebJobsStorage__credential: 'managedidentity'/);
    expect(hostSettings).toMatch(/Authorization=AAD/);
  });

  it('lists every setting in local.settings.sample.json and in the README table', () => {
    const sample = JSON.parse(read('local.settings.sample.json')) as { Values: Record<string, string> };
    expect(
      Object.keys(sample.Values).filter(
        (k) => !['FUNCTIONS_WORKER_RUNTIME', 'AzureWebJobsStorage'].includes(k),
      ),
    ).toEqual(Object.keys(SETTINGS));
    const table = [...read('README.md').matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(table).toEqual(Object.keys(SETTINGS));
  });

  it('keeps the run budget below functionTimeout in host.json', () => {
    const host = JSON.parse(read('host.json')) as { functionTimeout: string };
    const [h, m, s] = host.functionTimeout.split(':').map(Number);
    const timeoutInMs = ((h! * 60 + m!) * 60 + s!) * 1000;
    const deployedBudget = params.find((p) => p.name === 'exportMaxRunDuration')!.default!.replace(/'/g, '');
    expect(parseDurationInMs(deployedBudget)).toBeLessThan(timeoutInMs);
    expect(parseDurationInMs(SETTINGS.EXPORT_MAX_RUN_DURATION.default)).toBeLessThan(timeoutInMs);
    expect(deployedBudget).toBe(SETTINGS.EXPORT_MAX_RUN_DURATION.default);
    // The template's guard on exportMaxRunDuration counts from the same timeout (test/infra/guards.infra.ts).
    expect(Number(/^var functionTimeoutMinutes = (\d+)$/m.exec(bicep)?.[1]) * 60_000).toBe(timeoutInMs);
    expect(FUNCTION_TIMEOUT_IN_MS).toBe(timeoutInMs);
  });

  it('deploys with the code defaults for every setting it exposes as a parameter', () => {
    const defaults: Record<string, string> = {
      exportContainerName: SETTINGS.EXPORT_CONTAINER.default,
      exportSchedule: SETTINGS.EXPORT_SCHEDULE.default,
      exportInitialLookback: SETTINGS.EXPORT_INITIAL_LOOKBACK.default,
      exportSettleDelay: SETTINGS.EXPORT_SETTLE_DELAY.default,
      exportRereadWindow: SETTINGS.EXPORT_REREAD_WINDOW.default,
      exportFormat: SETTINGS.EXPORT_FORMAT.default,
      exportCompression: SETTINGS.EXPORT_COMPRESSION.default,
      keyVaultSecretName: SETTINGS.KEY_VAULT_SECRET_NAME.default,
      defenderApi: SETTINGS.DEFENDER_API.default,
    };
    for (const [name, value] of Object.entries(defaults)) {
      expect([name, params.find((p) => p.name === name)?.default]).toEqual([name, `'${value}'`]);
    }
  });

  it('gives every parameter a description, and azd a value for every required one', () => {
    expect(params.length).toBeGreaterThan(10);
    expect(params.filter((p) => !p.decorators.includes('@description(')).map((p) => p.name)).toEqual([]);
    const azd = JSON.parse(read('infra/main.parameters.json')) as { parameters: Record<string, unknown> };
    const names = params.map((p) => p.name);
    expect(Object.keys(azd.parameters).filter((n) => !names.includes(n))).toEqual([]);
    const required = params.filter((p) => p.default === undefined).map((p) => p.name);
    expect(required.filter((n) => !(n in azd.parameters))).toEqual([]);
    // What an operator sets after the first deployment reaches the azd path too (docs/deploy.md, step 4).
    for (const name of [
      'immutabilityDays',
      'immutabilityPolicyLocked',
      'exportFunctionDisabled',
      'staleAfterHours',
      'exportEvents',
    ]) {
      const value = (azd.parameters[name] as { value: string } | undefined)?.value;
      expect([name, value]).toEqual([name, expect.stringMatching(/^\$\{[A-Z_]+=[^}]+\}$/)]);
      expect(read('docs/deploy.md')).toContain(`| \`${/\$\{([A-Z_]+)=/.exec(value!)![1]}\` | \`${name}\` |`);
    }
  });
});

describe('the deployment passes a security review', () => {
  const all = resources();
  const ofType = (type: string) => all.filter((r) => r.type === type);

  it('hardens every storage account', () => {
    const accounts = ofType('Microsoft.Storage/storageAccounts');
    expect(accounts).toHaveLength(2);
    for (const { body } of accounts) {
      expect(body).toMatch(/allowSharedKeyAccess: false/);
      expect(body).toMatch(/allowBlobPublicAccess: false/);
      expect(body).toMatch(/minimumTlsVersion: 'TLS1_2'/);
      expect(body).toMatch(/supportsHttpsTrafficOnly: true/);
      expect(body).toMatch(/allowCrossTenantReplication: false/);
    }
    for (const { body } of ofType('Microsoft.Storage/storageAccounts/blobServices')) {
      expect(body).toMatch(/deleteRetentionPolicy: \{\s*enabled: true/);
      expect(body).toMatch(/containerDeleteRetentionPolicy: \{\s*enabled: true/);
    }
    for (const { body } of ofType('Microsoft.Storage/storageAccounts/blobServices/containers')) {
      expect(body).toMatch(/publicAccess: 'None'/);
    }
  });

  it('offers lifecycle tiers and WORM on the export container, with the checkpoint elsewhere', () => {
    const lifecycle = ofType('Microsoft.Storage/storageAccounts/managementPolicies')[0]!.body;
    expect(lifecycle).toMatch(/name: 'default'/);
    expect(lifecycle).not.toMatch(/-state/);
    const tiers = block(bicep, 'var tierActions = union(');
    for (const action of ['tierToCool', 'tierToCold', 'tierToArchive', 'delete'])
      expect(tiers).toContain(action);
    const worm = ofType('Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies')[0]!;
    expect(worm.body).toMatch(/parent: exportContainer/);
    // With tenants each keeps its state in its own container (DEFENDER_TENANTS rejects EXPORT_STATE_CONTAINER).
    expect(bicep).toMatch(/EXPORT_STATE_CONTAINER: isMultiTenant \? '' : stateContainer.name/);
  });

  it('uses Key Vault with RBAC, soft delete and purge protection, and keeps the secret out of outputs', () => {
    const vault = ofType('Microsoft.KeyVault/vaults')[0]!.body;
    expect(vault).toMatch(/enableRbacAuthorization: true/);
    expect(vault).toMatch(/enableSoftDelete: true/);
    expect(vault).toMatch(/enablePurgeProtection: true/);
    expect(vault).not.toMatch(/accessPolicies/);
    const secretParam = params.find((p) => p.name === 'defenderClientSecret')!;
    expect(secretParam.decorators).toMatch(/@secure\(\)\s*\nparam defenderClientSecret|@secure\(\)$/m);
    expect(secretParam.default).toBe("''");
    const outputs = [...bicep.matchAll(/^output .+$/gm)].map((m) => m[0]);
    expect(outputs.length).toBeGreaterThanOrEqual(4);
    // azd writes outputs to .azure/<env>/.env: AZURE_CLIENT_ID there would switch a workstation's SDKs to a
    // managed identity (docs/deploy.md, step 4).
    expect(outputs.filter((o) => /^output AZURE_CLIENT_ID /.test(o))).toEqual([]);
    expect(outputs.filter((o) => /defenderClientSecret|listKeys|ConnectionString|\.value/.test(o))).toEqual(
      [],
    );
  });

  it('runs the function on Flex Consumption, Node 22, HTTPS only, without FTP or SCM basic auth', () => {
    const plan = ofType('Microsoft.Web/serverfarms')[0]!.body;
    expect(plan).toMatch(/name: 'FC1'\s*\n\s*tier: 'FlexConsumption'/);
    const app = ofType('Microsoft.Web/sites')[0]!.body;
    expect(app).toMatch(/kind: 'functionapp,linux'/);
    expect(app).toMatch(/httpsOnly: true/);
    expect(app).toMatch(/ftpsState: 'Disabled'/);
    expect(app).toMatch(/runtime: \{\s*name: 'node'\s*version: '22'/);
    expect(app).toMatch(/type: 'UserAssignedIdentity'/);
    for (const policy of ['ftp', 'scm']) {
      expect(block(app, `name: '${policy}'`)).toBeDefined();
      expect(app).toMatch(new RegExp(`name: '${policy}'\\s*properties: \\{\\s*allow: false`));
    }
  });

  it('sends telemetry with Entra only, and alerts on a failed run, an export behind and a stopped export', () => {
    expect(ofType('Microsoft.Insights/components')[0]!.body).toMatch(/DisableLocalAuth: true/);
    const alerts = ofType('Microsoft.Insights/scheduledQueryRules');
    expect(alerts.map((a) => a.symbol).sort()).toEqual([
      'exportBehindAlert',
      'exportNotRunningAlert',
      'runFailedAlert',
    ]);
    expect(alerts.some((a) => /success == false/.test(a.body) && /GreaterThan/.test(a.body))).toBe(true);
    // Freshness from the export summary line (src/export/exportRun.ts), whatever the run's outcome.
    const behind = block(bicep, 'var exportBehindQuery = join(');
    expect(behind).toContain('message startswith "export summary "');
    expect(behind).toContain('tolong(s.watermarkAgeInMs)');
    expect(behind).toContain('tostring(s.outcome)');
    // One alert per tenant, named by the summary's tenant (src/export/exportRun.ts RunSummary.tenantName).
    expect(behind).toContain('summarize arg_max(timestamp, outcome, watermarkAgeInMs) by tenantId, tenant');
    expect(alerts.find((a) => a.symbol === 'exportBehindAlert')!.body).toMatch(
      /dimensions: \[\s*\{\s*name: 'tenant'/,
    );
    for (const s of ['tenantId: string;', 'tenantName?: string;'])
      expect(read('src/export/exportRun.ts')).toContain(s);
    expect(bicep).not.toMatch(/toint\(/);
    expect(read('src/export/exportRun.ts')).toContain('`export summary ${JSON.stringify(this.summary');
    // No run since the deployment: quiet until the first run is due.
    expect(bicep).toMatch(/^var deployedAt = dateTimeAdd\(deploymentTime, /m);
    expect(block(bicep, 'var exportNotRunningQuery = join(')).toMatch(
      /datetime\(\$\{deployedAt\}\) \+ \$\{staleAfterHours\}h/,
    );
    for (const symbol of ['exportBehindAlert', 'exportNotRunningAlert'])
      expect(alerts.find((a) => a.symbol === symbol)!.body).toMatch(/windowSize: 'PT\$\{staleAfterHours\}H'/);
    expect(ofType('Microsoft.Insights/actionGroups')[0]!.body).toMatch(/emailReceivers/);
  });

  it('grants only known built-in roles, each on the narrowest scope, with guid() names', () => {
    // Built-in role definition IDs (docs/azure-notes.md#built-in-role-definition-ids).
    const KNOWN: Record<string, string> = {
      'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
      'ba92f5b4-2d11-453d-a403-e96b0029c9fe': 'Storage Blob Data Contributor',
      '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
      '4633458b-17de-408a-b874-0445c86b69e6': 'Key Vault Secrets User',
      '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
      '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
    };
    const roleVar = block(bicep, 'var roles =');
    const roleIds = Object.fromEntries(
      [...roleVar.matchAll(/^\s*(\w+): '([0-9a-f-]{36})' \/\/ (.+)$/gm)].map((m) => [
        m[1]!,
        { id: m[2]!, comment: m[3]! },
      ]),
    );
    for (const { id, comment } of Object.values(roleIds)) expect([id, KNOWN[id]]).toEqual([id, comment]);

    const assignments = ofType('Microsoft.Authorization/roleAssignments');
    expect(assignments).toHaveLength(8);
    const scopeOf: Record<string, string> = {};
    for (const { symbol, body } of assignments) {
      expect(body).toMatch(/name: guid\(/);
      expect(body).toMatch(/principalId: identity.properties.principalId/);
      expect(body).toMatch(/principalType: 'ServicePrincipal'/);
      const role = /roles\.(\w+)\s*\)/.exec(body)![1]!;
      expect(roleIds[role]).toBeDefined();
      scopeOf[symbol] = `${/scope: (\w+)/.exec(body)![1]} ${KNOWN[roleIds[role]!.id]}`;
    }
    expect(Object.values(scopeOf).sort()).toEqual(
      [
        'hostStorage Storage Blob Data Owner',
        'hostStorage Storage Table Data Contributor',
        // With tenants only: the fan-out's queue, and the account, whose containers follow DEFENDER_TENANTS.
        'hostStorage Storage Queue Data Contributor',
        'exportStorage Storage Blob Data Contributor',
        'exportContainer Storage Blob Data Contributor',
        'stateContainer Storage Blob Data Contributor',
        'vault Key Vault Secrets User',
        'appInsights Monitoring Metrics Publisher',
      ].sort(),
    );
    expect(bicep).toMatch(/^targetScope = 'resourceGroup'$/m);
    expect(bicep).not.toMatch(/scope: subscription\(\)|targetScope = 'subscription'/);
  });

  it('keeps an audit trail: blob reads, writes and deletes, Key Vault events, and blob versions', () => {
    const audits = ofType('Microsoft.Insights/diagnosticSettings');
    const categories = (scope: string) =>
      audits
        .filter((a) => a.body.includes(`scope: ${scope}\n`))
        .flatMap((a) => [...a.body.matchAll(/category: '(\w+)'/g)].map((m) => m[1]));
    expect(categories('exportBlobService')).toEqual(['StorageRead', 'StorageWrite', 'StorageDelete']);
    expect(categories('vault')).toEqual(['AuditEvent']);
    for (const { body } of audits) expect(body).toMatch(/workspaceId: workspace.id/);
    const exportBlobService = all.find((r) => r.symbol === 'exportBlobService')!.body;
    expect(exportBlobService).toMatch(/isVersioningEnabled: true/);
    expect(block(bicep, 'var pruneVersionsRule =')).toMatch(
      /version: \{\s*delete: \{\s*daysAfterCreationGreaterThan: softDeleteDays/,
    );
  });

  it('uses one user-assigned identity for everything', () => {
    expect(ofType('Microsoft.ManagedIdentity/userAssignedIdentities')).toHaveLength(1);
    expect(bicep).not.toMatch(/SystemAssigned/);
  });
});

describe('the deployment guide', () => {
  const guide = read('docs/deploy.md');

  it('quotes only error messages that the code really reports', () => {
    const source = ['src/source', 'src/sink', 'src/export', 'src', 'src/operations', 'src/composition']
      .flatMap((dir) =>
        readdirSync(join(root, dir))
          .filter((f) => f.endsWith('.ts'))
          .map((f) => read(`${dir}/${f}`)),
      )
      .join('\n');
    const troubleshooting = guide.slice(guide.indexOf('## Troubleshooting'));
    const quoted = [...troubleshooting.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]!);
    expect(quoted.length).toBeGreaterThan(8);
    const fragments = quoted.flatMap((q) =>
      q
        .split('...')
        .map((f) => f.trim())
        .filter((f) => f.length >= 12),
    );
    expect(fragments.filter((f) => !source.includes(f))).toEqual([]);
  });

  it('names the permission of each API and the role the identity needs on the vault', () => {
    expect(guide).toMatch(/SecurityIncident\.Read\.All/);
    expect(guide).toMatch(/Incident\.Read\.All/);
    expect(guide).toMatch(/admin-consent/);
    expect(guide).toMatch(/Key Vault Secrets User/);
    expect(read('README.md')).toContain('(docs/deploy.md)');
  });
});
