import { InvocationContext, type Timer } from '@azure/functions';
import { createBackfillCommand } from '../../src/cli/backfillCommand';
import { createVerifyCommand } from '../../src/cli/verifyCommand';
import { createExporter } from '../../src/composition/compositionRoot';
import type { CredentialMode } from '../../src/config';
import { createExportIncidentsHandler } from '../../src/functions/exportIncidentsHandler';
import { runCli, settingsFile } from '../support/cli';
import { MemoryCheckpointStore } from '../support/memory/memoryCheckpointStore';
import { MemoryExportSink } from '../support/memory/memoryExportSink';
import { World } from '../support/world';

const HOUR = 3_600_000;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const timer: Timer = {
  isPastDue: false,
  schedule: { adjustForDST: false },
  scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

/** Requests of each API the simulated tenant received. */
function requestsTo(world: World, api: string): number {
  return world.tenant.requests.filter((r) => r.api === api).length;
}

describe.each<CredentialMode>(['secret', 'federated', 'certificate'])(
  'DEFENDER_CREDENTIAL=%s',
  (credential) => {
    let world: World;
    afterEach(async () => {
      await world.close();
    });

    it('exports through the Function, then backfill and verify, against Graph (Azurite) and legacy (in memory)', async () => {
      world = await World.start({ credential });
      if (credential !== 'secret') {
        // No client secret exists anywhere: the app accepts none and the vault holds none.
        world.tenant.validClientSecrets.clear();
        world.tenant.secrets.delete(world.tenant.secretName);
      }
      const now = Date.now();
      world.tenant.store.generate(24, { from: new Date(now - 30 * HOUR), to: new Date(now - HOUR) });

      // The Function's handler, as the timer calls it.
      const logs: string[] = [];
      const handler = createExportIncidentsHandler(() => world.config, createExporter, world.composition());
      const summary = await handler(
        timer,
        new InvocationContext({
          invocationId: `inv-${credential}`,
          functionName: 'exportIncidents',
          logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`),
        }),
      );
      expect(summary).toMatchObject({ outcome: 'succeeded', incidents: 24 });
      expect(logs.filter((l) => !l.startsWith('information '))).toEqual([]);

      // backfill and verify, through the CLI with the same settings.
      const settings = settingsFile(world.settings);
      const backfill = await runCli(['--from', day(now - 2 * 24 * HOUR), '--json', '--settings', settings], {
        command: createBackfillCommand(world.composition()),
      });
      expect(backfill.stderr).not.toMatch(/error|failed/i);
      expect(backfill.code).toBe(0);
      const verify = await runCli(['--from', day(now - 2 * 24 * HOUR), '--json', '--settings', settings], {
        command: createVerifyCommand(world.composition()),
      });
      expect(verify.code).toBe(0);

      // The legacy API, into memory.
      world.configure({
        api: 'legacy',
        credential,
        composition: { sink: new MemoryExportSink(), checkpointStore: new MemoryCheckpointStore() },
      });
      expect(await world.run()).toMatchObject({ outcome: 'succeeded', incidents: 24 });

      const tokens = world.tenant.requests.filter((r) => r.api === 'entra' && r.path.endsWith('/token'));
      expect(tokens.length).toBeGreaterThan(0);
      if (credential === 'federated') {
        expect(requestsTo(world, 'keyvault')).toBe(0);
        expect(requestsTo(world, 'identity')).toBeGreaterThan(0);
        expect(Object.keys(world.settings).filter((k) => /SECRET|KEY_VAULT/.test(k))).toEqual([]);
        expect(world.config).toMatchObject({ keyVaultUrl: undefined, clientSecret: undefined });
        expect(Object.values(world.settings)).not.toContain(world.tenant.clientSecret);
      } else {
        expect(requestsTo(world, 'keyvault')).toBeGreaterThan(0);
      }
    });
  },
);
