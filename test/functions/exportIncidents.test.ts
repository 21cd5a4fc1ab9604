// Outside the Functions host, @azure/functions switches to test mode and registers nothing; it loads
// @azure/functions-core lazily, so a virtual mock captures the real registration
// (docs/azure-notes.md#azure-functions).
import type { FunctionsCoreMock } from '../support/functionsCoreMock';

jest.mock(
  '@azure/functions-core',
  () => jest.requireActual<FunctionsCoreMock>('../support/functionsCoreMock').functionsCore(),
  { virtual: true },
);

import '../../src/functions/exportIncidents';
import { exportIncidentsHandler } from '../../src/functions/exportIncidentsHandler';

interface Registration {
  name: string;
  bindings: Record<
    string,
    { type: string; schedule?: string; runOnStartup?: boolean; useMonitor?: boolean; direction: string }
  >;
}

describe('timer registration', () => {
  const core = jest.requireMock('@azure/functions-core');
  const [metadata, handler] = core.registerFunction.mock.calls[0] as [Registration, unknown];

  it('registers exportIncidents on the EXPORT_SCHEDULE setting, not on startup', () => {
    expect(core.registerFunction).toHaveBeenCalledTimes(1);
    expect(metadata.name).toBe('exportIncidents');
    const trigger = Object.values(metadata.bindings).find((b) => b.type === 'timerTrigger');
    expect(trigger).toMatchObject({
      schedule: '%EXPORT_SCHEDULE%',
      direction: 'in',
      runOnStartup: false,
      useMonitor: true,
    });
  });

  it('wraps the export handler', () => {
    expect(typeof handler).toBe('function');
    expect(typeof exportIncidentsHandler).toBe('function');
  });
});
