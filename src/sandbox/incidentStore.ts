import { parseTimestamp, type Timestamp } from '../export/timestamp';
import { Random } from './random';

/** The canonical incident the simulated tenant keeps; the two API facades render it. */
export interface Incident {
  id: number;
  name: string;
  createdTime: string;
  /** Defender's format: UTC, 0–7 fractional digits, trailing zeros trimmed. */
  lastUpdateTime: string;
  status: 'active' | 'inProgress' | 'resolved' | 'redirected' | 'awaitingAction';
  severity: 'informational' | 'low' | 'medium' | 'high';
  classification: 'unknown' | 'falsePositive' | 'truePositive' | 'informationalExpectedActivity';
  determination:
    | 'unknown'
    | 'malware'
    | 'phishing'
    | 'compromisedUser'
    | 'multiStagedAttack'
    | 'securityTesting'
    | 'other';
  assignedTo: string | null;
  tags: string[];
  comments: { comment: string; createdBy: string; createdTime: string }[];
  redirectIncidentId: number | null;
  alerts: Alert[];
}

export interface Alert {
  id: string;
  title: string;
  description: string;
  category: string;
  severity: Incident['severity'];
  status: 'new' | 'inProgress' | 'resolved';
  createdTime: string;
  lastUpdatedTime: string;
  mitreTechniques: string[];
  device: {
    id: string;
    aadId: string;
    dnsName: string;
    osPlatform: string;
    osBuild: number;
    rbacGroup: string;
  };
  user: {
    accountName: string;
    domainName: string;
    sid: string;
    aadUserId: string;
    upn: string;
    displayName: string;
  };
  process: {
    fileName: string;
    filePath: string;
    commandLine: string;
    sha1: string;
    sha256: string;
    processId: number;
  };
}

const TITLES = [
  'Suspicious LSASS memory access',
  'Possible credential dumping with procdump',
  'Anomalous sign-in from an unfamiliar location',
  'Phishing e-mail delivered and clicked',
  'Ransomware behaviour detected in the file system',
  'Suspicious PowerShell command line',
  'Lateral movement using remote service creation',
  'Mass download by a single user — «Überprüfung» required',
  'Connection to a known command-and-control server',
  'Malicious macro in an Office document (日本語の添付ファイル)',
];
const CATEGORIES = [
  'CredentialAccess',
  'InitialAccess',
  'Execution',
  'LateralMovement',
  'Impact',
  'Exfiltration',
  'CommandAndControl',
];
const USERS = ['mkowalski', 'jdoe', 'asmith', 'zoë.müller', 'lchen', 'soc-automation', 'ravi.k'];
const TECHNIQUES = ['T1003.001', 'T1059.001', 'T1021.002', 'T1566.001', 'T1486', 'T1071.001', 'T1078'];
const SEVERITIES: Incident['severity'][] = ['informational', 'low', 'medium', 'high'];

/**
 * The simulated tenant's incidents: generated from a seed, mutated by scenarios and tests, rendered per API.
 */
export class IncidentStore {
  private readonly incidents = new Map<number, Incident>();
  /** Every version that ever existed, as `id@ticks`: what an export may legitimately contain. */
  readonly versions = new Set<string>();
  private nextId = 48_000;
  private readonly random: Random;
  /** Changes with every add, update, delete or load, so that readers can cache query results. */
  revision = 0;

  constructor(
    seed = 1,
    private readonly now: () => number = Date.now,
  ) {
    this.random = new Random(seed);
  }

  get size(): number {
    return this.incidents.size;
  }

  all(): Incident[] {
    return [...this.incidents.values()];
  }

  get(id: number | string): Incident | undefined {
    return this.incidents.get(Number(id));
  }

