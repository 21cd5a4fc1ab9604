import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A running Azurite blob service on 127.0.0.1. */
export interface AzuriteProcess {
  readonly connectionString: string;
  readonly blobEndpoint: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Keep data in this folder (the sandbox); default in memory. */
  location?: string;
  /** Listen on this port (restarting on the same endpoint); default a free one. */
  port?: number;
}

/** The well-known development account key of Azurite (public, documented, not a secret). */
const DEV_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * Starts Azurite's blob service from node_modules as a child process. `--skipApiVersionCheck` is required:
 * the storage SDK always speaks a newer API version than Azurite knows (docs/azure-notes.md#azurite).
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteProcess> {
  const port = options.port ?? (await freePort());
  const args = [
    require.resolve('azurite/dist/src/blob/main.js'),
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(port),
    ...(options.location ? ['--location', options.location] : ['--inMemoryPersistence']),
    '--skipApiVersionCheck',
    '--disableTelemetry',
    '--silent',
  ];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within 30 s: ${output}`)), 30_000);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${code}: ${output}`));
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
  const blobEndpoint = `http://127.0.0.1:${port}/devstoreaccount1`;
  return {
    blobEndpoint,
    port,
    pid: child.pid ?? 0,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${DEV_ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};`,
    // On SIGTERM Azurite closes its server and saves its data; if it has not exited 20 s later, it is killed.
    stop: () =>
      new Promise<void>((resolve) => {
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
      }),
  };
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
