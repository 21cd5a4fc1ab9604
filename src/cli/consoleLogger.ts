import type { Logger } from '../logger';

/** Logs to stderr (stdout stays for data), with a time stamp; debug lines only when verbose. */
export function consoleLogger(options: { verbose: boolean }): Logger {
  const write = (level: string, message: string, args: unknown[]): void => {
    const extra = args.length
      ? ` ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`
      : '';
    process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${level} ${message}${extra}\n`);
  };
  return {
    debug: (m, ...a) => {
      if (options.verbose) write('debug', m, a);
    },
    info: (m, ...a) => write('info ', m, a),
    warn: (m, ...a) => write('warn ', m, a),
    error: (m, ...a) => write('error', m, a),
  };
}
