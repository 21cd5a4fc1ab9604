import { parseTimestamp } from '../../src/export/timestamp';
import { ConfigError } from '../../src/errors';
import { contains, overlaps, parseTimeRange } from '../../src/operations/timeRange';
import { compareVersions } from '../../src/operations/versionsFile';

const t = (text: string): bigint => parseTimestamp(text)!.ticks;
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);

describe('parseTimeRange', () => {
  it('takes a date as its whole UTC day and a date-time exactly, to 100 ns', () => {
    expect(parseTimeRange('2026-11-24', '2026-11-25', NOW)).toEqual({
      fromTicks: t('2026-11-24T00:00:00Z'),
      toTicks: t('2026-11-26T00:00:00Z'),
    });
    expect(parseTimeRange('2026-11-24T06:00:00.1234567Z', '2026-11-24T09:00:00+02:00', NOW)).toEqual({
      fromTicks: t('2026-11-24T06:00:00.1234567Z'),
      toTicks: t('2026-11-24T07:00:00Z'),
    });
    expect(parseTimeRange('2026-11-24', undefined, NOW).toTicks).toBe(BigInt(NOW) * 10_000n);
  });

  it('reports every problem at once, naming the option', () => {
    let thrown: unknown;
    try {
      parseTimeRange('2026-02-30', 'yesterday', NOW);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems).toEqual([
      "--from is '2026-02-30': expected a UTC date (2026-11-24) or a date-time with a zone (2026-11-24T06:00:00Z).",
      "--to is 'yesterday': expected a UTC date (2026-11-24) or a date-time with a zone (2026-11-24T06:00:00Z).",
    ]);
    expect(() => parseTimeRange('2026-11-24T00:00:00Z', '2026-11-24T00:00:00Z', NOW)).toThrow(
      /range is empty/,
    );
    expect(() => parseTimeRange(undefined, undefined, NOW)).toThrow(/--from is missing/);
  });

  it('meets blob windows and versions at the exact bounds', () => {
    const range = parseTimeRange('2026-11-24T06:00:00Z', '2026-11-24T07:00:00Z', NOW);
    expect(contains(range, t('2026-11-24T06:00:00Z'))).toBe(true);
    expect(contains(range, t('2026-11-24T06:59:59.9999999Z'))).toBe(true);
    expect(contains(range, t('2026-11-24T07:00:00Z'))).toBe(false);
    expect(overlaps(range, t('2026-11-24T05:00:00Z'), t('2026-11-24T06:00:00Z'))).toBe(true);
    expect(overlaps(range, t('2026-11-24T05:00:00Z'), t('2026-11-24T05:59:59.9999999Z'))).toBe(false);
    expect(overlaps(range, t('2026-11-24T07:00:00Z'), t('2026-11-24T08:00:00Z'))).toBe(false);
  });
});

describe('compareVersions', () => {
  it('orders by exact ticks, then by id numerically when both are numbers', () => {
    const v = (id: string, text: string) => ({ id, ticks: t(text) });
    const sorted = [
      v('10', '2026-11-24T06:00:00.0000001Z'),
      v('9', '2026-11-24T06:00:00.0000001Z'),
      v('b', '2026-11-24T06:00:00Z'),
      v('a', '2026-11-24T06:00:00Z'),
      v('100', '2026-11-24T06:00:00Z'),
    ].sort(compareVersions);
    expect(sorted.map((x) => x.id)).toEqual(['100', 'a', 'b', '9', '10']);
  });
});
