/**
 * A stand-in for `@azure/functions-core`, the module the Functions host provides: outside the host
 * `@azure/functions` looks for it lazily and registers nothing without it
 * (docs/azure-notes.md#azure-functions). Use as
 * `jest.mock('@azure/functions-core', () => jest.requireActual('../support/functionsCoreMock').functionsCore(), { virtual: true })`.
 */
export function functionsCore(): Record<string, jest.Mock> {
  return {
    setProgrammingModel: jest.fn(),
    registerHook: jest.fn(() => ({ dispose: jest.fn() })),
    registerFunction: jest.fn(() => ({ dispose: jest.fn() })),
  };
}

export interface FunctionsCoreMock {
  functionsCore: typeof functionsCore;
}
