// defender-incident-export: a timer-triggered Azure Function (Flex Consumption, Node.js 22) that exports
// Microsoft Defender XDR incidents to Blob Storage. Secretless by default: one user-assigned managed identity
// reaches host storage, the deployment container, Key Vault, the export containers and Application Insights.
// Deploy: docs/deploy.md (azd up, or az deployment group create).

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------

@description('Azure region of every resource. Flex Consumption must be available there (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Short name that prefixes every resource name: 2-10 letters and digits, starting with a letter (storage account and Key Vault naming rules).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'dix'

@description('azd environment name; tags the resources so azd finds them, and is part of the Key Vault name (a new environment name gets a new vault). Leave empty outside azd.')
param environmentName string = ''

@description('Extra seed for every resource name. Empty (the default): names depend on subscription, group and namePrefix only. Set it (azd: DEFENDER_NAME_SEED) to put a second deployment, such as a second azd environment, in the same resource group. Changing it on a running deployment creates new resources beside the old ones: the exports and the checkpoint stay in the old storage account.')
@maxLength(64)
param nameSeed string = ''

@description('Origins allowed to call the function app from a browser (CORS). The default is the Azure portal of the deployment\'s cloud, which the portal\'s Test/Run needs; [] allows none.')
param corsAllowedOrigins array = [environment().portal]

@description('Entra tenant ID of the app registration that reads incidents (DEFENDER_TENANT_ID). Empty: the tenant of the subscription.')
param defenderTenantId string = ''

@description('Many tenants from one deployment (DEFENDER_TENANTS, docs/tenants.md): [{ tenantId, container, api?, clientId?, name? }], each customer tenant exported to its own container on the export account. Empty: the one tenant of defenderTenantId.')
param tenants array = []

@description('Storage queue of the tenant fan-out on the host account (EXPORT_QUEUE); failed messages land in <name>-poison. Used with tenants only.')
@minLength(3)
@maxLength(56)
param exportQueueName string = 'defender-export-tenants'

@description('Application (client) ID of that app registration (DEFENDER_CLIENT_ID); with tenants, the multi-tenant app registration consented in each customer tenant.')
@minLength(36)
@maxLength(36)
param defenderClientId string

@description('Incidents API: graph (Microsoft Graph, SecurityIncident.Read.All) or legacy (api.security.microsoft.com, Incident.Read.All; retired 2027-02-01).')
@allowed([
  'graph'
  'legacy'
])
param defenderApi string = 'graph'

@description('Base URL of the incidents API for a regional host or a sovereign cloud (DEFENDER_API_URL). Empty: the default of the chosen API.')
param defenderApiUrl string = ''

@description('Entra authority host (DEFENDER_AUTHORITY_HOST). The default follows the cloud of the deployment.')
param defenderAuthorityHost string = environment().authentication.loginEndpoint

@description('How the app registration authenticates (DEFENDER_CREDENTIAL): secret (a client secret in Key Vault), federated (the managed identity is the app\'s federated identity credential: no secret and no Key Vault; add the credential with the FEDERATION_* outputs, docs/deploy.md) or certificate (a Key Vault certificate, keyVaultCertificateName).')
@allowed([
  'secret'
  'federated'
  'certificate'
])
param credentialMode string = 'secret'

@description('credentialMode certificate: name of the certificate in the Key Vault (KEY_VAULT_CERTIFICATE_NAME), created after the deployment with az keyvault certificate create (docs/deploy.md).')
param keyVaultCertificateName string = 'defender-export-cert'

@description('credentialMode federated only: audience of the managed identity\'s token (DEFENDER_FEDERATION_AUDIENCE). Empty: the cloud\'s (api://AzureADTokenExchange, or the USGov or China value).')
param federationAudience string = ''

@description('credentialMode secret only: client secret of the app registration. Stored in Key Vault only, never in app settings or outputs. Leave empty and set it afterwards with az keyvault secret set (docs/deploy.md).')
@secure()
param defenderClientSecret string = ''

@description('credentialMode secret: name of the Key Vault secret that holds the client secret (KEY_VAULT_SECRET_NAME).')
param keyVaultSecretName string = 'defender-client-secret'

@description('Container for the exports (EXPORT_CONTAINER).')
@minLength(3)
@maxLength(57)
param exportContainerName string = 'defender-incidents'

@description('NCRONTAB schedule of the export, 6 fields, UTC (EXPORT_SCHEDULE).')
param exportSchedule string = '0 0 * * * *'

@description('How far back the first run reaches, ISO-8601 duration (EXPORT_INITIAL_LOOKBACK).')
param exportInitialLookback string = 'PT48H'

@description('A run exports up to now minus this, so late-indexed updates are not skipped (EXPORT_SETTLE_DELAY).')
param exportSettleDelay string = 'PT5M'

@description('Each run re-reads this much before its position for versions indexed later than the settle delay (EXPORT_REREAD_WINDOW); PT0S turns it off.')
param exportRereadWindow string = 'PT1H'

@description('Time budget of one run (EXPORT_MAX_RUN_DURATION); must stay below functionTimeout in host.json (30 minutes).')
param exportMaxRunDuration string = 'PT25M'

@description('json (one JSON array per blob) or jsonl (one incident per line) (EXPORT_FORMAT).')
@allowed([
  'json'
  'jsonl'
])
param exportFormat string = 'json'

@description('none or gzip (EXPORT_COMPRESSION).')
@allowed([
  'none'
  'gzip'
])
param exportCompression string = 'none'

@description('Graph only: export each incident with its alerts ($expand=alerts) (EXPORT_INCLUDE_ALERTS).')
param exportIncludeAlerts bool = true

@description('Redundancy of the export storage account. Archive tiering needs LRS, GRS or RA-GRS.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param exportStorageSku string = 'Standard_LRS'

@description('Days after creation before an export blob moves to the Cool tier (0: never).')
@minValue(0)
param coolAfterDays int = 30

@description('The colder tier that follows Cool: Cold, or Archive (cheapest; hours to read back; not on ZRS, GZRS, RA-GZRS).')
@allowed([
  'Cold'
  'Archive'
])
param colderTier string = 'Cold'

@description('Days after creation before an export blob moves to the colder tier (0: never).')
@minValue(0)
param colderAfterDays int = 90

@description('Days after creation before an export blob is deleted (0: never).')
@minValue(0)
param deleteAfterDays int = 0

@description('Days of time-based retention (WORM) on the export container, 0 for none. Created unlocked: lock it once you have checked it (docs/deploy.md). The checkpoint lives in a separate container that stays writable.')
@minValue(0)
@maxValue(146000)
param immutabilityDays int = 0

@description('true once the WORM policy is locked: the deployment then leaves the policy alone (Azure updates only an unlocked policy), and immutabilityDays must be the locked retention. Extend a locked policy with az storage container immutability-policy extend (docs/deploy.md).')
param immutabilityPolicyLocked bool = false

@description('true creates an Event Grid system topic on the export account, so a SIEM or a data pipeline can subscribe to BlobCreated events of new exports (docs/deploy.md, React to new exports). Off by default.')
param exportEvents bool = false

@description('Days that deleted blobs and containers stay recoverable (soft delete), and that previous blob versions are kept.')
@minValue(1)
@maxValue(365)
param softDeleteDays int = 14

@description('E-mail address that receives the alerts (a failed run; exports older than staleAfterHours; no run for staleAfterHours). Empty: the alert rules exist but notify no one.')
param alertEmail string = ''

@description('Hours after which the export counts as behind (the exported-until time is older) or stopped (no run), and an alert fires. Must exceed the time between two runs of exportSchedule plus exportSettleDelay and exportMaxRunDuration.')
@minValue(2)
@maxValue(48)
param staleAfterHours int = 3

@description('Do not set: the time of this deployment. The "no run" alert waits staleAfterHours after it, so a fresh deployment does not alert before its first run is due.')
param deploymentTime string = utcNow('yyyy-MM-ddTHH:mm:ssZ')

@description('true disables the exportIncidents function (app setting AzureWebJobs.exportIncidents.Disabled). Every deployment sets all app settings, so disable and enable the function with this parameter, not in the portal.')
param exportFunctionDisabled bool = false

@description('Days of log retention in the Log Analytics workspace.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Memory of each Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------

var suffix = empty(nameSeed)
  ? uniqueString(subscription().id, resourceGroup().id, namePrefix)
  : uniqueString(subscription().id, resourceGroup().id, namePrefix, nameSeed)
// Purge protection keeps a deleted vault's name for 90 days (softDeleteRetentionInDays): with azd, a new
// environment name gives a new vault name, so `azd down` followed by a new environment provisions cleanly.
// Outside azd (environmentName empty) the name is what it always was.
var vaultSuffix = empty(environmentName)
  ? suffix
  : empty(nameSeed)
      ? uniqueString(subscription().id, resourceGroup().id, namePrefix, environmentName)
      : uniqueString(subscription().id, resourceGroup().id, namePrefix, nameSeed, environmentName)
var tags = empty(environmentName) ? {} : { 'azd-env-name': environmentName }
var functionAppName = '${prefix}-func-${suffix}'
var hostStorageName = take('${toLower(prefix)}host${suffix}', 24)
var exportStorageName = take('${toLower(prefix)}data${suffix}', 24)
var keyVaultName = take('${prefix}-kv-${vaultSuffix}', 24)
var deploymentContainerName = 'app-package-${take(suffix, 8)}'
var stateContainerName = '${exportContainerName}-state'
var isMultiTenant = !empty(tenants)

// Built-in role definition IDs (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
}

// ---------------------------------------------------------------------------------------------------------
// Guards: a combination of parameters that Azure would refuse, or that would export wrongly, stops the
// deployment before anything changes, with a message that names the parameters
// (fail(): https://learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions-flow-control).
// Each guard is the value that the resources then use, so it is always evaluated. test/infra/guards.test.ts
// deploys parameter files that must fail and ones that must pass through the real Bicep CLI.
// ---------------------------------------------------------------------------------------------------------

@description('The cloud of an Entra authority host URL, as src/config.ts cloudOfAuthority reads it: global, usgov or china.')
func cloudOfAuthority(url string) string =>
  toLower(split(url, '/')[2]) == 'login.microsoftonline.us'
    ? 'usgov'
    : (contains(['login.chinacloudapi.cn', 'login.partner.microsoftonline.cn'], toLower(split(url, '/')[2]))
        ? 'china'
        : 'global')

@description('true when text is one or more ASCII characters, all of them in allowed.')
func onlyCharacters(text string, allowed string) bool =>
  !empty(text) && empty(filter(range(0, length(text)), i => !contains(allowed, substring(text, i, 1))))

@description('Seconds in an ISO-8601 duration such as PT25M (dateTimeAdd parses it).')
func durationSeconds(duration string) int =>
  dateTimeToEpoch(dateTimeAdd('2000-01-01T00:00:00Z', duration)) - dateTimeToEpoch('2000-01-01T00:00:00Z')

@description('n for a field \'*/n\' (every n-th), otherwise 0.')
func everyNth(field string) int =>
  startsWith(field, '*/') ? (onlyCharacters(substring(field, 2), '0123456789') ? int(substring(field, 2)) : 0) : 0

@description('Longest gap in minutes between two runs of a 6-field NCRONTAB schedule of a simple form (a fixed second; a fixed minute or */n; every hour, */n hours or a fixed hour; every day); 0 for any other form.')
func scheduleIntervalMinutes(fields array) int =>
  length(fields) != 6
    ? 0
    : !onlyCharacters(fields[0], '0123456789') || fields[3] != '*' || fields[4] != '*' || fields[5] != '*'
        ? 0
        : fields[2] == '*'
            ? (fields[1] == '*' ? 1 : onlyCharacters(fields[1], '0123456789') ? 60 : everyNth(fields[1]))
            : !onlyCharacters(fields[1], '0123456789')
                ? 0
                : everyNth(fields[2]) > 0 ? 60 * everyNth(fields[2]) : onlyCharacters(fields[2], '0123456789') ? 1440 : 0

var letters = 'abcdefghijklmnopqrstuvwxyz'
var prefix = onlyCharacters(toLower(namePrefix), '${letters}0123456789') && contains(letters, toLower(first(namePrefix)))
  ? namePrefix
  : fail('namePrefix \'${namePrefix}\' must be 2-10 letters and digits, starting with a letter: it starts the storage account names (lowercase letters and digits only) and the Key Vault name (which must start with a letter)')

// host.json functionTimeout (00:30:00) less the 5 minutes a run needs after its budget (src/config.ts).
// The credential mode. The identity lives in the deployment's cloud and token exchange does not cross clouds,
// so in federated mode the authority host must be that cloud's; the token exchange audience follows it
// (https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity).
var authorityCloud = cloudOfAuthority(defenderAuthorityHost)
var exchangeAudiences = {
  global: 'api://AzureADTokenExchange'
  usgov: 'api://AzureADTokenExchangeUSGov'
  china: 'api://AzureADTokenExchangeChina'
}
var deploymentCloud = cloudOfAuthority(environment().authentication.loginEndpoint)
var audienceCloud = federationAudience == exchangeAudiences.usgov
  ? 'usgov'
  : (federationAudience == exchangeAudiences.china
      ? 'china'
      : (federationAudience == exchangeAudiences.global ? 'global' : ''))
var federatedCredentialAudience = empty(federationAudience) ? exchangeAudiences[authorityCloud] : federationAudience
// Nested conditions, each evaluated only when reached: what-if and `bicep snapshot` can check them offline.
var credential = credentialMode != 'federated'
  ? (empty(federationAudience)
      ? credentialMode
      : fail('federationAudience is given but credentialMode is \'${credentialMode}\': it applies to credentialMode \'federated\' only'))
  : (empty(audienceCloud) || audienceCloud == authorityCloud
      ? credentialMode
      : fail('federationAudience \'${federationAudience}\' is the ${audienceCloud} cloud\'s, but defenderAuthorityHost \'${defenderAuthorityHost}\' is in the ${authorityCloud} cloud: token exchange across clouds is not supported. Leave federationAudience empty'))
// The deployment's cloud is known only to Azure Resource Manager (environment()), so this one is checked when
// the app settings are: at deployment.
var deployedCredential = credential == 'federated' && authorityCloud != deploymentCloud
  ? fail('credentialMode \'federated\' with defenderAuthorityHost \'${defenderAuthorityHost}\' (the ${authorityCloud} cloud) in a ${deploymentCloud}-cloud deployment: the managed identity can be the federated credential only of an app in its own cloud (token exchange across clouds is not supported). Deploy in the app\'s cloud, or use credentialMode \'certificate\'')
  : credential
// A client secret only in secret mode (evaluated by the secret's condition).
var storesSecret = credentialMode == 'secret'
  ? !empty(defenderClientSecret)
  : (empty(defenderClientSecret)
      ? false
      : fail('defenderClientSecret is given but credentialMode is \'${credentialMode}\', which uses no client secret: remove defenderClientSecret (and delete the secret from the app registration once the new mode works)'))
// The vault's condition evaluates the guards of `credential` in every deployment.
var usesVault = credential != 'federated'
// The vault's URI, known before it exists (the vault is conditional, so its properties are not read here).
var vaultUri = 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/'

var functionTimeoutMinutes = 30
var maxRunDurationMinutes = functionTimeoutMinutes - 5
var runDurationSeconds = durationSeconds(exportMaxRunDuration)
var maxRunDuration = runDurationSeconds > maxRunDurationMinutes * 60
  ? fail('exportMaxRunDuration \'${exportMaxRunDuration}\' exceeds ${maxRunDurationMinutes} minutes: host.json stops the function after functionTimeout (${functionTimeoutMinutes} minutes), and a run needs 5 minutes after its budget to write the checkpoint. Set exportMaxRunDuration to PT${maxRunDurationMinutes}M or less; the next run resumes where this one stopped')
  : exportMaxRunDuration

var scheduleFields = filter(split(exportSchedule, ' '), field => !empty(field))
var runIntervalMinutes = scheduleIntervalMinutes(scheduleFields)
// Just before a run ends, a healthy export is behind by the schedule's interval, the settle delay and the run.
var healthyLagMinutes = runIntervalMinutes + durationSeconds(exportSettleDelay) / 60 + runDurationSeconds / 60
var schedule = length(scheduleFields) != 6
  ? fail('exportSchedule \'${exportSchedule}\' must be an NCRONTAB expression with 6 fields (second minute hour day month weekday), e.g. \'0 0 * * * *\'')
  : runIntervalMinutes > 0 && staleAfterHours * 60 <= healthyLagMinutes
      ? fail('staleAfterHours (${staleAfterHours}) must exceed ${healthyLagMinutes} minutes: exportSchedule \'${exportSchedule}\' runs every ${runIntervalMinutes} minutes, and exportSettleDelay (${exportSettleDelay}) and exportMaxRunDuration (${exportMaxRunDuration}) add to how far behind a healthy export is. Otherwise the alerts fire between two healthy runs')
      : exportSchedule

// Lifecycle days: each tier after the one before, delete last, never while WORM retention lasts.
var archiveOnZoneRedundant = colderAfterDays > 0 && colderTier == 'Archive' && contains(
  [
    'Standard_ZRS'
    'Standard_GZRS'
    'Standard_RAGZRS'
  ],
  exportStorageSku
)
var tierDays = filter(
  [
    coolAfterDays
    colderAfterDays
    deleteAfterDays
  ],
  days => days > 0
)
var tierDaysInOrder = empty(filter(range(1, max(length(tierDays) - 1, 0)), i => tierDays[i] <= tierDays[i - 1]))
var lifecycleChecked = archiveOnZoneRedundant
  ? fail('colderTier \'Archive\' is not available with exportStorageSku \'${exportStorageSku}\': the Archive tier needs Standard_LRS, Standard_GRS or Standard_RAGRS. Choose colderTier \'Cold\', another exportStorageSku, or colderAfterDays 0')
  : !tierDaysInOrder
      ? fail('coolAfterDays (${coolAfterDays}), colderAfterDays (${colderAfterDays}) and deleteAfterDays (${deleteAfterDays}) must increase in this order (0 leaves a step out): a blob moves to Cool, then to colderTier, then is deleted')
      : deleteAfterDays > 0 && deleteAfterDays < immutabilityDays
          ? fail('deleteAfterDays (${deleteAfterDays}) is shorter than immutabilityDays (${immutabilityDays}): WORM retention refuses the lifecycle delete until it ends. Set deleteAfterDays to ${immutabilityDays} or more, or 0')
          : true

var immutabilityPolicyDeployed = immutabilityPolicyLocked && immutabilityDays == 0
  ? fail('immutabilityPolicyLocked is true but immutabilityDays is 0: set immutabilityDays to the retention of the locked policy (az storage container immutability-policy show)')
  : immutabilityDays > 0 && !immutabilityPolicyLocked

// ---------------------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: '${prefix}-id-${suffix}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------------------
// Monitoring: Log Analytics, Application Insights (Entra ingestion only), alerts
// ---------------------------------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: '${prefix}-log-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-appi-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${prefix}-ag-${suffix}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: take('${prefix}export', 12)
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alertActions = empty(alertEmail) ? [] : [actionGroup.id]

// A run that throws is a failed invocation of exportIncidents in the requests table.
resource runFailedAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: '${prefix}-run-failed-${suffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'Defender incident export: a run failed'
    description: 'An exportIncidents run failed. The export summary log line and the exception say what to fix (docs/deploy.md, troubleshooting). The checkpoint stayed where the data is; the next run retries.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'requests | where operation_Name =~ "exportIncidents" and success == false'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// The export is behind: the exported-until time of the latest run (its export summary line, src/export/exportRun.ts)
// of a tenant is older than staleAfterHours. One alert per tenant (split by the summary's tenant: its name in
// DEFENDER_TENANTS, else its ID), which names it; one tenant without tenants. Runs that end 'partial' (time budget) or 'concurrent' succeed as invocations,
// so only this sees an export that falls behind. A failed run that never read the checkpoint logs age 0 and is
// skipped. Before the first run there is no summary line, so a fresh deployment does not alert. tolong, not
// toint: watermarkAgeInMs passes 2^31 after 24.8 days.
var staleAfterMs = staleAfterHours * 3600000
var exportBehindQuery = join(
  [
    'traces'
    '| where message startswith "export summary "'
    '| extend s = parse_json(substring(message, strlen("export summary ")))'
    '| extend outcome = tostring(s.outcome), watermarkAgeInMs = tolong(s.watermarkAgeInMs)'
    '| where outcome != "failed" or watermarkAgeInMs > 0'
    '| extend tenantId = tostring(s.tenantId), tenant = coalesce(tostring(s.tenantName), tostring(s.tenantId))'
    '| summarize arg_max(timestamp, outcome, watermarkAgeInMs) by tenantId, tenant'
    '| extend exportedUntilAgeInMs = watermarkAgeInMs + datetime_diff("millisecond", now(), timestamp)'
    '| where exportedUntilAgeInMs > ${staleAfterMs}'
    '| project timestamp, tenant, tenantId, outcome, watermarkAgeInMs, exportedUntilAgeInMs'
  ],
  '\n'
)

resource exportBehindAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: '${prefix}-export-behind-${suffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'Defender incident export: a tenant\'s exports are more than ${staleAfterHours} hours behind'
    description: 'The latest export summary of a tenant (the alert names it in its tenant dimension) says its export is more than ${staleAfterHours} hours behind (watermarkAgeInMs), whatever its outcome: runs that end partial or concurrent, or fail. Check that tenant\'s summary lines and errors, and defender-export status (docs/deploy.md, troubleshooting; docs/tenants.md).'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT${staleAfterHours}H'
    criteria: {
      allOf: [
        {
          query: exportBehindQuery
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'tenant'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// The export has stopped: no invocation of exportIncidents at all for staleAfterHours (a disabled function, a
// host that no longer starts, a broken package). It counts from this deployment on (deploymentTime), so a
// fresh deployment does not alert before its first run is due. Its name is the one of the former "no successful
// run" rule, so a redeployment replaces that rule.
var deployedAt = dateTimeAdd(deploymentTime, 'PT0S', 'yyyy-MM-ddTHH:mm:ssZ') // a date-time, or the deployment stops
var exportNotRunningQuery = join(
  [
    'requests'
    '| where operation_Name =~ "exportIncidents"'
    '| summarize invocations = count()'
    '| where invocations == 0 and now() > datetime(${deployedAt}) + ${staleAfterHours}h'
  ],
  '\n'
)

resource exportNotRunningAlert 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = {
  name: '${prefix}-export-stale-${suffix}'
  location: location
  tags: tags
  properties: {
    displayName: 'Defender incident export: no run for ${staleAfterHours} hours'
    description: 'exportIncidents has not run within the window: the function is disabled in the portal, the host does not start, or the package is broken. Check the function app (docs/deploy.md, troubleshooting).'
    severity: 1
    // A function disabled on purpose (exportFunctionDisabled) does not page anyone.
    enabled: !exportFunctionDisabled
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT${staleAfterHours}H'
    criteria: {
      allOf: [
        {
          query: exportNotRunningQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host storage: the Functions host's locks and timer status, and the Flex deployment package
// ---------------------------------------------------------------------------------------------------------

resource hostStorage 'Microsoft.Storage/storageAccounts@2025-08-01' = {
  name: hostStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource hostBlobService 'Microsoft.Storage/storageAccounts/blobServices@2025-08-01' = {
  parent: hostStorage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

// The fan-out of DEFENDER_TENANTS: the timer's one message per tenant, and the host's poison queue for the
// messages whose last try failed (docs/tenants.md).
resource hostQueueService 'Microsoft.Storage/storageAccounts/queueServices@2025-08-01' = if (isMultiTenant) {
  parent: hostStorage
  name: 'default'
}

resource tenantQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-08-01' = if (isMultiTenant) {
  parent: hostQueueService
  name: exportQueueName
}

resource tenantPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-08-01' = if (isMultiTenant) {
  parent: hostQueueService
  name: '${exportQueueName}-poison'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-08-01' = {
  parent: hostBlobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Export storage: the exports (optionally WORM), the checkpoint, lifecycle
// ---------------------------------------------------------------------------------------------------------

resource exportStorage 'Microsoft.Storage/storageAccounts@2025-08-01' = {
  name: exportStorageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: exportStorageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource exportBlobService 'Microsoft.Storage/storageAccounts/blobServices@2025-08-01' = {
  parent: exportStorage
  name: 'default'
  properties: {
    // The identity may delete and overwrite blobs: versioning keeps what was there (prune-versions below).
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource exportContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-08-01' = {
  parent: exportBlobService
  name: exportContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Export blobs are written once, create-only, and never changed: a time-based retention policy fits them.
// Created unlocked, so a mistake can still be undone; lock it with az storage container immutability-policy lock.
// Azure updates only an unlocked policy, so once it is locked (immutabilityPolicyLocked) the deployment no longer
// sends it; az storage container immutability-policy extend lengthens it (docs/deploy.md, Immutable exports).
resource exportImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2025-08-01' = if (immutabilityPolicyDeployed) {
  parent: exportContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}

// The checkpoint is rewritten every run, so it lives apart from a WORM export container.
resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-08-01' = {
  parent: exportBlobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

// One container per tenant of DEFENDER_TENANTS, in the single-tenant layout (exports, runs/, state/): grant a
// customer Storage Blob Data Reader on its container alone. A tenant added later to the setting only gets its
// container on its first run (the identity may create containers on the export account then, below).
resource tenantContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-08-01' = [
  for tenant in tenants: {
    parent: exportBlobService
    name: tenant.container
    properties: {
      publicAccess: 'None'
    }
  }
]

var tierActions = union(
  coolAfterDays > 0 ? { tierToCool: { daysAfterCreationGreaterThan: coolAfterDays } } : {},
  colderAfterDays > 0 && colderTier == 'Cold' ? { tierToCold: { daysAfterCreationGreaterThan: colderAfterDays } } : {},
  colderAfterDays > 0 && colderTier == 'Archive'
    ? { tierToArchive: { daysAfterCreationGreaterThan: colderAfterDays } }
    : {},
  deleteAfterDays > 0 ? { delete: { daysAfterCreationGreaterThan: deleteAfterDays } } : {}
)

var ageExportsRule = {
  name: 'age-exports'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
      // Exports and run manifests age; the checkpoint (another container) never does.
      prefixMatch: [
        '${exportContainerName}/incidents/'
        '${exportContainerName}/runs/'
        '${exportContainerName}/quarantine/'
      ]
    }
    actions: {
      baseBlob: tierActions
    }
  }
}

// Every run rewrites the checkpoint, so versioning keeps one version per run: previous versions go after
// softDeleteDays, as long as deleted blobs stay recoverable.
var pruneVersionsRule = {
  name: 'prune-versions'
  enabled: true
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
    }
    actions: {
      version: {
        delete: {
          daysAfterCreationGreaterThan: softDeleteDays
        }
      }
    }
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-08-01' = if (lifecycleChecked) {
  parent: exportStorage
  name: 'default'
  properties: {
    policy: {
      rules: concat(empty(tierActions) ? [] : [ageExportsRule], [pruneVersionsRule])
    }
  }
}

// Audit trail in the Log Analytics workspace (logRetentionDays): every read, write and delete of export blobs
// (table StorageBlobLogs), and every Key Vault operation (table AZKVAuditLogs)
// (https://learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings). 2021-05-01-preview is the newest
// version of diagnosticSettings; the linter's only alternative, 2016-09-01, is the legacy shape.
#disable-next-line use-recent-api-versions
resource exportBlobAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: exportBlobService
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

#disable-next-line use-recent-api-versions
resource vaultAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (usesVault) {
  name: 'audit'
  scope: vault
  properties: {
    workspaceId: workspace.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// The export account's events (BlobCreated when a run commits an export blob), for subscribers to filter on
// incidents/ (https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage). No subscription here: the
// endpoint (Event Hubs, a queue, a webhook) is the subscriber's.
resource exportEventsTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = if (exportEvents) {
  name: '${prefix}-events-${suffix}'
  location: location
  tags: tags
  properties: {
    source: exportStorage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Key Vault: RBAC only, purge protection; the secret only when given. None in federated mode: nothing to keep.
// ---------------------------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' = if (usesVault) {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' = if (storesSecret) {
  parent: vault
  name: keyVaultSecretName
  properties: {
    value: defenderClientSecret
    contentType: 'Entra client secret of app ${defenderClientId}'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Role assignments: least privilege, each on the narrowest scope, names from guid()
// ---------------------------------------------------------------------------------------------------------

// The host keeps its locks and timer status in blobs, and reads the deployment package.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Host diagnostic events.
resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, identity.id, roles.storageTableDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageTableDataContributor
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Queue triggers with an identity: the host reads, updates and deletes the fan-out's messages, writes the
// timer's and moves failed ones to the poison queue
// (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#identity-based-connections).
resource hostQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isMultiTenant) {
  name: guid(hostStorage.id, identity.id, roles.storageQueueDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageQueueDataContributor
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// With tenants: the tenants' containers, and the container of a tenant added to DEFENDER_TENANTS later, which
// the export creates on its first run. Containers come and go with the list, so the scope is the account.
resource exportAccountContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isMultiTenant) {
  name: guid(exportStorage.id, identity.id, roles.storageBlobDataContributor)
  scope: exportStorage
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageBlobDataContributor
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource exportContainerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(exportContainer.id, identity.id, roles.storageBlobDataContributor)
  scope: exportContainer
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageBlobDataContributor
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource stateContainerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stateContainer.id, identity.id, roles.storageBlobDataContributor)
  scope: stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageBlobDataContributor
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// secret and certificate: the client secret, or the certificate's key through the certificate's secret.
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (usesVault) {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.monitoringMetricsPublisher
    )
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------------------------------
// Function app on Flex Consumption
// ---------------------------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: '${prefix}-plan-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// Exactly the settings the code reads (src/config.ts SETTINGS), plus the host's own. No secret among them:
// the client secret or certificate is read from Key Vault at run time (none in federated mode), storage and
// telemetry use the identity.
var credentialSettings = union(
  credentialMode == 'federated' ? {} : { KEY_VAULT_URL: vaultUri },
  credentialMode == 'secret' ? { KEY_VAULT_SECRET_NAME: keyVaultSecretName } : {},
  credentialMode == 'certificate' ? { KEY_VAULT_CERTIFICATE_NAME: keyVaultCertificateName } : {},
  credentialMode == 'federated' && !empty(federationAudience) ? { DEFENDER_FEDERATION_AUDIENCE: federationAudience } : {}
)
var exportSettings = union(
  credentialSettings,
  {
    DEFENDER_TENANT_ID: empty(defenderTenantId) ? subscription().tenantId : defenderTenantId
    DEFENDER_TENANTS: isMultiTenant ? string(tenants) : ''
    DEFENDER_CLIENT_ID: defenderClientId
    DEFENDER_API: defenderApi
    DEFENDER_AUTHORITY_HOST: defenderAuthorityHost
    DEFENDER_CREDENTIAL: deployedCredential
    AZURE_CLIENT_ID: identity.properties.clientId
    EXPORT_STORAGE_ACCOUNT_URL: exportStorage.properties.primaryEndpoints.blob
    EXPORT_CONTAINER: exportContainer.name
    EXPORT_STATE_CONTAINER: isMultiTenant ? '' : stateContainer.name
    EXPORT_QUEUE: exportQueueName
    EXPORT_SCHEDULE: schedule
    EXPORT_INITIAL_LOOKBACK: exportInitialLookback
    EXPORT_SETTLE_DELAY: exportSettleDelay
    EXPORT_REREAD_WINDOW: exportRereadWindow
    EXPORT_MAX_RUN_DURATION: maxRunDuration
    EXPORT_FORMAT: exportFormat
    EXPORT_COMPRESSION: exportCompression
    EXPORT_INCLUDE_ALERTS: exportIncludeAlerts ? 'true' : 'false'
  },
  empty(defenderApiUrl) ? {} : { DEFENDER_API_URL: defenderApiUrl }
)

var hostSettings = {
  AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
  // The queue trigger and output of the tenant fan-out reach the host account's queues with the identity too.
  AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // Set on every deployment like every other setting, so a provision keeps a disabled function disabled
  // (https://learn.microsoft.com/azure/azure-functions/disable-function).
  'AzureWebJobs.exportIncidents.Disabled': exportFunctionDisabled ? 'true' : 'false'
}

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The portal's Test/Run calls the host's admin endpoint from the browser
      // (https://learn.microsoft.com/azure/azure-functions/functions-how-to-use-azure-function-app-settings#cors).
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        // The timer is a singleton; a few instances are plenty and cap the cost of any surprise.
        maximumInstanceCount: 40
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }

  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(hostSettings, exportSettings)
  }

  // No FTP, no SCM basic auth: deployments use Entra identities.
  resource ftpPolicy 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmPolicy 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: false
    }
  }

  dependsOn: [
    hostBlobOwner
    hostTableContributor
    appInsightsPublisher
  ]
}

// ---------------------------------------------------------------------------------------------------------
// Outputs: what the operator needs next (no secret)
// ---------------------------------------------------------------------------------------------------------

@description('Name of the function app.')
output AZURE_FUNCTION_APP_NAME string = functionApp.name

@description('Name of the storage account that holds the exports.')
output EXPORT_STORAGE_ACCOUNT_NAME string = exportStorage.name

@description('Blob endpoint of the export storage account.')
output EXPORT_STORAGE_ACCOUNT_URL string = exportStorage.properties.primaryEndpoints.blob

@description('Container of the exports.')
output EXPORT_CONTAINER string = exportContainer.name

@description('Container of the checkpoint.')
output EXPORT_STATE_CONTAINER string = stateContainer.name

@description('The credential mode deployed (DEFENDER_CREDENTIAL).')
output DEFENDER_CREDENTIAL string = credentialMode

@description('Name of the Key Vault; empty in federated mode (no vault).')
output KEY_VAULT_NAME string = usesVault ? vault.name : ''

@description('URI of the Key Vault that holds the client secret or the certificate; empty in federated mode.')
output KEY_VAULT_URL string = usesVault ? vaultUri : ''

@description('secret mode: name of the Key Vault secret to set with the client secret; empty otherwise.')
output KEY_VAULT_SECRET_NAME string = credentialMode == 'secret' ? keyVaultSecretName : ''

@description('certificate mode: name of the Key Vault certificate to create; empty otherwise.')
output KEY_VAULT_CERTIFICATE_NAME string = credentialMode == 'certificate' ? keyVaultCertificateName : ''

// The federated identity credential that makes the identity the app's credential (federated mode; given in every
// mode, so a secret deployment can move over): az ad app federated-credential create, docs/deploy.md.
@description('Issuer of the federated identity credential: the identity\'s tenant in the deployment\'s cloud.')
output FEDERATION_ISSUER string = '${environment().authentication.loginEndpoint}${subscription().tenantId}/v2.0'

@description('Subject of the federated identity credential: the principal (object) ID of the managed identity.')
output FEDERATION_SUBJECT string = identity.properties.principalId

@description('Audience of the federated identity credential.')
output FEDERATION_AUDIENCE string = federatedCredentialAudience

// Not named AZURE_CLIENT_ID: azd writes the outputs to .azure/<env>/.env, and that variable in an operator's shell
// would switch the CLI (and every Azure SDK) to a managed identity that a workstation does not have.
@description('Client ID of the managed identity (grant nothing else to it).')
output MANAGED_IDENTITY_CLIENT_ID string = identity.properties.clientId

@description('Name of the Event Grid system topic of the export account (exportEvents), empty without it.')
output EXPORT_EVENTS_TOPIC string = exportEvents ? exportEventsTopic.name : ''

@description('Name of the Application Insights component.')
output APPLICATION_INSIGHTS_NAME string = appInsights.name
