import { retryAfterInMs } from '../../src/source/retryAfter';

const NOW = Date.UTC(2026, 2, 1, 12, 0, 0);

describe('retryAfterInMs', () => {
  it('prefers the Azure millisecond headers, then Retry-After in seconds', () => {
    expect(retryAfterInMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, '', NOW)).toBe(1500);
    expect(retryAfterInMs({ 'x-ms-retry-after-ms': '250' }, '', NOW)).toBe(250);
    expect(retryAfterInMs({ 'retry-after': '7' }, '', NOW)).toBe(7000);
    expect(retryAfterInMs({ 'retry-after': ' 2.5 ' }, '', NOW)).toBe(2500);
    expect(retryAfterInMs({ 'retry-after': ['3', '4'] }, '', NOW)).toBe(3000);
  });

  it('reads Retry-After as an HTTP date against the given clock, never negative', () => {
    expect(retryAfterInMs({ 'retry-after': new Date(NOW + 30_000).toUTCString() }, '', NOW)).toBe(30_000);
    expect(retryAfterInMs({ 'retry-after': new Date(NOW - 30_000).toUTCString() }, '', NOW)).toBe(0);
  });

  it("falls back to the legacy API's body text, and otherwise says nothing", () => {
    const body =
      'API calls quota exceeded! Maximum allowed 50 per 00:01:00 for the key Destination+TenantID+AppID. You can send requests again in 42 seconds.';
    expect(retryAfterInMs({}, body, NOW)).toBe(42_000);
    expect(retryAfterInMs({}, 'try again in 1 second', NOW)).toBe(1000);
    expect(retryAfterInMs({ 'retry-after-ms': '-5', 'retry-after': 'soon' }, 'busy', NOW)).toBeUndefined();
    expect(retryAfterInMs({}, '', NOW)).toBeUndefined();
  });
});