  /** Generates `count` incidents whose last update falls in [from, to]; some share a timestamp exactly. */
  generate(count: number, range: { from: Date; to: Date }): Incident[] {
    const created: Incident[] = [];
    const span = Math.max(1, range.to.getTime() - range.from.getTime());
    let previous: string | undefined;
    for (let i = 0; i < count; i++) {
      const lastUpdate =
        previous !== undefined && this.random.chance(0.08)
          ? previous
          : defenderTime(
              range.from.getTime() + Math.floor(this.random.next() * span),
              this.random.int(0, 9999),
            );
      previous = lastUpdate;
      created.push(this.add({ lastUpdateTime: lastUpdate }));
    }
    return created;
  }

  /** Adds one incident; anything not given is generated. */
  add(
    partial: Partial<Omit<Incident, 'lastUpdateTime'>> & { lastUpdateTime?: string | Date } = {},
  ): Incident {
    const r = this.random;
    const id = partial.id ?? this.nextId++;
    this.nextId = Math.max(this.nextId, id + 1);
    const lastUpdateTime = toDefenderTime(partial.lastUpdateTime ?? new Date(this.now()));
    const lastMs = Number(parseTimestamp(lastUpdateTime)!.ticks / 10_000n);
    const createdTime = defenderTime(lastMs - r.int(0, 6 * 3_600_000), r.int(0, 9999));
    const severity = r.pick(SEVERITIES);
    const user = r.pick(USERS);
    const alerts = Array.from({ length: r.int(1, 5) }, () =>
      this.alert(createdTime, lastUpdateTime, severity, user),
    );
    const incident: Incident = {
      id,
      name: `Multi-stage incident involving ${alerts.map((a) => a.category).join(' & ')} on ${alerts[0]!.device.dnsName}`,
      createdTime,
      lastUpdateTime,
      status: r.pick(['active', 'active', 'inProgress', 'resolved'] as const),
      severity,
      classification: 'unknown',
      determination: 'unknown',
      assignedTo: r.chance(0.5) ? `soc-tier${r.int(1, 3)}@fabrikam.com` : null,
      tags: r.chance(0.3) ? ['Phish-Campaign-Q1'] : [],
      comments: r.chance(0.4)
        ? [
            {
              comment: 'Escalated to IR on-call — vérifié',
              createdBy: `${user}@fabrikam.com`,
              createdTime: lastUpdateTime,
            },
          ]
        : [],
      redirectIncidentId: null,
      alerts,
      ...stripUndefined(partial),
    } as Incident;
    incident.lastUpdateTime = lastUpdateTime;
    this.incidents.set(id, incident);
    this.versions.add(versionKey(incident));
    this.revision++;
    return incident;
  }

  /** Updates an incident; its last update moves to the given time, or to the tenant clock's now. */
  update(
    id: number | string,
    changes: Partial<Omit<Incident, 'id' | 'lastUpdateTime'>> & { lastUpdateTime?: string | Date } = {},
  ): Incident {
    const incident = this.get(id);
    if (!incident) throw new Error(`no incident ${id}`);
    Object.assign(incident, stripUndefined(changes));
    incident.lastUpdateTime = toDefenderTime(changes.lastUpdateTime ?? new Date(this.now()));
    if (!changes.status && incident.status === 'active' && this.random.chance(0.5))
      incident.status = 'inProgress';
    this.versions.add(versionKey(incident));
    this.revision++;
    return incident;
  }

  /** Updates `count` random incidents to now, as an analyst working the queue would. */
  touchRandom(count: number): Incident[] {
    const all = this.all();
    const touched: Incident[] = [];
    for (let i = 0; i < count && all.length > 0; i++) touched.push(this.update(this.random.pick(all).id));
    return touched;
  }

  /** Removes an incident (tests of hostile scenarios). */
  delete(id: number | string): void {
    this.incidents.delete(Number(id));
    this.revision++;
  }

  toJSON(): { nextId: number; incidents: Incident[] } {
    return { nextId: this.nextId, incidents: this.all() };
  }

