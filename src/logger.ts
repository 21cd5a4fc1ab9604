/**
 * The one logging shape of the product. `InvocationContext`, `console` and the test recorder all satisfy it.
 * Info is normal progress, warn is a run that failed its task or degraded, retries are debug.
 * Never pass a secret, a token or an Authorization header to a logger.
 */
export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Adapts the Functions `InvocationContext` (which calls debug `trace`) to {@link Logger}. */
export function loggerFromContext(context: {
  trace(...args: unknown[]): void;
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}): Logger {
  return {
    debug: (m, ...a) => context.trace(m, ...a),
    info: (m, ...a) => context.log(m, ...a),
    warn: (m, ...a) => context.warn(m, ...a),
    error: (m, ...a) => context.error(m, ...a),
  };
}
