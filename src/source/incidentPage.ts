import type { DefenderApi } from '../config';
import type { IncidentRecord } from '../export/checkpoint';
import { parseTimestamp } from '../export/timestamp';
import type { RejectedRecord } from '../export/ports';
import { ExportError } from '../errors';

/** The two field names that differ between the APIs (the schemas linked in docs/incidents-api.md). */
const FIELDS: Record<DefenderApi, { id: string; lastUpdate: string; label: string }> = {
  graph: { id: 'id', lastUpdate: 'lastUpdateDateTime', label: 'Microsoft Graph' },
  legacy: { id: 'incidentId', lastUpdate: 'lastUpdateTime', label: 'Defender XDR (legacy)' },
};

export interface ParsedPage {
  readonly records: IncidentRecord[];
  /** Items that are not placeable incidents (no id or no valid last update): quarantined by the exporter. */
  readonly rejected: RejectedRecord[];
  readonly nextLink: string | undefined;
}

/**
 * The `@odata.nextLink` of a page (`where` names the page in messages), checked: a string on the page's own
 * origin. The bearer token must never go to another origin; a nextLink that leaves the API is hostile or
 * misconfigured. Shared by incident pages and the alerts pages of one incident.
 */
export function nextLinkOf(page: Record<string, unknown>, url: string, where: string): string | undefined {
  const link = page['@odata.nextLink'];
  if (link === undefined || link === null) return undefined;
  if (typeof link !== 'string')
    throw new ExportError(`${where} is malformed: '@odata.nextLink' is not a string.`);
  if (originOf(link) !== originOf(url)) {
    throw new ExportError(
      `${where} has an @odata.nextLink to another origin (${originOf(link) ?? 'invalid URL'}); it is not followed and no token is sent there.`,
    );
  }
  return link;
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Validates one page of the incidents API and maps it to records. Pure. A malformed page throws an
 * ExportError that names the URL, the position and (when known) the incident, and nothing of it is exported.
 */
export function parseIncidentPage(body: unknown, api: DefenderApi, url: string): ParsedPage {
  const f = FIELDS[api];
  const where = `${f.label} page ${describeUrl(url)}`;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ExportError(`Malformed ${where}: expected a JSON object with a 'value' array.`);
  }
  const page = body as Record<string, unknown>;
  const value = page.value;
  if (!Array.isArray(value)) throw new ExportError(`Malformed ${where}: the response has no 'value' array.`);
  const nextLink = nextLinkOf(page, url, where);
  const records: IncidentRecord[] = [];
  const rejected: RejectedRecord[] = [];
  value.forEach((item: unknown, index) => {
    const result = parseRecord(item, f);
    if (typeof result === 'string') rejected.push({ reason: `${where}: item ${index} ${result}`, raw: item });
    else records.push(result);
  });
  return { records, rejected, nextLink };
}

/**
 * One incident object of the given API as a record (id and exact last update), or why it cannot be placed in
 * time. Pure; the operators' CLI reads exported incidents back with it.
 */
export function parseIncidentRecord(item: unknown, api: DefenderApi): IncidentRecord | string {
  return parseRecord(item, FIELDS[api]);
}

/** {@link parseIncidentRecord}, undefined for an item that cannot be placed in time (a source's `identify`). */
export function identifyIncident(item: unknown, api: DefenderApi): IncidentRecord | undefined {
  const record = parseIncidentRecord(item, api);
  return typeof record === 'string' ? undefined : record;
}

/** One incident, or why it cannot be placed in time (then it is quarantined, not dropped). */
function parseRecord(item: unknown, f: (typeof FIELDS)[DefenderApi]): IncidentRecord | string {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'is not an incident object';
  const incident = item as Record<string, unknown>;
  const rawId = incident[f.id];
  const id = typeof rawId === 'number' && Number.isSafeInteger(rawId) ? String(rawId) : rawId;
  if (typeof id !== 'string' || id.length === 0 || id.length > 128) return `has no valid '${f.id}'`;
  const lastUpdate = parseTimestamp(incident[f.lastUpdate]);
  if (!lastUpdate) {
    return `(incident '${printable(id)}') has no valid '${f.lastUpdate}' (got ${printable(JSON.stringify(incident[f.lastUpdate]) ?? 'nothing')})`;
  }
  return { id, lastUpdate, raw: item };
}

/** Origin and path of a URL, for messages (the query holds only our filter, but stays out to keep lines short). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 80);
}