  /** Restores incidents saved with {@link toJSON} (the sandbox keeps its tenant between `npm start` runs). */
  load(saved: { nextId: number; incidents: Incident[] }): void {
    for (const incident of saved.incidents) {
      this.incidents.set(incident.id, incident);
      this.versions.add(versionKey(incident));
    }
    this.nextId = Math.max(this.nextId, saved.nextId);
    this.revision++;
  }

  private alert(
    createdTime: string,
    lastUpdateTime: string,
    severity: Incident['severity'],
    user: string,
  ): Alert {
    const r = this.random;
    const host = `${r.pick(['fin', 'hr', 'dev', 'ops'])}-wks-${String(r.int(1, 999)).padStart(4, '0')}`;
    return {
      id: `da${r.int(100000000, 999999999)}${r.int(100000000, 999999999)}_-${r.int(100000000, 2147483647)}`,
      title: r.pick(TITLES),
      description:
        'A process accessed the memory of the Local Security Authority Subsystem Service, which may indicate credential theft. '.repeat(
          r.int(1, 4),
        ),
      category: r.pick(CATEGORIES),
      severity,
      status: r.pick(['new', 'inProgress', 'resolved'] as const),
      createdTime,
      lastUpdatedTime: lastUpdateTime,
      mitreTechniques: [r.pick(TECHNIQUES), r.pick(TECHNIQUES)],
      device: {
        id: r.hex(40),
        aadId: r.guid(),
        dnsName: `${host}.fabrikam.local`,
        osPlatform: 'Windows11',
        osBuild: 22631,
        rbacGroup: 'Finance-Workstations',
      },
      user: {
        accountName: user,
        domainName: 'FABRIKAM',
        sid: `S-1-5-21-${r.int(1e9, 4e9)}-${r.int(1e9, 4e9)}-${r.int(1e3, 9e3)}`,
        aadUserId: r.guid(),
        upn: `${user}@fabrikam.com`,
        displayName: user,
      },
      process: {
        fileName: r.pick(['procdump64.exe', 'powershell.exe', 'rundll32.exe', 'wmic.exe']),
        filePath: 'C:\\Users\\Public\\Tools',
        commandLine: `procdump64.exe -ma lsass.exe out-${r.hex(6)}.dmp`,
        sha1: r.hex(40),
        sha256: r.hex(64),
        processId: r.int(100, 65000),
      },
    };
  }
}

/** Formats an instant as Defender does: trailing fractional zeros trimmed. */
export function defenderTime(ms: number, extraTicks = 0): string {
  const iso = new Date(ms).toISOString(); // .mmmZ
  const fraction = (iso.slice(20, 23) + String(extraTicks).padStart(4, '0')).replace(/0+$/, '');
  return `${iso.slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
}

function toDefenderTime(value: string | Date): string {
  if (value instanceof Date) return defenderTime(value.getTime());
  if (!parseTimestamp(value)) throw new Error(`not a timestamp: ${value}`);
  return value;
}

/** `id@ticks` of an incident's current version. */
export function versionKey(incident: Incident): string {
  return `${incident.id}@${lastUpdateOf(incident).ticks}`;
}

/** The exact position of an incident's last update. */
export function lastUpdateOf(incident: Incident): Timestamp {
  return parsedTime(incident.lastUpdateTime);
}

/** The exact position of an incident's creation. */
export function createdOf(incident: Incident): Timestamp {
  return parsedTime(incident.createdTime);
}

/**
 * Timestamps parsed once per text: the routes sort and filter the whole store on every request, and parsing
 * dominated a busy case's time (a store of thousands, changed on every page).
 */
const PARSED = new Map<string, Timestamp>();

function parsedTime(text: string): Timestamp {
  let parsed = PARSED.get(text);
  if (!parsed) {
    parsed = parseTimestamp(text)!;
    if (PARSED.size > 200_000) PARSED.clear();
    PARSED.set(text, parsed);
  }
  return parsed;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(value).filter(([k, v]) => v !== undefined && k !== 'lastUpdateTime'),
  ) as Partial<T>;
}
