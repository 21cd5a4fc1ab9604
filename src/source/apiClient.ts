import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { SourceStats } from '../export/ports';
import { ApiError, ExportError, redact } from '../errors';
import type { Logger } from '../logger';
import { sleep as defaultSleep } from './rateLimiter';
import { retryAfterInMs } from './retryAfter';
import type { PacerPermit, RequestPacer } from './adaptivePacer';

export interface ApiClientOptions {
  /** Only URLs on this origin are ever requested; the token is never sent anywhere else. */
  readonly allowedOrigin: string;
  /** A bearer token; `forceRefresh` after a 401 must fetch a new one. */
  readonly getToken: (options: { forceRefresh: boolean; abortSignal?: AbortSignal }) => Promise<string>;
  readonly logger: Logger;
  readonly agent?: https.Agent;
  /** Agent for plain-http origins (the local sandbox on 127.0.0.1), e.g. a proxy tunnel. */
  readonly httpAgent?: http.Agent;
  /** Per request: connect, headers and body. Default 60 s. */
  readonly timeoutInMs?: number;
  /** Attempts for 429, 5xx, network errors and broken bodies. Default 6. */
  readonly maxAttempts?: number;
  readonly baseDelayInMs?: number;
  readonly maxDelayInMs?: number;
  /** A Retry-After longer than this (or than the remaining budget) ends the request instead of waiting. */
  readonly maxRetryAfterInMs?: number;
  readonly remainingBudgetInMs?: () => number;
  /**
   * Gives a permit before every attempt and learns from how it ended (src/source/adaptivePacer.ts): one pacer
   * serves every request of the process to this API, so concurrent chains share its rate and its pauses.
   */
  readonly pacer?: RequestPacer;
  readonly sleep?: (ms: number, abortSignal?: AbortSignal) => Promise<void>;
  readonly random?: () => number;
  readonly userAgent?: string;
  /** The run's clock (epoch ms), against which the API's `Date` header is measured. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Sends one request and gives the complete answer. Default: Node's https (http for a plain-http origin) with
   * {@link agent}/{@link httpAgent}. A transport must reject on a network failure or a cut body, and stop when
   * `abortSignal` fires (the caller's abort or this client's timeout).
   */
  readonly transport?: ApiTransport;
  /**
   * Explains a 401 (after the refresh) or a 403 from the token that was sent, e.g. which application permission
   * it lacks (src/source/apiPermissions.ts); replaces the generic hint. Must never return the token.
   */
  readonly explainRefusal?: (token: string, status: 401 | 403) => string;
}

/** One GET as a transport sends it. */
export interface ApiTransportRequest {
  readonly method: 'GET';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  /** Fires on the caller's abort or when the client's timeout runs out. */
  readonly abortSignal: AbortSignal;
}

/** A complete answer: status, headers with lower-case names, and the whole body. */
export interface ApiTransportResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export type ApiTransport = (request: ApiTransportRequest) => Promise<ApiTransportResponse>;

export interface RequestStats extends SourceStats {
  requests: number;
  retries: number;
  throttles: number;
}

type RawResponse = ApiTransportResponse;

/** A failure worth another attempt (network, timeout, broken body), as opposed to an answer. */
class TransientError extends Error {}

/**
 * GETs JSON from one API origin with a bearer token, the way the incidents APIs need it: a timeout on every
 * request, `Retry-After` on 429/503, backoff with full jitter on other 5xx and network failures, one token
 * refresh on 401, and no retry of 400/403/404. Errors carry status, method, URL and a redacted excerpt of the
 * response, never the Authorization header.
 */
export class ApiClient {
  readonly stats: RequestStats = { requests: 0, retries: 0, throttles: 0 };
  private readonly origin: string;
  private readonly agent: https.Agent;
  /** The API's clock minus ours, from the newest `Date` header (RFC 9110 §6.6.1: one-second resolution). */
  private clockOffsetInMs: number | undefined;

  constructor(private readonly o: ApiClientOptions) {
    this.origin = new URL(o.allowedOrigin).origin;
    this.agent = o.agent ?? new https.Agent({ keepAlive: true });
  }

