/**
 * Defender timestamps carry up to 7 fractional digits (100-ns ticks) with trailing zeros trimmed
 * (`…:40.27Z`, `…:40.1966667Z`). JavaScript `Date` keeps milliseconds only, and comparing the strings
 * lexically is wrong (`…:40Z` vs `…:40.1Z`), so every comparison goes through exact tick counts.
 * See docs/incidents-api.md#timestamps-seven-fractional-digits.
 */

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(Z|[+-]\d{2}:\d{2})$/;

/** A timestamp as the API wrote it, and its exact position in 100-ns ticks since the Unix epoch. */
export interface Timestamp {
  readonly text: string;
  readonly ticks: bigint;
}

export const TICKS_PER_MS = 10_000n;

/** The start of the millisecond that `ticks` falls in. */
export function floorMs(ticks: bigint): bigint {
  return ticks - (ticks % TICKS_PER_MS);
}

/** Parses an ISO-8601 timestamp with 0–7 fractional digits and `Z` or an offset; undefined if it is not one. */
export function parseTimestamp(text: unknown): Timestamp | undefined {
  if (typeof text !== 'string') return undefined;
  const m = TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (
    Number.isNaN(ms) ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59
  ) {
    return undefined;
  }
  let offsetMs = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offsetMs = sign * (Number(zone.slice(1, 3)) * 3_600_000 + Number(zone.slice(4, 6)) * 60_000);
  }
  const fractionTicks = BigInt((fraction ?? '').padEnd(7, '0'));
  return { text, ticks: BigInt(ms - offsetMs) * TICKS_PER_MS + fractionTicks };
}

/** Formats ticks as UTC with exactly 7 fractional digits, a literal every OData filter accepts. */
export function formatTicks(ticks: bigint): string {
  const ms = ticks / TICKS_PER_MS;
  const rest = ticks % TICKS_PER_MS;
  const iso = new Date(Number(ms)).toISOString(); // yyyy-mm-ddThh:mm:ss.mmmZ
  const fraction = iso.slice(20, 23) + rest.toString().padStart(4, '0');
  return `${iso.slice(0, 19)}.${fraction}Z`;
}

/** A timestamp for an epoch-millisecond instant. */
export function timestampFromMs(ms: number): Timestamp {
  const ticks = BigInt(Math.floor(ms)) * TICKS_PER_MS;
  return { text: formatTicks(ticks), ticks };
}

/** Milliseconds since the epoch (rounded down) for ticks. */
export function ticksToMs(ticks: bigint): number {
  return Number(ticks / TICKS_PER_MS);
}

const TICKS_PER_DAY = 86_400_000n * TICKS_PER_MS;

/** The first instant of the UTC day after the one that contains `ticks`. */
export function nextUtcMidnight(ticks: bigint): bigint {
  return (ticks / TICKS_PER_DAY + 1n) * TICKS_PER_DAY;
}

/** `YYYY/MM/DD` of the UTC day that contains `ticks`. */
export function utcDatePath(ticks: bigint): string {
  return new Date(ticksToMs(ticks)).toISOString().slice(0, 10).replace(/-/g, '/');
}
