import { ExportError } from '../../src/errors';
import { describeUrl, parseIncidentPage, parseIncidentRecord } from '../../src/source/incidentPage';

const GRAPH_URL = 'https://graph.microsoft.com/v1.0/security/incidents?$top=50';
const LEGACY_URL = 'https://api.security.microsoft.com/api/incidents';

describe('parseIncidentPage', () => {
  it('maps Graph and legacy items to id, exact last update and the raw item', () => {
    const graph = parseIncidentPage(
      {
        value: [{ id: '17', lastUpdateDateTime: '2026-03-01T10:00:00.1234567Z', status: 'active' }],
        '@odata.nextLink': 'https://graph.microsoft.com/v1.0/security/incidents?$skip=50',
      },
      'graph',
      GRAPH_URL,
    );
    expect(graph.records).toHaveLength(1);
    expect(graph.records[0]!.id).toBe('17');
    expect(graph.records[0]!.lastUpdate.text).toBe('2026-03-01T10:00:00.1234567Z');
    expect(graph.records[0]!.raw).toEqual({
      id: '17',
      lastUpdateDateTime: '2026-03-01T10:00:00.1234567Z',
      status: 'active',
    });
    expect(graph.nextLink).toBe('https://graph.microsoft.com/v1.0/security/incidents?$skip=50');
    expect(graph.rejected).toEqual([]);

    // The legacy API's ids are numbers; they become strings.
    const legacy = parseIncidentPage(
      { value: [{ incidentId: 924, lastUpdateTime: '2026-03-01T10:00:00Z' }] },
      'legacy',
      LEGACY_URL,
    );
    expect(legacy.records.map((r) => r.id)).toEqual(['924']);
    expect(legacy.nextLink).toBeUndefined();
  });

  it('quarantines items that cannot be placed in time, naming the page, the item and the incident', () => {
    const page = parseIncidentPage(
      {
        value: [
          { id: 'a', lastUpdateDateTime: '2026-03-01T10:00:00Z' },
          { id: 'b' },
          { lastUpdateDateTime: '2026-03-01T10:00:00Z' },
          'text',
          { id: 'x'.repeat(129), lastUpdateDateTime: '2026-03-01T10:00:00Z' },
          { id: 'c\u0000d', lastUpdateDateTime: 'yesterday' },
        ],
      },
      'graph',
      GRAPH_URL,
    );
    expect(page.records.map((r) => r.id)).toEqual(['a']);
    expect(page.rejected.map((r) => r.reason)).toEqual([
      "Microsoft Graph page https://graph.microsoft.com/v1.0/security/incidents: item 1 (incident 'b') has no valid 'lastUpdateDateTime' (got nothing)",
      "Microsoft Graph page https://graph.microsoft.com/v1.0/security/incidents: item 2 has no valid 'id'",
      'Microsoft Graph page https://graph.microsoft.com/v1.0/security/incidents: item 3 is not an incident object',
      "Microsoft Graph page https://graph.microsoft.com/v1.0/security/incidents: item 4 has no valid 'id'",
      `Microsoft Graph page https://graph.microsoft.com/v1.0/security/incidents: item 5 (incident 'c?d') has no valid 'lastUpdateDateTime' (got "yesterday")`,
    ]);
    expect(page.rejected[1]!.raw).toEqual({ lastUpdateDateTime: '2026-03-01T10:00:00Z' });
  });

  it('refuses a malformed page as a whole', () => {
    for (const body of [null, [], 'x', {}, { value: {} }, { value: [], '@odata.nextLink': 5 }]) {
      expect(() => parseIncidentPage(body, 'graph', GRAPH_URL)).toThrow(ExportError);
    }
    expect(() => parseIncidentPage({ value: [], '@odata.nextLink': null }, 'graph', GRAPH_URL)).not.toThrow();
  });

  it('refuses a nextLink to another origin, so that the token never goes there', () => {
    for (const nextLink of [
      'https://evil.example/v1.0/security/incidents',
      'http://graph.microsoft.com/x',
      '::',
    ]) {
      expect(() => parseIncidentPage({ value: [], '@odata.nextLink': nextLink }, 'graph', GRAPH_URL)).toThrow(
        /nextLink to another origin/,
      );
    }
  });

  it('parses one record by API and describes URLs without their query', () => {
    expect(parseIncidentRecord({ incidentId: 1 }, 'legacy')).toMatch(/no valid 'lastUpdateTime'/);
    expect(
      parseIncidentRecord({ incidentId: 1.5, lastUpdateTime: '2026-01-01T00:00:00Z' }, 'legacy'),
    ).toMatch(/no valid 'incidentId'/);
    expect(describeUrl(`${GRAPH_URL}&$filter=secret`)).toBe(
      'https://graph.microsoft.com/v1.0/security/incidents',
    );
    expect(describeUrl('not a url')).toBe('(invalid URL)');
  });
});
