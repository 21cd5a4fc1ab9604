/**
 * C0 and C1 control characters (ESC, CSI, BEL, NUL, ...) and the Unicode bidirectional overrides: a text read
 * from storage that holds them could move the cursor, recolour or clear the terminal, set its title, or make a
 * line read differently from what it holds (https://en.wikipedia.org/wiki/ANSI_escape_code,
 * https://trojansource.codes/).
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * A text that came from storage (a manifest, the checkpoint), made safe to print: tabs and line breaks become a
 * space, every other control character becomes U+FFFD, so tampering stays visible without acting on the terminal.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => (c === '\t' || c === '\n' || c === '\r' ? ' ' : '\uFFFD'));
}
