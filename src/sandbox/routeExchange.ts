import type { IncomingHttpHeaders } from 'node:http';

/** A request to the simulated tenant, as its routes see it (from the HTTPS server or an in-memory transport). */
export interface RouteRequest {
  readonly method: string;
  readonly url: URL;
  /** Lower-case names, as Node gives them. */
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * How an answer leaves the tenant: whole; cut halfway and the connection dropped; the connection reset before
 * any answer; or never (the client's timeout ends the request).
 */
export type Delivery = 'whole' | 'truncated' | 'reset' | 'hang';

/** The answer a route builds; the HTTPS adapter or the in-memory transport delivers it. */
export class RouteResponse {
  status = 200;
  /** Lower-case names. */
  readonly headers: Record<string, string> = {};
  body: Buffer = Buffer.alloc(0);
  delivery: Delivery = 'whole';
  private written = false;
  private readonly sentCallbacks: (() => void)[] = [];

  get headersSent(): boolean {
    return this.written;
  }

  setHeader(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  writeHead(status: number, headers: Record<string, string> = {}): void {
    this.status = status;
    for (const [name, value] of Object.entries(headers)) this.setHeader(name, value);
    this.written = true;
  }

  end(text = ''): void {
    this.written = true;
    this.body = Buffer.from(text);
  }

  /** Runs once the answer has been delivered (as `finish` of a Node response). */
  onSent(callback: () => void): void {
    this.sentCallbacks.push(callback);
  }

  /** Called by whoever delivered the answer. */
  sent(): void {
    for (const callback of this.sentCallbacks) callback();
  }
}

/** What a test can make the simulated tenant do instead of answering normally. */
export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'truncate' }
  | { kind: 'nextLink'; url: string }
  /** Answer normally, but let the test change the page document first (hostile content). */
  | { kind: 'corrupt'; mutate: (document: { value: Record<string, unknown>[] }) => void };
