// With DEFENDER_TENANTS the app registers the fan-out: the timer with a queue output, and the queue function.
// Outside the Functions host @azure/functions registers through @azure/functions-core, mocked virtually
// (docs/azure-notes.md#azure-functions); the setting is read when the module loads, as the host's worker does.
import type { FunctionsCoreMock } from '../support/functionsCoreMock';

jest.mock(
  '@azure/functions-core',
  () => jest.requireActual<FunctionsCoreMock>('../support/functionsCoreMock').functionsCore(),
  { virtual: true },
);

interface Registration {
  name: string;
  bindings: Record<string, { type: string; direction: string; queueName?: string; connection?: string }>;
}

describe('registration with DEFENDER_TENANTS', () => {
  const saved = process.env.DEFENDER_TENANTS;
  let calls: [Registration, unknown][] = [];
  beforeAll(() => {
    process.env.DEFENDER_TENANTS =
      '[{"tenantId":"0c8e3f5a-7d21-4b9e-a6c4-5f2e1d0b9a87","container":"contoso"}]';
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after the setting is in place
    require('../../src/functions/exportIncidents');
    calls = jest.requireMock('@azure/functions-core').registerFunction.mock.calls as [
      Registration,
      unknown,
    ][];
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.DEFENDER_TENANTS;
    else process.env.DEFENDER_TENANTS = saved;
  });

  it('registers the timer with a queue output on EXPORT_QUEUE and exportTenant on the same queue', () => {
    expect(calls.map(([m]) => m.name)).toEqual(['exportIncidents', 'exportTenant']);
    const [timer, queue] = calls.map(([m]) => Object.values(m.bindings)) as [
      Registration['bindings'][string][],
      Registration['bindings'][string][],
    ];
    expect(timer).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'timerTrigger', direction: 'in' }),
        expect.objectContaining({
          type: 'queue',
          direction: 'out',
          queueName: '%EXPORT_QUEUE%',
          connection: 'AzureWebJobsStorage',
        }),
      ]),
    );
    expect(queue).toEqual([
      expect.objectContaining({
        type: 'queueTrigger',
        direction: 'in',
        queueName: '%EXPORT_QUEUE%',
        connection: 'AzureWebJobsStorage',
      }),
    ]);
  });
});
