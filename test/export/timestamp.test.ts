import {
  formatTicks,
  nextUtcMidnight,
  parseTimestamp,
  timestampFromMs,
  utcDatePath,
} from '../../src/export/timestamp';

describe('parseTimestamp', () => {
  it('keeps all 7 fractional digits, which Date would truncate to milliseconds', () => {
    const a = parseTimestamp('2025-03-02T09:15:40.1966667Z')!;
    const b = parseTimestamp('2025-03-02T09:15:40.196Z')!;
    expect(a.ticks - b.ticks).toBe(6667n);
  });

  it('compares trimmed fractions by value, not by text', () => {
    expect(parseTimestamp('2025-03-02T09:15:40Z')!.ticks).toBeLessThan(
      parseTimestamp('2025-03-02T09:15:40.1Z')!.ticks,
    );
    expect(parseTimestamp('2025-03-02T09:15:40.2Z')!.ticks).toBe(
      parseTimestamp('2025-03-02T09:15:40.2000000Z')!.ticks,
    );
  });

  it('applies offsets', () => {
    expect(parseTimestamp('2025-03-02T10:15:40.5+01:00')!.ticks).toBe(
      parseTimestamp('2025-03-02T09:15:40.5Z')!.ticks,
    );
  });

  it.each([
    '',
    '2025-03-02',
    '2025-02-30T00:00:00Z',
    '2025-03-02T09:15:40.12345678Z',
    '2025-03-02T25:00:00Z',
    42,
    null,
  ])('refuses %p', (text) => {
    expect(parseTimestamp(text)).toBeUndefined();
  });
});

describe('formatTicks', () => {
  it('round-trips through parse with 7 digits', () => {
    const t = parseTimestamp('2025-03-02T09:15:40.0733333Z')!;
    expect(formatTicks(t.ticks)).toBe('2025-03-02T09:15:40.0733333Z');
    expect(parseTimestamp(formatTicks(t.ticks))!.ticks).toBe(t.ticks);
  });

  it('formats milliseconds', () => {
    expect(timestampFromMs(Date.UTC(2026, 0, 2, 3, 4, 5, 6)).text).toBe('2026-01-02T03:04:05.0060000Z');
  });
});

describe('days', () => {
  it('finds the next UTC midnight and the date folder', () => {
    const t = parseTimestamp('2026-11-24T23:59:59.9999999Z')!;
    expect(formatTicks(nextUtcMidnight(t.ticks))).toBe('2026-11-25T00:00:00.0000000Z');
    expect(formatTicks(nextUtcMidnight(parseTimestamp('2026-11-25T00:00:00Z')!.ticks))).toBe(
      '2026-11-26T00:00:00.0000000Z',
    );
    expect(utcDatePath(t.ticks)).toBe('2026/11/24');
  });
});
