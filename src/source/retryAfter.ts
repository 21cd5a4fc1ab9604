/**
 * How long a throttled or unavailable service asks us to wait, in ms, or undefined when it does not say.
 * Sources, in order: `retry-after-ms` / `x-ms-retry-after-ms` (Azure), `Retry-After` as seconds or an
 * HTTP-date (RFC 9110), and the legacy Defender API's body text "You can send requests again in N seconds"
 * (docs/incidents-api.md#rate-limits-and-retry-after).
 */
export function retryAfterInMs(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: string,
  nowMs: number,
): number | undefined {
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const ms = Number(first(headers[name]));
    if (first(headers[name]) !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  }
  const retryAfter = first(headers['retry-after'])?.trim();
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Number(retryAfter) * 1000;
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - nowMs);
  }
  const match = /again in (\d+) seconds?/i.exec(body);
  return match ? Number(match[1]) * 1000 : undefined;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
