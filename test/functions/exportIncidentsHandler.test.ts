import fs from 'node:fs';
import { InvocationContext, type Timer } from '@azure/functions';
import { createExporter } from '../../src/composition/compositionRoot';
import { ConfigError } from '../../src/errors';
import { createExportIncidentsHandler } from '../../src/functions/exportIncidentsHandler';
import { parseConfig } from '../../src/config';
import { World } from '../support/world';

const timer: Timer = {
  isPastDue: true,
  schedule: { adjustForDST: false },
  scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

function context(logs: [string, string][]): InvocationContext {
  return new InvocationContext({
    invocationId: 'inv-42',
    functionName: 'exportIncidents',
    logHandler: (level, ...args) => logs.push([level, args.map(String).join(' ')]),
  });
}

describe('exportIncidents handler', () => {
  it('runs an export through the InvocationContext logger, with the invocation id as run id', async () => {
    const world = await World.start();
    try {
      world.tenant.store.generate(30, {
        from: new Date(Date.now() - 5 * 3_600_000),
        to: new Date(Date.now() - 60_000),
      });
      const handler = createExportIncidentsHandler(() => world.config, createExporter, {
        ca: world.tenant.ca,
        azureCredential: world.tenant.managedIdentityCredential(),
      });
      const logs: [string, string][] = [];
      const summary = await handler(timer, context(logs));
      expect(summary).toMatchObject({ outcome: 'succeeded', runId: 'inv-42', incidents: 30 });
      expect(
        logs.some(([level, text]) => level === 'information' && text.startsWith('export summary ')),
      ).toBe(true);
      expect(logs.some(([, text]) => /past due/.test(text))).toBe(true);
      expect((await world.blobNames('runs/'))[0]).toMatch(/-inv-42\.json$/);
    } finally {
      await world.close();
    }
  });

  it('writes nothing to the local disk: every byte goes to Blob Storage', async () => {
    const world = await World.start();
    try {
      const handler = createExportIncidentsHandler(() => world.config, createExporter, {
        ca: world.tenant.ca,
        azureCredential: world.tenant.managedIdentityCredential(),
        clock: world.clock,
      });
      const hour = 3_600_000;
      world.tenant.store.generate(30, {
        from: new Date(Date.now() - 5 * hour),
        to: new Date(Date.now() - hour),
      });
      await handler(timer, context([])); // loads every module first, so the watch below sees only the run
      world.tenant.store.touchRandom(10);
      world.advance(1100);

      const writers = [
        'writeFile',
        'writeFileSync',
        'appendFile',
        'appendFileSync',
        'createWriteStream',
        'open',
        'openSync',
        'mkdir',
        'mkdirSync',
        'mkdtemp',
        'mkdtempSync',
        'rename',
        'renameSync',
        'copyFile',
        'copyFileSync',
      ] as const;
      const spies = [
        ...writers.map((name) => jest.spyOn(fs, name)),
        ...(['writeFile', 'appendFile', 'open', 'mkdir', 'mkdtemp', 'rename', 'copyFile'] as const).map(
          (name) => jest.spyOn(fs.promises, name),
        ),
      ];
      try {
        const summary = await handler(timer, context([]));
        expect(summary.incidents).toBeGreaterThan(0);
        expect(spies.flatMap((spy) => spy.mock.calls.map((call) => JSON.stringify(call[0])))).toEqual([]);
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    } finally {
      await world.close();
    }
  });

  it('fails every run with the list of bad settings, and builds nothing', async () => {
    const factory = jest.fn(createExporter);
    const handler = createExportIncidentsHandler(() => parseConfig({ DEFENDER_API: 'beta' }), factory);
    await expect(handler(timer, context([]))).rejects.toThrow(ConfigError);
    await expect(handler(timer, context([]))).rejects.toThrow(
      /DEFENDER_TENANT_ID is missing[\s\S]*DEFENDER_API is 'beta'/,
    );
    expect(factory).not.toHaveBeenCalled();
  });
});
