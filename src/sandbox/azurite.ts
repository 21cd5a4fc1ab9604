import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A running Azurite blob service and queue service on 127.0.0.1. */
export interface AzuriteProcess {
  /** Blob and queue endpoints (the queue: the fan-out of DEFENDER_TENANTS, as on the host storage account). */
  readonly connectionString: string;
  readonly blobEndpoint: string;
  readonly queueEndpoint: string;
  /** The blob service's port. */
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Keep data in this folder (the sandbox); default in memory. */
  location?: string;
  /** Listen on this port (restarting on the same endpoint); default a free one. */
  port?: number;
  /** The queue service's port; default a free one. */
  queuePort?: number;
}

/** The well-known development account key of Azurite (public, documented, not a secret). */
const DEV_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * Starts Azurite's blob and queue services from node_modules, each as a child process. `--skipApiVersionCheck`
 * is required: the storage SDKs always speak a newer API version than Azurite knows (docs/azure-notes.md#azurite).
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteProcess> {
  const port = options.port ?? (await freePort());
  const queuePort = options.queuePort ?? (await freePort());
  const [blob, queue] = await Promise.all([
    startService('blob', port, options.location),
    startService('queue', queuePort, options.location),
  ]);
  const blobEndpoint = `http://127.0.0.1:${port}/devstoreaccount1`;
  const queueEndpoint = `http://127.0.0.1:${queuePort}/devstoreaccount1`;
  return {
    blobEndpoint,
    queueEndpoint,
    port,
    pid: blob.pid ?? 0,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${DEV_ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};QueueEndpoint=${queueEndpoint};`,
    stop: async () => {
      await Promise.all([stopService(blob), stopService(queue)]);
    },
  };
}

/** One Azurite service (`blob` or `queue`) on 127.0.0.1, once it says it listens. */
async function startService(
  service: 'blob' | 'queue',
  port: number,
  location: string | undefined,
): Promise<ChildProcess> {
  const args = [
    require.resolve(`azurite/dist/src/${service}/main.js`),
    `--${service}Host`,
    '127.0.0.1',
    `--${service}Port`,
    String(port),
    ...(location ? ['--location', location] : ['--inMemoryPersistence']),
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
  ];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Azurite ${service} did not start within 30 s: ${output}`)),
      30_000,
    );
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`Azurite ${service} exited with code ${code}: ${output}`));
    };
    child.once('exit', onExit);
    let listening = false;
    const onData = (data: Buffer): void => {
      output += data.toString();
      if (!listening && output.includes('successfully listens')) {
        listening = true;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  return child;
}

/** On SIGTERM Azurite closes its server and saves its data; if it has not exited 20 s later, it is killed. */
function stopService(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(deadline);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
