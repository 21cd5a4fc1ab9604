import { parseTimestamp } from '../export/timestamp';

/** A compiled `$filter`: true when the field values of an incident match. */
export type FilterPredicate = (fields: Readonly<Record<string, string | null>>) => boolean;

export class FilterSyntaxError extends Error {}

type Token = { kind: 'open' | 'close' } | { kind: 'word'; text: string } | { kind: 'string'; text: string };

const COMPARISONS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);

/** Parsed datetimes, shared by every filter: a large tenant is filtered on every page request. */
const TICKS = new Map<string, bigint | undefined>();

function ticksOf(text: string): bigint | undefined {
  if (!TICKS.has(text)) {
    if (TICKS.size > 1_000_000) TICKS.clear();
    TICKS.set(text, parseTimestamp(text)?.ticks);
  }
  return TICKS.get(text);
}

/**
 * Parses the small OData filter grammar the incidents APIs accept: `eq ne gt ge lt le and or ( )`, unquoted
 * datetime literals with 0–7 fractional digits compared at 100-ns precision, single-quoted strings, `null`.
 * `and` binds tighter than `or`. Fields outside `allowedFields` are refused, as the real APIs do.
 */
export function compileFilter(
  text: string,
  allowedFields: readonly string[],
  dateFields: readonly string[],
  /** 'ms': datetimes are compared after truncating both sides to milliseconds (a coarser service). */
  precision: 'exact' | 'ms' = 'exact',
): FilterPredicate {
  const coarse = (ticks: bigint): bigint => (precision === 'ms' ? ticks - (ticks % 10_000n) : ticks);
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const word = (t: Token | undefined): string | undefined =>
    t?.kind === 'word' ? t.text.toLowerCase() : undefined;

  const parseOr = (): FilterPredicate => {
    const parts = [parseAnd()];
    while (word(peek()) === 'or') {
      pos++;
      parts.push(parseAnd());
    }
    return parts.length === 1 ? parts[0]! : (f) => parts.some((p) => p(f));
  };
  const parseAnd = (): FilterPredicate => {
    const parts = [parsePrimary()];
    while (word(peek()) === 'and') {
      pos++;
      parts.push(parsePrimary());
    }
    return parts.length === 1 ? parts[0]! : (f) => parts.every((p) => p(f));
  };
  const parsePrimary = (): FilterPredicate => {
    const t = tokens[pos++];
    if (t?.kind === 'open') {
      const inner = parseOr();
      if (tokens[pos++]?.kind !== 'close') throw new FilterSyntaxError('missing )');
      return inner;
    }
    if (t?.kind !== 'word') throw new FilterSyntaxError(`unexpected ${t ? t.kind : 'end of filter'}`);
    const field = allowedFields.find((f) => f.toLowerCase() === t.text.toLowerCase());
    if (!field) throw new FilterSyntaxError(`Could not find a property named '${t.text}'`);
    const op = word(tokens[pos++]);
    if (!op || !COMPARISONS.has(op)) throw new FilterSyntaxError(`expected a comparison after '${t.text}'`);
    const literal = tokens[pos++];
    if (literal?.kind !== 'word' && literal?.kind !== 'string')
      throw new FilterSyntaxError(`expected a value after '${op}'`);
    if (dateFields.includes(field)) {
      if (literal.kind !== 'word') throw new FilterSyntaxError(`a datetime literal is not quoted: ${field}`);
      const value = parseTimestamp(literal.text);
      if (!value) throw new FilterSyntaxError(`'${literal.text}' is not a valid datetime`);
      return (f) => {
        const actual = f[field];
        const ticks = actual ? ticksOf(actual) : undefined;
        return ticks !== undefined && compare(coarse(ticks), coarse(value.ticks), op);
      };
    }
    const raw = literal.text;
    const expected = literal.kind === 'string' ? raw : raw.toLowerCase() === 'null' ? null : raw;
    return (f) => {
      const actual = f[field] ?? null;
      if (op === 'eq') return eqi(actual, expected);
      if (op === 'ne') return !eqi(actual, expected);
      return actual !== null && expected !== null && compare(actual.localeCompare(expected), 0, op);
    };
  };

  const predicate = parseOr();
  if (pos !== tokens.length) throw new FilterSyntaxError('unexpected text after the filter');
  return predicate;
}

function eqi(a: string | null, b: string | null): boolean {
  return a === null || b === null ? a === b : a.toLowerCase() === b.toLowerCase();
}

function compare<T extends bigint | number>(a: T, b: T, op: string): boolean {
  switch (op) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    case 'gt':
      return a > b;
    case 'ge':
      return a >= b;
    case 'lt':
      return a < b;
    default:
      return a <= b;
  }
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c === '(' ? 'open' : 'close' });
      i++;
    } else if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError('unterminated string');
        if (text[i] === "'" && text[i + 1] === "'") {
          value += "'";
          i += 2;
        } else if (text[i] === "'") {
          i++;
          break;
        } else value += text[i++];
      }
      tokens.push({ kind: 'string', text: value });
    } else {
      let j = i;
      while (j < text.length && !/[\s()']/.test(text[j]!)) j++;
      tokens.push({ kind: 'word', text: text.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}
