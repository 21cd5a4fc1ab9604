import type { Alert, Incident } from './incidentStore';

/*
 * The wire renderers: how each incidents API shows an incident of the simulated tenant's store. Kept apart from
 * the store (which only holds and changes incidents) and from the routes (which page and filter).
 */

const pascal = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Microsoft Graph v1.0 shape (https://learn.microsoft.com/graph/api/resources/security-incident). */
export function toGraph(
  incident: Incident,
  options: { tenantId: string; expandAlerts: boolean; includeUnknownEnums: boolean },
): Record<string, unknown> {
  const status =
    incident.status === 'awaitingAction' && !options.includeUnknownEnums
      ? 'unknownFutureValue'
      : incident.status;
  const url = `https://security.microsoft.com/incident2/${incident.id}/overview?tid=${options.tenantId}`;
  return {
    id: String(incident.id),
    tenantId: options.tenantId,
    status,
    incidentWebUrl: url,
    redirectIncidentId: incident.redirectIncidentId === null ? null : String(incident.redirectIncidentId),
    displayName: incident.name,
    createdDateTime: incident.createdTime,
    lastUpdateDateTime: incident.lastUpdateTime,
    assignedTo: incident.assignedTo,
    classification: incident.classification,
    determination: incident.determination,
    severity: incident.severity,
    customTags: incident.tags,
    systemTags: [],
    description: null,
    summary: null,
    lastModifiedBy: 'Microsoft 365 Defender-IncidentCreation',
    resolvingComment: null,
    priorityScore: incident.severity === 'high' ? 74 : 18,
    comments: incident.comments.map((c) => ({
      comment: c.comment,
      createdByDisplayName: c.createdBy,
      createdDateTime: c.createdTime,
    })),
    ...(options.expandAlerts
      ? { alerts: incident.alerts.map((a) => graphAlert(a, incident, options.tenantId)) }
      : {}),
  };
}

function graphAlert(a: Alert, incident: Incident, tenantId: string): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.security.alert',
    id: a.id,
    providerAlertId: a.id.slice(2),
    incidentId: String(incident.id),
    status: a.status,
    severity: a.severity,
    classification: null,
    determination: null,
    serviceSource: 'microsoftDefenderForEndpoint',
    detectionSource: 'microsoftDefenderForEndpoint',
    productName: 'Microsoft Defender for Endpoint',
    tenantId,
    title: a.title,
    description: a.description,
    recommendedActions: '1. Isolate the device. 2. Reset credentials of logged-on users.',
    category: a.category,
    assignedTo: null,
    alertWebUrl: `https://security.microsoft.com/alerts/${a.id}?tid=${tenantId}`,
    mitreTechniques: a.mitreTechniques,
    createdDateTime: a.createdTime,
    lastUpdateDateTime: a.lastUpdatedTime,
    resolvedDateTime: null,
    evidence: [
      {
        '@odata.type': '#microsoft.graph.security.deviceEvidence',
        verdict: 'suspicious',
        mdeDeviceId: a.device.id,
        azureAdDeviceId: a.device.aadId,
        deviceDnsName: a.device.dnsName,
        osPlatform: a.device.osPlatform,
        osBuild: a.device.osBuild,
        rbacGroupName: a.device.rbacGroup,
        healthStatus: 'active',
        riskScore: a.severity,
      },
      {
        '@odata.type': '#microsoft.graph.security.processEvidence',
        verdict: 'malicious',
        processId: a.process.processId,
        processCommandLine: a.process.commandLine,
        imageFile: {
          sha1: a.process.sha1,
          sha256: a.process.sha256,
          fileName: a.process.fileName,
          filePath: a.process.filePath,
        },
        userAccount: {
          accountName: a.user.accountName,
          domainName: a.user.domainName,
          userSid: a.user.sid,
          azureAdUserId: a.user.aadUserId,
          userPrincipalName: a.user.upn,
          displayName: a.user.displayName,
        },
      },
    ],
  };
}

/** Legacy `api/incidents` shape (https://learn.microsoft.com/defender-xdr/api-list-incidents): numeric ids, PascalCase enums, alerts embedded. */
export function toLegacy(incident: Incident): Record<string, unknown> {
  const status = incident.status === 'awaitingAction' ? 'Active' : pascal(incident.status);
  return {
    incidentId: incident.id,
    redirectIncidentId: incident.redirectIncidentId,
    incidentName: incident.name,
    createdTime: incident.createdTime,
    lastUpdateTime: incident.lastUpdateTime,
    assignedTo: incident.assignedTo,
    classification: incident.classification === 'unknown' ? 'Unknown' : pascal(incident.classification),
    determination: incident.determination === 'unknown' ? 'NotAvailable' : pascal(incident.determination),
    status,
    severity: pascal(incident.severity),
    tags: incident.tags,
    comments: incident.comments,
    alerts: incident.alerts.map((a) => ({
      alertId: a.id,
      incidentId: incident.id,
      serviceSource: 'MicrosoftDefenderATP',
      creationTime: a.createdTime,
      lastUpdatedTime: a.lastUpdatedTime,
      resolvedTime: null,
      title: a.title,
      description: a.description,
      category: a.category,
      status: pascal(a.status),
      severity: pascal(a.severity),
      mitreTechniques: a.mitreTechniques,
      devices: [
        {
          mdatpDeviceId: a.device.id,
          aadDeviceId: a.device.aadId,
          deviceDnsName: a.device.dnsName,
          osPlatform: a.device.osPlatform,
          osBuild: a.device.osBuild,
          rbacGroupName: a.device.rbacGroup,
        },
      ],
      entities: [
        {
          entityType: 'Process',
          sha1: a.process.sha1,
          sha256: a.process.sha256,
          fileName: a.process.fileName,
          filePath: a.process.filePath,
          processId: a.process.processId,
          processCommandLine: a.process.commandLine,
          accountName: null,
          userPrincipalName: null,
        },
        {
          entityType: 'User',
          sha1: null,
          sha256: null,
          fileName: null,
          filePath: null,
          processId: null,
          processCommandLine: null,
          accountName: a.user.accountName,
          userPrincipalName: a.user.upn,
        },
      ],
    })),
  };
}
