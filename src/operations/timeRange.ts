import { ConfigError } from '../errors';
import { floorMs, formatTicks, parseTimestamp, TICKS_PER_MS } from '../export/timestamp';

/** A half-open range of update times [from, to), in exact 100-ns ticks. */
export interface TimeRange {
  readonly fromTicks: bigint;
  readonly toTicks: bigint;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TICKS_PER_DAY = 86_400_000n * TICKS_PER_MS;

/**
 * Parses the `--from` and `--to` options of the CLI: a UTC date (`2026-11-24`, the whole day) or a date-time
 * with `Z` or an offset (`2026-11-24T06:00:00Z`). `from` is inclusive; a date as `to` includes that whole day,
 * a date-time is exclusive. Without `to` the range ends now. Throws a usage error that names the option.
 */
export function parseTimeRange(
  from: string | undefined,
  to: string | undefined,
  nowMs: number,
  names: { from: string; to: string } = { from: '--from', to: '--to' },
): TimeRange {
  const problems: string[] = [];
  const fromTicks = parseBound(from, names.from, false, problems);
  const toTicks = to === undefined ? BigInt(nowMs) * TICKS_PER_MS : parseBound(to, names.to, true, problems);
  if (from === undefined) problems.push(`${names.from} is missing: give a date such as 2026-11-24.`);
  if (problems.length === 0 && fromTicks !== undefined && toTicks !== undefined && fromTicks >= toTicks) {
    problems.push(
      `The range is empty: ${names.from} ${from} (${formatTicks(fromTicks)}) is not before ${to === undefined ? 'now' : `${names.to} ${to}`} (${formatTicks(toTicks)}).`,
    );
  }
  if (problems.length > 0 || fromTicks === undefined || toTicks === undefined)
    throw new ConfigError(problems);
  return { fromTicks, toTicks };
}

function parseBound(
  text: string | undefined,
  name: string,
  isEnd: boolean,
  problems: string[],
): bigint | undefined {
  if (text === undefined) return undefined;
  const date = DATE.exec(text);
  if (date) {
    const ts = parseTimestamp(`${text}T00:00:00Z`);
    if (ts) return isEnd ? ts.ticks + TICKS_PER_DAY : ts.ticks;
  } else {
    const ts = parseTimestamp(text);
    if (ts) return ts.ticks;
  }
  problems.push(
    `${name} is '${text}': expected a UTC date (2026-11-24) or a date-time with a zone (2026-11-24T06:00:00Z).`,
  );
  return undefined;
}

/** True when [fromTicks, toTicks] (both inclusive, as a blob's window) meets the range. */
export function overlaps(range: TimeRange, fromTicks: bigint, toTicks: bigint): boolean {
  return fromTicks < range.toTicks && toTicks >= range.fromTicks;
}

/** True when an update time lies in the range. */
export function contains(range: TimeRange, ticks: bigint): boolean {
  return ticks >= range.fromTicks && ticks < range.toTicks;
}

/** [from, to) in `parts` slices of equal span, their ends on millisecond boundaries. */
export function cutEvenly(from: bigint, to: bigint, parts: number): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  let start = from;
  for (let i = 1; i <= parts && start < to; i++) {
    const end = i === parts ? to : floorMs(from + ((to - from) * BigInt(i)) / BigInt(parts));
    if (end > start) {
      out.push([start, end]);
      start = end;
    }
  }
  return out;
}
