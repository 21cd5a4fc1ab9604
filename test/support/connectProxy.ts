import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

/**
 * An HTTP CONNECT proxy on 127.0.0.1 that counts the tunnels it opened, by target (`host:port`). It can ask
 * for credentials (407 without the right Proxy-Authorization) or refuse every tunnel with a status.
 */
export class ConnectProxy {
  readonly tunnels: string[] = [];
  /** Proxy-Authorization values received. */
  readonly authorizations: string[] = [];
  /** Answer every CONNECT with this status instead of opening the tunnel. */
  refuseWith: number | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly credentials: { user: string; password: string } | undefined,
  ) {}

  static async start(credentials?: { user: string; password: string }): Promise<ConnectProxy> {
    const server = createServer((_req, res) => {
      res.writeHead(405).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no port');
    const proxy = new ConnectProxy(server, address.port, credentials);
    server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) =>
      proxy.tunnel(req, client, head),
    );
    server.on('connection', (socket: Socket) => {
      proxy.sockets.add(socket);
      socket.on('close', () => proxy.sockets.delete(socket));
    });
    return proxy;
  }

  /** The proxy's URL, with the credentials when it wants them. */
  get url(): string {
    const auth = this.credentials
      ? `${encodeURIComponent(this.credentials.user)}:${encodeURIComponent(this.credentials.password)}@`
      : '';
    return `http://${auth}127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private tunnel(req: IncomingMessage, client: Socket, head: Buffer): void {
    const authorization = req.headers['proxy-authorization'];
    if (authorization) this.authorizations.push(authorization);
    const expected = this.credentials
      ? `Basic ${Buffer.from(`${this.credentials.user}:${this.credentials.password}`).toString('base64')}`
      : undefined;
    const status =
      this.refuseWith ?? (expected !== undefined && authorization !== expected ? 407 : undefined);
    if (status !== undefined) {
      client.end(
        `HTTP/1.1 ${status} Refused\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    this.tunnels.push(req.url ?? '');
    const upstream = connect(Number(port), host ?? '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  }
}
