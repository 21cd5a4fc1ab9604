import {
  ApiError,
  classifyFailure,
  ConcurrentRunError,
  ConfigError,
  ExportError,
  redact,
  registerSecret,
  StorageError,
  toError,
} from '../src/errors';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl';

describe('the error taxonomy', () => {
  it('tells what a later run gets past from what needs the operator', () => {
    const cases: [unknown, { kind: string; transient: boolean }][] = [
      [new ConfigError(['DEFENDER_TENANT_ID is missing']), { kind: 'config', transient: false }],
      [
        new ApiError('GET x: HTTP 503', { status: 503, method: 'GET', url: 'x' }),
        { kind: 'api', transient: true },
      ],
      [
        new ApiError('GET x: HTTP 429', { status: 429, method: 'GET', url: 'x' }),
        { kind: 'api', transient: true },
      ],
      [
        new ApiError('GET x: HTTP 408', { status: 408, method: 'GET', url: 'x' }),
        { kind: 'api', transient: true },
      ],
      [
        new ApiError('GET x: no answer', { status: 0, method: 'GET', url: 'x' }),
        { kind: 'api', transient: true },
      ],
      [
        new ApiError('GET x: HTTP 403', { status: 403, method: 'GET', url: 'x' }),
        { kind: 'api', transient: false },
      ],
      [
        new ApiError('GET x: HTTP 404', { status: 404, method: 'GET', url: 'x' }),
        { kind: 'api', transient: false },
      ],
      [
        new StorageError('Storage failed', {
          container: 'c',
          status: 503,
          code: 'ServerBusy',
          isTransient: true,
        }),
        { kind: 'storage', transient: true },
      ],
      [new ExportError('The checkpoint is for another tenant.'), { kind: 'export', transient: false }],
      [
        new ExportError('Out of time while retrying.', { isTransient: true }),
        { kind: 'export', transient: true },
      ],
      [new ConcurrentRunError('Another run moved the checkpoint.'), { kind: 'concurrent', transient: true }],
      [new TypeError('x is undefined'), { kind: 'unexpected', transient: false }],
      ['a string', { kind: 'unexpected', transient: false }],
    ];
    for (const [thrown, expected] of cases) expect(classifyFailure(thrown)).toEqual(expected);
  });

  it('keeps what an operator needs on an ApiError and a StorageError, redacted', () => {
    const cause = new Error('socket hang up');
    const api = new ApiError(`GET https://api/x?access_token=${JWT} failed`, {
      status: 500,
      method: 'GET',
      url: `https://api/x?access_token=${JWT}`,
      responseExcerpt: `{"token":"Bearer ${JWT}"}`,
      cause,
    });
    expect(api).toMatchObject({ status: 500, method: 'GET', cause, isTransient: true });
    expect(`${api.message} ${api.url} ${api.responseExcerpt}`).not.toContain(JWT);
    const storage = new StorageError('Storage refused', {
      container: 'defender-incidents',
      blob: 'state/checkpoint.json',
      status: 412,
      code: 'LeaseIdMissing',
      isTransient: false,
      cause,
    });
    expect(storage).toMatchObject({
      container: 'defender-incidents',
      blob: 'state/checkpoint.json',
      status: 412,
      code: 'LeaseIdMissing',
      isTransient: false,
      cause,
    });
  });
});

describe('toError', () => {
  it('keeps the product errors as they are', () => {
    const errors = [
      new ConfigError(['x']),
      new ApiError('a', { status: 400, method: 'GET', url: 'u' }),
      new StorageError('s', { container: 'c', isTransient: true }),
      new ExportError('e'),
      new ConcurrentRunError('c'),
    ];
    for (const e of errors) expect(toError(e)).toBe(e);
  });

  it('redacts the message and the stack, and keeps the name, the stack and the cause', () => {
    registerSecret('hunter2-long-lived-secret', { longLived: true });
    const root = new Error(`connect failed for client_secret=hunter2-long-lived-secret`);
    const thrown = new RangeError(`Bearer ${JWT} was refused`, { cause: root });
    const e = toError(thrown);
    expect(e).not.toBe(thrown);
    expect(e.name).toBe('RangeError');
    expect(e.message).toBe('[REDACTED] was refused');
    expect(e.stack).toBeDefined();
    expect(e.stack).not.toContain(JWT);
    // The stack still says where it was thrown: this file.
    expect(e.stack).toMatch(/errors\.test\.ts/);
    expect(e.stack!.split('\n').slice(1)).toEqual(thrown.stack!.split('\n').slice(1));
    expect(e.cause).toBeInstanceOf(Error);
    const cause = e.cause as Error;
    expect(cause.message).toBe('connect failed for client_secret=[REDACTED]');
    expect(cause.stack).toMatch(/errors\.test\.ts/);
    expect(cause.stack).not.toContain('hunter2-long-lived-secret');
  });

  it('turns a thrown non-Error into a redacted Error', () => {
    expect(toError(`token ${JWT}`).message).toBe(redact(`token ${JWT}`));
    expect(toError(`token ${JWT}`).message).not.toContain(JWT);
  });

  it('keeps a cause that is not an Error, redacted', () => {
    const e = toError(new Error('outer', { cause: `inner ${JWT}` }));
    expect((e.cause as Error).message).toBe('inner [REDACTED]');
  });
});