  /**
   * The API's current time by its newest `Date` header (epoch ms), or undefined before any response carried one.
   * The header is truncated to the second, so the estimate adds the 999 ms it may have lost: it can be up to a
   * second ahead of the API, never behind it by more than the network delay.
   */
  serverNow(): number | undefined {
    return this.clockOffsetInMs === undefined ? undefined : this.now() + this.clockOffsetInMs + 999;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private observeDate(header: string | undefined): void {
    const serverMs = header === undefined ? NaN : Date.parse(header);
    if (Number.isFinite(serverMs)) this.clockOffsetInMs = serverMs - this.now();
  }

  async getJson(
    url: string,
    options: { headers?: Record<string, string>; abortSignal?: AbortSignal } = {},
  ): Promise<unknown> {
    const target = this.checkOrigin(url);
    const maxAttempts = this.o.maxAttempts ?? 6;
    let refreshed = false;
    let forceRefresh = false;
    for (let attempt = 1; ; attempt++) {
      options.abortSignal?.throwIfAborted();
      const token = await this.o.getToken({
        forceRefresh,
        ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
      });
      forceRefresh = false;
      let response: RawResponse;
      const permit: PacerPermit | undefined = await this.o.pacer?.acquire(options.abortSignal);
      try {
        this.stats.requests++;
        response = await this.send(target, token, options.headers ?? {}, options.abortSignal);
        this.observeDate(response.headers.date);
      } catch (thrown) {
        permit?.release({ status: 0 });
        if (options.abortSignal?.aborted) throw thrown;
        const reason = thrown instanceof Error ? thrown.message : String(thrown);
        if (attempt >= maxAttempts) {
          throw new ApiError(`GET ${describe(target)} failed after ${attempt} attempts: ${reason}`, {
            status: 0,
            method: 'GET',
            url: describe(target),
            cause: thrown,
          });
        }
        await this.backoff(attempt, undefined, `${reason}`, options.abortSignal);
        continue;
      }
      const { status } = response;
      const hinted =
        status === 429 || status === 503
          ? retryAfterInMs(response.headers, response.body.toString('utf8'), Date.now())
          : undefined;
      permit?.release({ status, ...(hinted !== undefined ? { retryAfterInMs: hinted } : {}) });
      if (status >= 200 && status < 300) {
        try {
          return JSON.parse(response.body.toString('utf8')) as unknown;
        } catch {
          // A cut or garbled body is usually a dropped connection; the same request normally succeeds again.
          if (attempt >= maxAttempts) {
            throw new ApiError(
              `GET ${describe(target)} returned a body that is not valid JSON (${response.body.length} bytes) ${attempt} times.`,
              {
                status,
                method: 'GET',
                url: describe(target),
                responseExcerpt: excerpt(response.body),
                isTransient: true,
              },
            );
          }
          await this.backoff(attempt, undefined, 'invalid JSON body', options.abortSignal);
          continue;
        }
      }
      if (status === 401 && !refreshed) {
        refreshed = true;
        forceRefresh = true;
        this.o.logger.debug(`GET ${describe(target)}: 401, getting a fresh token and trying once more.`);
        continue;
      }
      const retryable =
        status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
      if (!retryable || attempt >= maxAttempts) throw this.toError(target, response, attempt, token);
      if (status === 429) this.stats.throttles++;
      await this.backoff(attempt, hinted, `HTTP ${status}`, options.abortSignal, () =>
        this.toError(target, response, attempt),
      );
    }
  }

  private checkOrigin(url: string): URL {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new ExportError(`Refusing to request an invalid URL '${redact(url).slice(0, 200)}'.`);
    }
    if (target.origin !== this.origin) {
      throw new ExportError(
        `Refusing to send the API token to ${target.origin}: only ${this.origin} (DEFENDER_API_URL) is allowed.`,
      );
    }
    return target;
  }

  private async backoff(
    attempt: number,
    hintedInMs: number | undefined,
    reason: string,
    abortSignal?: AbortSignal,
    onTooLong?: () => Error,
  ): Promise<void> {
    const base = this.o.baseDelayInMs ?? 1_000;
    const cap = this.o.maxDelayInMs ?? 60_000;
    const random = this.o.random ?? Math.random;
    const delay = hintedInMs ?? Math.round(random() * Math.min(cap, base * 2 ** (attempt - 1)));
    const budget = this.o.remainingBudgetInMs?.() ?? Number.POSITIVE_INFINITY;
    if (
      hintedInMs !== undefined &&
      (hintedInMs > (this.o.maxRetryAfterInMs ?? 300_000) || hintedInMs > budget)
    ) {
      throw (
        onTooLong?.() ??
        new ExportError(
          `The API asked to wait ${Math.round(hintedInMs / 1000)} s, longer than this run can; the next run resumes.`,
          { isTransient: true },
        )
      );
    }
    if (delay > budget) {
      throw new ExportError(
        `Out of time while retrying (${reason}); the next run resumes from the checkpoint.`,
        { isTransient: true },
      );
    }
    this.stats.retries++;
    this.o.logger.debug(`Retrying in ${delay} ms after ${reason} (attempt ${attempt}).`);
    await (this.o.sleep ?? defaultSleep)(delay, abortSignal);
  }

