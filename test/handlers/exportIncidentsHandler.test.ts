import { InvocationContext, type Timer } from '@azure/functions';
import { createExporter } from '../../src/compositionRoot';
import { ConfigError } from '../../src/errors';
import { createExportIncidentsHandler } from '../../src/handlers/exportIncidentsHandler';
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
