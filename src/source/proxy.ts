import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import type { ProxySetting, ProxySettings } from '../config';

/** The proxy to reach `target` through, or undefined to connect directly (no proxy set, or NO_PROXY). */
export function proxyFor(target: URL, settings: ProxySettings): ProxySetting | undefined {
  const proxy = target.protocol === 'https:' ? settings.https : settings.http;
  if (!proxy) return undefined;
  const host = target.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const bypassed = settings.noProxy.some((entry) => {
    if (entry === '*') return true;
    const bare = entry.replace(/^\[(.*)\]$/, '$1');
    // As the Azure SDK: '.contoso.com' covers contoso.com and its subdomains; 'contoso.com' only itself.
    return bare.startsWith('.') ? host.endsWith(bare) || host === bare.slice(1) : host === bare;
  });
  return bypassed ? undefined : proxy;
}

/** A proxy for messages: scheme, host and port, never the credentials. */
export function describeProxy(proxy: ProxySetting): string {
  const url = new URL(proxy.url);
  return `proxy ${url.protocol}//${url.host} (${proxy.variable})`;
}

/** A proxy's password, decoded, to register for redaction; undefined without one. */
export function proxyPassword(proxy: ProxySetting): string | undefined {
  const url = new URL(proxy.url);
  return url.password ? decodeURIComponent(url.password) : undefined;
}

type ConnectCallback = (error: Error | null, socket?: Socket) => void;

/**
 * Opens an HTTP CONNECT tunnel to `host:port` through the proxy (RFC 9110 §9.3.6), with Basic credentials
 * from the proxy URL. Errors name the proxy without its credentials.
 */
function openTunnel(
  proxy: ProxySetting,
  host: string,
  port: number,
  timeoutInMs: number,
  callback: ConnectCallback,
): void {
  const url = new URL(proxy.url);
  const name = describeProxy(proxy);
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { Host: authority };
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  let settled = false;
  const settle = (error: Error | null, socket?: Socket): void => {
    if (settled) {
      socket?.destroy();
      return;
    }
    settled = true;
    callback(error, socket);
  };
  const request = (url.protocol === 'https:' ? https : http).request({
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    method: 'CONNECT',
    path: authority,
    headers,
    agent: false,
    timeout: timeoutInMs,
  });
  request.once('connect', (response: http.IncomingMessage, socket: Socket, head: Buffer) => {
    if (response.statusCode !== 200) {
      socket.destroy();
      const hint =
        response.statusCode === 407
          ? ': it wants credentials, give them in the proxy URL (http://user:password@host:port)'
          : '';
      settle(
        new Error(`the ${name} refused the tunnel to ${authority} (HTTP ${response.statusCode}${hint})`),
      );
      return;
    }
    if (head.length > 0) socket.unshift(head);
    settle(null, socket);
  });
  request.once('timeout', () =>
    request.destroy(new Error(`the ${name} did not answer within ${timeoutInMs} ms`)),
  );
  request.once('error', (e: NodeJS.ErrnoException) =>
    settle(
      new Error(
        e.message.startsWith(`the ${name}`)
          ? e.message
          : `could not reach the ${name}: ${e.code ? `${e.code} ` : ''}${e.message}`,
      ),
    ),
  );
  request.end();
}

export interface ProxyAgentOptions extends https.AgentOptions {
  /** How long the proxy may take to open a tunnel. Default 60 s. */
  readonly tunnelTimeoutInMs?: number;
}

/**
 * An `https.Agent` that reaches every host through an HTTP CONNECT tunnel of the proxy and speaks TLS to the
 * target inside it, with the agent's TLS options (the CA among them). Sockets are pooled as by any agent.
 */
export class HttpsProxyAgent extends https.Agent {
  constructor(
    private readonly proxy: ProxySetting,
    private readonly agentOptions: ProxyAgentOptions = {},
  ) {
    super(agentOptions);
  }

  override createConnection(
    options: https.RequestOptions,
    callback?: (error: Error | null, stream: Socket) => void,
  ): undefined {
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 443);
    openTunnel(this.proxy, host, port, this.agentOptions.tunnelTimeoutInMs ?? 60_000, (error, socket) => {
      if (error || !socket) {
        callback?.(error ?? new Error('no tunnel'), undefined as unknown as Socket);
        return;
      }
      // TLS to the target runs inside the tunnel: host (and servername) for the certificate check, no port or path.
      const tlsOptions = { ...(options as tls.ConnectionOptions & { path?: string }), host, socket };
      delete tlsOptions.port;
      delete tlsOptions.path;
      callback?.(null, tls.connect(tlsOptions));
    });
    return undefined;
  }
}

/** An `http.Agent` for plain-http targets through an HTTP CONNECT tunnel of the proxy. */
export class HttpProxyAgent extends http.Agent {
  constructor(
    private readonly proxy: ProxySetting,
    private readonly agentOptions: http.AgentOptions & { tunnelTimeoutInMs?: number } = {},
  ) {
    super(agentOptions);
  }

  override createConnection(
    options: http.ClientRequestArgs,
    callback?: (error: Error | null, stream: Socket) => void,
  ): undefined {
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 80);
    openTunnel(this.proxy, host, port, this.agentOptions.tunnelTimeoutInMs ?? 60_000, (error, socket) => {
      callback?.(error, socket as Socket);
    });
    return undefined;
  }
}