  private send(
    target: URL,
    token: string,
    headers: Record<string, string>,
    abortSignal?: AbortSignal,
  ): Promise<RawResponse> {
    const allHeaders = {
      ...headers,
      Accept: 'application/json',
      Authorization: `Bearer ${token}`,
      'client-request-id': randomUUID(),
      'User-Agent': this.o.userAgent ?? 'defender-incident-export',
    };
    return this.o.transport
      ? this.sendThrough(this.o.transport, target, allHeaders, abortSignal)
      : this.sendHttps(target, allHeaders, abortSignal);
  }

  /** Through an injected transport, with the same timeout and the same transient failures as over https. */
  private async sendThrough(
    transport: ApiTransport,
    target: URL,
    headers: Record<string, string>,
    abortSignal?: AbortSignal,
  ): Promise<RawResponse> {
    const timeoutInMs = this.o.timeoutInMs ?? 60_000;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), timeoutInMs);
    try {
      return await transport({
        method: 'GET',
        url: target,
        headers,
        abortSignal: abortSignal ? AbortSignal.any([abortSignal, timeout.signal]) : timeout.signal,
      });
    } catch (thrown) {
      if (abortSignal?.aborted) throw thrown;
      if (timeout.signal.aborted) throw new TransientError(`no complete response within ${timeoutInMs} ms`);
      throw new TransientError(thrown instanceof Error ? thrown.message : String(thrown));
    } finally {
      clearTimeout(timer);
    }
  }

  private sendHttps(
    target: URL,
    headers: Record<string, string>,
    abortSignal?: AbortSignal,
  ): Promise<RawResponse> {
    const timeoutInMs = this.o.timeoutInMs ?? 60_000;
    const transport = target.protocol === 'https:' ? https : http;
    return new Promise<RawResponse>((resolve, reject) => {
      const request = transport.request(
        target,
        {
          method: 'GET',
          ...(target.protocol === 'https:'
            ? { agent: this.agent }
            : this.o.httpAgent
              ? { agent: this.o.httpAgent }
              : {}),
          headers,
          ...(abortSignal ? { signal: abortSignal } : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            clearTimeout(timer);
            if (!response.complete)
              reject(new TransientError('the connection closed before the response was complete'));
            else
              resolve({
                status: response.statusCode ?? 0,
                headers: response.headers,
                body: Buffer.concat(chunks),
              });
          });
          response.on('error', (e) => {
            clearTimeout(timer);
            reject(new TransientError(e.message));
          });
        },
      );
      const timer = setTimeout(
        () => request.destroy(new TransientError(`no complete response within ${timeoutInMs} ms`)),
        timeoutInMs,
      );
      request.on('error', (e) => {
        clearTimeout(timer);
        reject(
          e instanceof TransientError
            ? e
            : new TransientError(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim()),
        );
      });
      request.end();
    });
  }

  private toError(target: URL, response: RawResponse, attempts: number, token?: string): ApiError {
    const text = response.body.toString('utf8');
    let code: string | undefined;
    let message: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      code =
        typeof parsed.error?.code === 'string' && parsed.error.code !== '' ? parsed.error.code : undefined;
      message = typeof parsed.error?.message === 'string' ? parsed.error.message : undefined;
    } catch {
      // Not JSON: the excerpt tells what came back.
    }
    const where = `GET ${describe(target)}`;
    const hint =
      this.refusal(response.status, token) ??
      HINTS[response.status] ??
      (attempts > 1 ? `gave up after ${attempts} attempts` : '');
    return new ApiError(
      `${where} failed with HTTP ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message.slice(0, 300)}` : ''}${hint ? ` (${hint})` : ''}`,
      {
        status: response.status,
        method: 'GET',
        url: describe(target),
        responseExcerpt: excerpt(response.body),
      },
    );
  }

  /** {@link ApiClientOptions.explainRefusal} for a 401 or 403, undefined otherwise or when it fails. */
  private refusal(status: number, token: string | undefined): string | undefined {
    if ((status !== 401 && status !== 403) || token === undefined || !this.o.explainRefusal) return undefined;
    try {
      return this.o.explainRefusal(token, status);
    } catch {
      return undefined;
    }
  }
}

const HINTS: Record<number, string> = {
  400: 'the API refused the query; this is a bug in the exporter or an API change: report it with this message',
  401: 'the token was rejected even after a refresh: check that DEFENDER_API_URL is the API the app registration has permission for',
  403: 'the app registration lacks the application permission (Graph: SecurityIncident.Read.All; legacy: Incident.Read.All) or admin consent',
  404: 'check DEFENDER_API_URL and DEFENDER_API',
  429: 'still throttled after every retry; the next run resumes',
};

function describe(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function excerpt(body: Buffer): string {
  return redact(body.subarray(0, 500).toString('utf8'));
}
