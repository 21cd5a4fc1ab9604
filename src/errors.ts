/**
 * The error taxonomy of the product. Every error a run or a command stops on is one of these, and each says
 * what to do about it with {@link ClassifiedError.isTransient}:
 * - transient (`true`): a later run gets past it by itself (network, HTTP 5xx, throttling, timeouts, Storage
 *   unavailable, another run holding the checkpoint). Alert only when it repeats.
 * - operator (`false`): someone must act (a 403, a missing Key Vault secret, bad settings, a malformed or
 *   foreign blob); running again changes nothing.
 *
 * The classes say where it failed:
 * - {@link ConfigError}: a setting is wrong; fail fast and never retry.
 * - {@link ApiError}: an HTTP service answered with an error (or did not answer); status, redacted request line,
 *   response excerpt and `cause`.
 * - {@link ExportError}: anything else that stops a run, with a message that names the resource and the fix;
 *   its {@link StorageError} says Blob Storage refused or failed (container, blob, status, code).
 * - {@link ConcurrentRunError}: another run holds or advanced the checkpoint.
 * Messages never contain secrets or tokens: {@link redact} scrubs anything that looks like one.
 */

/** Where a run failed: the class of its error, or `unexpected` for anything else (a bug). */
export type FailureKind = 'config' | 'api' | 'storage' | 'concurrent' | 'export' | 'unexpected';

/** The base of the product's errors: each says where it failed and whether a later run can get past it. */
export abstract class ClassifiedError extends Error {
  abstract readonly kind: Exclude<FailureKind, 'unexpected'>;
  /** True when a later run can get past this by itself; false when an operator must act first. */
  abstract readonly isTransient: boolean;
}

export class ConfigError extends ClassifiedError {
  override readonly name = 'ConfigError';
  readonly kind = 'config';
  readonly isTransient = false;
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
  /** The HTTP status, or 0 when no answer came (connection refused or reset, timeout). */
  status: number;
  method: string;
  url: string;
  /** First characters of the response body, redacted. */
  responseExcerpt?: string;
  cause?: unknown;
  /** Default: by the status (see {@link isTransientStatus}). */
  isTransient?: boolean;
}

/** HTTP statuses a later attempt can get past: no answer (0), 408, 429 and 5xx. */
export function isTransientStatus(status: number): boolean {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

export class ApiError extends ClassifiedError {
  override readonly name = 'ApiError';
  readonly kind = 'api';
  readonly isTransient: boolean;
  readonly status: number;
  readonly method: string;
  readonly url: string;
  readonly responseExcerpt: string | undefined;
  constructor(message: string, details: ApiErrorDetails) {
    super(redact(message), details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.method = details.method;
    this.url = redact(details.url);
    this.responseExcerpt =
      details.responseExcerpt === undefined ? undefined : redact(details.responseExcerpt);
    this.isTransient = details.isTransient ?? isTransientStatus(details.status);
  }
}

/**
 * A failure that stops a run, with a message that names what to fix. Operator by default: `isTransient: true`
 * says that a later run gets past it by itself (out of time while retrying, a service that keeps failing).
 */
export class ExportError extends ClassifiedError {
  override readonly name: string = 'ExportError';
  readonly kind: 'export' | 'storage' = 'export';
  readonly isTransient: boolean;
  constructor(message: string, options: { cause?: unknown; isTransient?: boolean } = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.isTransient = options.isTransient ?? false;
  }
}

export interface StorageErrorDetails {
  /** The container the action was on. */
  container: string;
  /** The blob the action was on, when there was one. */
  blob?: string;
  /** The HTTP status Storage answered, when it answered. */
  status?: number;
  /** Storage's error code (`x-ms-error-code`), or a network error code. */
  code?: string;
  isTransient: boolean;
  cause?: unknown;
}

/** Blob Storage refused or failed an action: an {@link ExportError} that names the container, blob, status and code. */
export class StorageError extends ExportError {
  override readonly name: string = 'StorageError';
  override readonly kind = 'storage';
  readonly container: string;
  readonly blob: string | undefined;
  readonly status: number | undefined;
  readonly code: string | undefined;
  constructor(message: string, details: StorageErrorDetails) {
    super(message, {
      isTransient: details.isTransient,
      ...(details.cause === undefined ? {} : { cause: details.cause }),
    });
    this.container = details.container;
    this.blob = details.blob;
    this.status = details.status;
    this.code = details.code;
  }
}

/** Another run holds or advanced the checkpoint: not a crash, this run stops and says so; the next run goes on. */
export class ConcurrentRunError extends ClassifiedError {
  override readonly name = 'ConcurrentRunError';
  readonly kind = 'concurrent';
  readonly isTransient = true;
}

/** Where anything thrown failed, and whether a later run can get past it (a bug cannot). */
export function classifyFailure(thrown: unknown): { kind: FailureKind; transient: boolean } {
  return thrown instanceof ClassifiedError
    ? { kind: thrown.kind, transient: thrown.isTransient }
    : { kind: 'unexpected', transient: false };
}

const SECRET_PATTERNS: RegExp[] = [
  // Authorization headers and bearer tokens.
  /(authorization["']?\s*[:=]\s*["']?)(?:bearer\s+)?[^\s"',}]+/gi,
  /\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*/gi,
  // JWT-shaped strings (tokens, client assertions), also cut short before the signature (a truncated excerpt).
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*)?/g,
  // PEM private keys (a certificate's secret), also cut short.
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
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

/** How deep {@link toError} copies a chain of causes. */
const MAX_CAUSE_DEPTH = 5;

/**
 * Turns anything thrown into an Error with a redacted message, keeping the product's errors as they are (their
 * messages are redacted when made). Another Error keeps its name, its stack and its `cause` (each redacted too),
 * so a log of it still shows where it came from.
 */
export function toError(thrown: unknown, depth = 0): Error {
  if (thrown instanceof ClassifiedError) return thrown;
  if (thrown instanceof Error) {
    const cause =
      thrown.cause === undefined || depth >= MAX_CAUSE_DEPTH ? undefined : toError(thrown.cause, depth + 1);
    const e = new Error(redact(thrown.message), cause === undefined ? undefined : { cause });
    e.name = thrown.name;
    if (thrown.stack !== undefined) e.stack = redact(thrown.stack);
    return e;
  }
  return new Error(redact(String(thrown)));
}
