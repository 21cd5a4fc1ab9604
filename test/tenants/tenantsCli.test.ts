import { createRunCommand } from '../../src/cli/runCommand';
import { createStatusCommand } from '../../src/cli/statusCommand';
import { adminConsentUrl } from '../../src/cli/tenantsCommand';
import { runCli, settingsFile } from '../support/cli';
import { TenantsWorld } from '../support/tenantsWorld';

describe('the CLI with DEFENDER_TENANTS', () => {
  let world: TenantsWorld;
  let settings: string;
  beforeAll(async () => {
    world = await TenantsWorld.start({ customers: 3, incidents: 15 });
    world.sim.customers[1]!.hasConsent = false;
    settings = settingsFile(world.settings);
  });
  afterAll(() => world.close());

  it('run exports every tenant in one process; the failing one does not stop the others', async () => {
    const run = createRunCommand(world.composition());
    const result = await runCli(['--settings', settings, '--concurrency', '2'], { command: run });
    expect(result.stdout).toMatch(/customer-0 \(.*\) -> c.*-0: succeeded, 15 incident versions/);
    expect(result.stdout).toMatch(/customer-1 \(.*\) -> c.*-1: failed: .*AADSTS7000229/);
    expect(result.stdout).toMatch(/customer-2 \(.*\) -> c.*-2: succeeded, 15 incident versions/);
    expect(result.code).toBe(1);
    const [a, b, c] = world.sim.customers.map((t) => t.tenantId) as [string, string, string];
    for (const tenant of [a, c])
      expect(new Set((await world.versions(tenant)).map((v) => v.tenantId))).toEqual(new Set([tenant]));
    expect(await world.versions(b)).toEqual([]);
  });

  it('status shows one line per tenant and exits 1 when any is stale; --tenant shows one in full', async () => {
    const status = createStatusCommand(world.clock);
    const all = await runCli(['--settings', settings], { command: status });
    expect(all.code).toBe(1);
    const lines = all.stdout.split('\n');
    expect(lines.find((l) => l.includes('customer-0'))).toMatch(/succeeded\s+OK$/);
    expect(lines.find((l) => l.includes('customer-1'))).toMatch(/failed\s+STALE$/);
    expect(lines.find((l) => l.includes('customer-2'))).toMatch(/succeeded\s+OK$/);
    expect(all.stdout).toMatch(/STALE: 1 of 3 tenant\(s\): customer-1\./);

    const one = await runCli(['--settings', settings, '--tenant', 'customer-2'], { command: status });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/Container: +c.*-2\n/);
    expect(one.stdout).toMatch(/OK: the export is/);

    const unknown = await runCli(['--settings', settings, '--tenant', 'northwind'], { command: status });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/'northwind' is not in DEFENDER_TENANTS: expected one of 'customer-0'/);
  });

  it('tenants consent-url prints the admin-consent URL on the configured authority', async () => {
    const b = world.sim.customers[1]!.tenantId;
    const listed = await runCli(['tenants', 'consent-url', '--tenant', 'customer-1', '--settings', settings]);
    expect(listed).toMatchObject({ code: 0 });
    expect(listed.stdout).toBe(
      `${world.sim.origin}/${b}/adminconsent?client_id=${world.sim.home.clientId}\n`,
    );
    const next = await runCli([
      'tenants',
      'consent-url',
      '--tenant',
      'northwind.onmicrosoft.com',
      '--settings',
      settings,
    ]);
    expect(next.stdout).toBe(
      `${world.sim.origin}/northwind.onmicrosoft.com/adminconsent?client_id=${world.sim.home.clientId}\n`,
    );
    const list = await runCli(['tenants', 'list', '--settings', settings]);
    expect(list.stdout.trim().split('\n')).toHaveLength(3);
    expect(list.stdout).toMatch(
      new RegExp(`^customer-1  ${b}  container c.*-1  graph API  app ${world.sim.home.clientId}$`, 'm'),
    );
    const bad = await runCli(['tenants', 'consent-url', '--tenant', 'not a tenant', '--settings', settings]);
    expect(bad.code).toBe(2);
    expect(adminConsentUrl('https://login.microsoftonline.us/', 'contoso.onmicrosoft.us', 'abc')).toBe(
      'https://login.microsoftonline.us/contoso.onmicrosoft.us/adminconsent?client_id=abc',
    );
  });

  it('verify and backfill need --tenant with DEFENDER_TENANTS', async () => {
    const verify = await runCli(['verify', '--from', '2026-01-01', '--settings', settings]);
    expect(verify.code).toBe(2);
    expect(verify.stderr).toMatch(
      /name the one to work on with --tenant <name\|tenant ID> \(customer-0, customer-1, customer-2\)/,
    );
  });
});
