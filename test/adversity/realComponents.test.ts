import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startAzurite } from '../../src/sandbox/azurite';
import { TcpProxy } from '../support/tcpProxy';
import { azuriteConnectionString, duplicates, World, wrapWriters } from '../support/world';

const HOUR = 3_600_000;

describe('faults of the real components', () => {
  it('recovers with nothing lost or doubled when Azurite stops in the middle of a run and starts again', async () => {
    // Azurite on disk, so that it can stop and start again with its data.
    const location = mkdtempSync(join(tmpdir(), 'azurite-'));
    let azurite = await startAzurite({ location });
    const world = await World.start({ connectionString: azurite.connectionString });
    try {
      world.configure({
        settings: { EXPORT_INCLUDE_ALERTS: 'false' },
        composition: { maxBlobBytes: 1, pageSize: 10 },
      });
      world.tenant.store.generate(200, {
        from: new Date(Date.now() - 20 * HOUR),
        to: new Date(Date.now() - HOUR),
      });
      let stopped: Promise<void> | undefined;
      world.tenant.afterPage = (_api, page) => {
        if (page === 6) stopped = azurite.stop();
      };
      await expect(world.run()).rejects.toThrow(/storage|blob|ECONNRE/i);
      await stopped;
      world.tenant.afterPage = undefined;
      azurite = await startAzurite({ location, port: azurite.port });

      expect((await world.run()).outcome).toBe('succeeded');
      const exported = await world.exported();
      expect(duplicates(exported)).toEqual([]);
      expect(new Set(exported.map((e) => e.id)).size).toBe(200);
    } finally {
      await world.close().catch(() => undefined);
      await azurite.stop();
      rmSync(location, { recursive: true, force: true });
    }
  });

  describe('the network to Blob Storage fails in the middle of a run (Azurite keeps what it acknowledged)', () => {
    let proxy: TcpProxy;
    let world: World;
    beforeEach(async () => {
      const shared = azuriteConnectionString();
      const port = Number(/BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)\//.exec(shared)![1]);
      proxy = await TcpProxy.start(port);
      world = await World.start({
        connectionString: shared.replace(`127.0.0.1:${port}/`, `127.0.0.1:${proxy.port}/`),
      });
      world.tenant.store.generate(200, {
        from: new Date(Date.now() - 20 * HOUR),
        to: new Date(Date.now() - HOUR),
      });
    });
    afterEach(async () => {
      await world.close();
      await proxy.close();
    });

    it('between pages: the run fails naming the storage account; the next one completes the export', async () => {
      world.configure({
        settings: { EXPORT_INCLUDE_ALERTS: 'false' },
        composition: { maxBlobBytes: 1, pageSize: 10 },
      });
      world.tenant.afterPage = (_api, page) => {
        if (page === 6) proxy.cut();
      };
      await expect(world.run()).rejects.toThrow(/storage|blob|ECONNRE/i);
      world.tenant.afterPage = undefined;
      proxy.restore();

      expect((await world.run()).outcome).toBe('succeeded');
      const exported = await world.exported();
      expect(duplicates(exported)).toEqual([]);
      expect(new Set(exported.map((e) => e.id)).size).toBe(200);
    });

    it('while a commit is in flight, run after run: whether or not the commit landed, nothing is lost or doubled', async () => {
      let cuts = 0;
      world.configure({
        settings: { EXPORT_INCLUDE_ALERTS: 'false' },
        composition: {
          maxBlobBytes: 1,
          pageSize: 10,
          wrapSink: wrapWriters((writer) => ({
            stage: (block) => writer.stage(block),
            commit: async (metadata) => {
              const committing = writer.commit(metadata);
              // The request is on the wire; cut before (or after) its response arrives.
              if (cuts < 4) {
                cuts++;
                setTimeout(() => proxy.cut(), cuts % 2 === 0 ? 0 : 2);
              }
              return committing;
            },
          })),
        },
      });
      let failures = 0;
      for (let attempt = 0; attempt < 10; attempt++) {
        proxy.restore();
        const outcome = await world.run().then(
          (summary) => summary.outcome,
          () => 'failed',
        );
        if (outcome === 'succeeded' && cuts >= 4) break;
        if (outcome !== 'succeeded') failures++;
      }
      expect(failures).toBeGreaterThan(0);
      expect(cuts).toBe(4);
      proxy.restore();
      expect((await world.run()).outcome).toBe('succeeded');
      const exported = await world.exported();
      expect(duplicates(exported)).toEqual([]);
      expect(new Set(exported.map((e) => e.id)).size).toBe(200);
    });
  });

  describe('each identity or secret failure ends the run with what to fix, the checkpoint untouched', () => {
    let world: World;
    let before: Awaited<ReturnType<World['checkpoint']>>;
    beforeEach(async () => {
      world = await World.start();
      world.tenant.store.generate(20, {
        from: new Date(Date.now() - 5 * HOUR),
        to: new Date(Date.now() - HOUR),
      });
      await world.run();
      before = await world.checkpoint();
      world.tenant.store.touchRandom(3);
      world.advance(1100);
    });
    afterEach(async () => {
      expect((await world.checkpoint())!.etag).toBe(before!.etag);
      await world.close();
    });

    it('Key Vault unreachable', async () => {
      const closed = await freePort();
      world.configure({ settings: { KEY_VAULT_URL: `https://127.0.0.1:${closed}` } });
      await expect(world.run()).rejects.toThrow(
        new RegExp(`Key Vault https://127.0.0.1:${closed}.*KEY_VAULT_URL`),
      );
    });

    it('Key Vault 403', async () => {
      world.tenant.keyVaultForbidden = true;
      world.configure();
      await expect(world.run()).rejects.toThrow(/'Key Vault Secrets User'/);
    });

    it('Key Vault 404', async () => {
      world.tenant.secrets.clear();
      world.configure();
      await expect(world.run()).rejects.toThrow(/Secret 'defender-client-secret' was not found/);
    });

    it('token endpoint 5xx', async () => {
      world.tenant.intercept = ({ api, url }) =>
        api === 'entra' && url.pathname.endsWith('/token')
          ? { status: 503, body: '{"error":"temporarily_unavailable"}' }
          : undefined;
      world.configure();
      await expect(world.run()).rejects.toThrow(/Could not (get a token|authenticate to Key Vault)/);
    });

    it('wrong tenant', async () => {
      world.configure({ settings: { DEFENDER_TENANT_ID: 'contoso.onmicrosoft.com' } });
      await expect(world.run()).rejects.toThrow(/DEFENDER_TENANT_ID/);
    });

    it('wrong secret', async () => {
      world.tenant.validClientSecrets.clear();
      world.configure();
      await expect(world.run()).rejects.toThrow(/rejected the client secret.*store its VALUE/);
    });
  });
});
