/**
 * The few error types of the product. Each one tells a caller what to do:
 * - {@link ConfigError}: a setting is wrong; fail fast and never retry.
 * - {@link ApiError}: an HTTP service answered with an error; carries status, a redacted request line and an
 *   excerpt of the response.
 * - {@link ExportError}: anything else that stops a run, with a message that names the resource and the fix.
 * Messages never contain secrets or tokens: {@link redact} scrubs anything that looks like one.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** One line per bad or missing setting. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    const redacted = problems.map(redact);
    super(
      `Invalid configuration (${redacted.length} problem${redacted.length === 1 ? '' : 's'}):\n` +
        redacted.map((p) => `  - ${p}`).join('\n'),
    );
    this.problems = redacted;
  }
}

export interface ApiErrorDetails {
  status: number;
  method: string;
  url: string;
  /** First characters of the response body, redacted. */
  responseExcerpt?: string;
  /** API error code from the body, when there is one. */
  code?: string;
  cause?: unknown;
  isRetryable?: boolean;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly method: string;
  readonly url: string;
  readonly responseExcerpt: string | undefined;
  readonly code: string | undefined;
  readonly isRetryable: boolean;
  constructor(message: string, details: ApiErrorDetails) {
    super(redact(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.method = details.method;
    this.url = redact(details.url);
    this.responseExcerpt =
      details.responseExcerpt === undefined ? undefined : redact(details.responseExcerpt);
    this.code = details.code;
    this.isRetryable = details.isRetryable ?? false;
  }
}

/** A failure that names what to fix; retrying the same run will not help. */
export class ExportError extends Error {
  override readonly name = 'ExportError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(redact(message), options);
  }
}

/** Another run holds or advanced the checkpoint: not a crash, this run stops and says so. */
export class ConcurrentRunError extends Error {
  override readonly name = 'ConcurrentRunError';
}

const SECRET_PATTERNS: RegExp[] = [
  // Authorization headers and bearer tokens.
  /(authorization["']?\s*[:=]\s*["']?)(?:bearer\s+)?[^\s"',}]+/gi,
  /\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*/gi,
  // JWT-shaped strings.
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g,
  // Form or JSON fields that carry secrets.
  /((?:client_secret|access_token|refresh_token|client_assertion|password|AccountKey|SharedAccessSignature|sig)["']?\s*[=:]\s*["']?)[^&\s"';,}]+/gi,
];

/** Secrets that live as long as the process (client secret, proxy password): never dropped. */
const longLivedSecrets = new Set<string>();
/** Short-lived values (access tokens): they rotate hourly for years, so only the most recent are kept. */
const recentTokens = new Set<string>();
const MAX_RECENT_TOKENS = 32;

/**
 * Registers a secret value so {@link redact} removes it wherever it appears. A `longLived` secret (the client
 * secret, a proxy password) stays registered for the life of the process; other values (access tokens) go into
 * a bounded set of the most recent ones, since a warm worker issues a new one every hour.
 */
export function registerSecret(value: string | undefined, options: { longLived?: boolean } = {}): void {
  if (value === undefined || value.length < 6 || longLivedSecrets.has(value)) return;
  if (options.longLived) {
    recentTokens.delete(value);
    longLivedSecrets.add(value);
    return;
  }
  // Re-adding moves a value to the newest end.
  recentTokens.delete(value);
  recentTokens.add(value);
  if (recentTokens.size > MAX_RECENT_TOKENS) {
    const oldest = recentTokens.values().next().value;
    if (oldest !== undefined) recentTokens.delete(oldest);
  }
}

/** Removes secrets, tokens and Authorization values from a text. */
export function redact(text: string): string {
  let out = text;
  for (const secret of longLivedSecrets) out = out.split(secret).join('[REDACTED]');
  for (const secret of recentTokens) out = out.split(secret).join('[REDACTED]');
  for (const pattern of SECRET_PATTERNS) {
    out = out.replace(pattern, (_m, prefix: string | undefined) =>
      typeof prefix === 'string' ? `${prefix}[REDACTED]` : '[REDACTED]',
    );
  }
  return out;
}

/** Turns anything thrown into an Error with a redacted message, keeping known types as they are. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof ConfigError || thrown instanceof ApiError || thrown instanceof ExportError)
    return thrown;
  if (thrown instanceof Error) {
    const e = new Error(redact(thrown.message));
    e.name = thrown.name;
    return e;
  }
  return new Error(redact(String(thrown)));
}
