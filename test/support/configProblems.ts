import { parseConfig } from '../../src/config';
import { ConfigError } from '../../src/errors';

/** The problems parseConfig reports for `env`; fails the test when it accepts it or throws anything else. */
export function configProblems(env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
