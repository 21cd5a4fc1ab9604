import { randomUUID } from 'node:crypto';
import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { CHECKPOINT_BLOB } from '../export/blobLayout';
import { isCheckpoint } from '../export/checkpoint';
import { ContentHasher } from '../export/contentHash';
import type {
  BlobContentSettings,
  CheckpointDocument,
  CheckpointStore,
  CommittedBlob,
  CommittedContent,
  ExportBlobWriter,
  ExportSink,
  StorageCallOptions,
  StoredCheckpoint,
} from '../export/ports';
import { decodeExportBlob } from '../export/recordDecoder';
import { ConcurrentRunError, ExportError, isTransientStatus, StorageError } from '../errors';

/** Error fields of a storage `RestError` that we act on. */
interface StorageErrorLike {
  statusCode?: number;
  code?: string;
  message?: string;
  name?: string;
}

function storageError(thrown: unknown): StorageErrorLike {
  return typeof thrown === 'object' && thrown !== null ? thrown : {};
}

/**
 * True only for a real write conflict: an ETag condition that no longer holds (412 `ConditionNotMet`) or a
 * create-only write that found the blob (409 `BlobAlreadyExists`). Every other 409/412 (a lease, an immutability
 * policy, a container being deleted, ...) is a refusal that an operator must fix, not another run. Codes:
 * https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes
 */
export function isWriteConflict(thrown: unknown): boolean {
  const e = storageError(thrown);
  return (
    (e.statusCode === 412 && e.code === 'ConditionNotMet') ||
    (e.statusCode === 409 && e.code === 'BlobAlreadyExists')
  );
}

/** Lease codes of the Blob service (a lease held by someone else blocks our writes). */
const LEASE_CODES = /^Lease/;
/** Immutability (WORM) refusals. */
const IMMUTABLE_CODES = new Set([
  'BlobImmutableDueToPolicy',
  'BlobImmutableDueToLegalHold',
  'ContainerImmutabilityPolicyLocked',
]);

/**
 * Maps a storage failure to an error that names the container, the blob (when given), the status, the code and
 * the fix, and says whether a later run gets past it (no answer, a timeout, throttling, a 5xx) or an operator
 * must act (a lease, a WORM policy, a missing container or role, a credential).
 * `blob`: the blob the action was on, so that a lease or an immutability policy can be named.
 */
export function describeStorageError(
  thrown: unknown,
  container: string,
  action: string,
  blob?: string,
): StorageError {
  const e = storageError(thrown);
  const status = `${e.statusCode ?? ''} ${e.code ?? ''}`.trim();
  const where = {
    container,
    ...(blob !== undefined ? { blob } : {}),
    ...(e.statusCode !== undefined ? { status: e.statusCode } : {}),
    ...(e.code !== undefined ? { code: e.code } : {}),
    cause: thrown,
  };
  const operator = { ...where, isTransient: false };
  if (e.name === 'AbortError') {
    return new StorageError(
      `Storage did not answer to ${action} in container '${container}' before the run stopped (its time budget, ` +
        'EXPORT_MAX_RUN_DURATION, ran out or it was interrupted); the checkpoint is where the data is, the next run resumes.',
      { ...where, isTransient: true },
    );
  }
  if (e.code !== undefined && LEASE_CODES.test(e.code)) {
    const subject = blob ? `'${blob}' in container '${container}'` : `A blob in container '${container}'`;
    return new StorageError(
      `Storage refused to ${action}: ${subject} is leased (${status}), and this tool never takes leases. ` +
        `If no tool of yours holds that lease, break it with ` +
        `\`az storage blob lease break --container-name ${container} --blob-name ${blob ?? '<blob>'} --account-name <account>\`` +
        ', then run again; nothing was written.',
      operator,
    );
  }
  if (e.code !== undefined && IMMUTABLE_CODES.has(e.code)) {
    const isState = blob?.startsWith('state/') ?? false;
    return new StorageError(
      `Storage refused to ${action}: ${blob ? `'${blob}' in container '${container}'` : `container '${container}'`} ` +
        `is immutable (${status}). ` +
        (isState
          ? 'The state container must not be immutable: set EXPORT_STATE_CONTAINER to a container without a WORM policy ' +
            '(time-based retention or legal hold), then run again.'
          : 'Export blobs are written once, but the state and run manifests need a container without a WORM policy: ' +
            'set EXPORT_STATE_CONTAINER to one, or remove the legal hold / retention policy that blocks this write.'),
      operator,
    );
  }
  if (e.code === 'ContainerBeingDeleted') {
    return new StorageError(
      `Storage refused to ${action}: container '${container}' is being deleted (${status}). Wait until the deletion ` +
        'has finished and recreate the container, or set EXPORT_CONTAINER (EXPORT_STATE_CONTAINER for the state) to another one.',
      operator,
    );
  }
  if (e.statusCode === 403) {
    return new StorageError(
      `Storage refused to ${action} in container '${container}' (403 ${e.code ?? ''}). Grant the identity in use the ` +
        `'Storage Blob Data Contributor' role on the container ('Storage Blob Data Reader' is enough for the CLI's ` +
        `download, status and verify): the function's managed identity (AZURE_CLIENT_ID), or your 'az login' account when ` +
        `you run the CLI. With EXPORT_STORAGE_CONNECTION_STRING, check its key or SAS permissions. Check the account's network rules too.`,
      operator,
    );
  }
  if (e.statusCode === 404 && e.code === 'ContainerNotFound') {
    return new StorageError(
      `Container '${container}' does not exist in the storage account. Check EXPORT_CONTAINER and the account ` +
        '(EXPORT_STORAGE_ACCOUNT_URL or EXPORT_STORAGE_CONNECTION_STRING); the deployment creates the container.',
      operator,
    );
  }
  if (thrown instanceof Error && CREDENTIAL_ERRORS.has(thrown.name)) {
    return new StorageError(
      `Could not get a token for Storage to ${action} in container '${container}': ${thrown.message.split('\n')[0] ?? ''} ` +
        "Locally, sign in with 'az login' (DefaultAzureCredential) or set EXPORT_STORAGE_CONNECTION_STRING; in Azure, " +
        "check AZURE_CLIENT_ID and the function app's identity.",
      operator,
    );
  }
  // No answer (a reset, a refused connection, a timeout), throttling or a 5xx: Storage is unavailable for now. A
  // host name that does not resolve is a wrong EXPORT_STORAGE_ACCOUNT_URL; any other 4xx is a refusal.
  return new StorageError(
    `Storage failed to ${action} in container '${container}'${status ? ` (${status})` : ''}: ${e.message ?? String(thrown)}`,
    { ...where, isTransient: e.code !== 'ENOTFOUND' && isTransientStatus(e.statusCode ?? 0) },
  );
}

/** Errors of @azure/identity: no credential could give a token. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError',
  'AggregateAuthenticationError',
  'AuthenticationError',
]);

/** Export blobs and run manifests in one container, written create-only in staged blocks. */
export class BlobExportSink implements ExportSink {
  constructor(private readonly container: ContainerClient) {}

  async committedMetadata(
    name: string,
    options: StorageCallOptions = {},
  ): Promise<Record<string, string> | undefined> {
    try {
      const props = await this.container.getBlockBlobClient(name).getProperties(abortable(options));
      return props.metadata ?? {};
    } catch (thrown) {
      if (storageError(thrown).statusCode === 404) return undefined;
      throw describeStorageError(thrown, this.container.containerName, `read blob '${name}'`);
    }
  }

  async *listCommitted(prefix: string, options: StorageCallOptions = {}): AsyncIterable<CommittedBlob> {
    try {
      for await (const blob of this.container.listBlobsFlat({
        prefix,
        includeMetadata: true,
        ...abortable(options),
      }))
        yield { name: blob.name, metadata: blob.metadata ?? {} };
    } catch (thrown) {
      throw describeStorageError(thrown, this.container.containerName, `list '${prefix}'`);
    }
  }

  async readRecords(name: string, options: StorageCallOptions = {}): Promise<unknown[]> {
    return decodeExportBlob(name, await this.download(name, options));
  }

  private async download(name: string, options: StorageCallOptions): Promise<Buffer> {
    try {
      const response = await this.container
        .getBlockBlobClient(name)
        .download(0, undefined, abortable(options));
      return await streamToBuffer(response.readableStreamBody);
    } catch (thrown) {
      throw describeStorageError(thrown, this.container.containerName, `read '${name}'`);
    }
  }

  openBlob(name: string, content: BlobContentSettings): ExportBlobWriter {
    return new BlockBlobWriter(this.container, name, content);
  }

  async writeJson(name: string, value: unknown, options: StorageCallOptions = {}): Promise<boolean> {
    const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
    try {
      await this.container.getBlockBlobClient(name).upload(body, body.length, {
        ...abortable(options),
        conditions: { ifNoneMatch: '*' },
        blobHTTPHeaders: { blobContentType: 'application/json; charset=utf-8' },
      });
      return true;
    } catch (thrown) {
      // Only "already exists" means false; a lease or a WORM policy is a failure to report.
      if (isWriteConflict(thrown)) return false;
      throw describeStorageError(thrown, this.container.containerName, `write '${name}'`, name);
    }
  }
}

/**
 * Stages blocks under ids unique to this writer (two runs racing on one name never mix their blocks; every
 * id has the same length, as Storage requires) and commits them create-only, with the blob's Content-MD5, so
 * that standard clients (`az storage blob download`, `getProperties().contentMD5`) can check a download.
 * Storage does not compute a Content-MD5 for a blob committed from blocks, and does not check the one given
 * ([Put Block List](https://learn.microsoft.com/rest/api/storageservices/put-block-list), `x-ms-blob-content-md5`).
 */
class BlockBlobWriter implements ExportBlobWriter {
  private readonly blockIds: string[] = [];
  private readonly prefix = randomUUID();
  /** Fed as each stage is called, in the order of {@link blockIds} (see ContentHasher). */
  private readonly hasher = new ContentHasher();

  constructor(
    private readonly container: ContainerClient,
    private readonly name: string,
    private readonly content: BlobContentSettings,
  ) {}

  /**
   * Stages may run concurrently: the block's place in the list is taken when the stage starts, so the commit
   * keeps the order of the calls; the hashes take the block at the same moment, before the first await, so
   * they see the bytes in the order of the list whatever order the uploads end in. A failed stage fails the
   * blob (its caller never commits it).
   */
  async stage(block: Buffer, options: StorageCallOptions = {}): Promise<void> {
    const id = Buffer.from(`${this.prefix}-${String(this.blockIds.length).padStart(6, '0')}`).toString(
      'base64',
    );
    this.blockIds.push(id);
    this.hasher.update(block);
    try {
      await this.container
        .getBlockBlobClient(this.name)
        .stageBlock(id, block, block.length, abortable(options));
    } catch (thrown) {
      throw describeStorageError(
        thrown,
        this.container.containerName,
        `stage a block of '${this.name}'`,
        this.name,
      );
    }
  }

  async commit(
    metadata: Record<string, string>,
    options: StorageCallOptions = {},
  ): Promise<CommittedContent> {
    const client = this.container.getBlockBlobClient(this.name);
    const content = this.hasher.result();
    try {
      await client.commitBlockList(this.blockIds, {
        ...abortable(options),
        conditions: { ifNoneMatch: '*' },
        blobHTTPHeaders: {
          blobContentType: this.content.contentType,
          ...(this.content.contentEncoding ? { blobContentEncoding: this.content.contentEncoding } : {}),
          blobContentMD5: Buffer.from(content.contentMd5, 'base64'),
        },
        metadata,
      });
      return content;
    } catch (thrown) {
      // 409 BlobAlreadyExists: the blob exists. 400 InvalidBlockList: another writer committed the name and
      // its commit discarded our uncommitted blocks. Either way another run owns this part of the export. Any
      // other refusal (a lease, a WORM policy) is reported as what it is.
      if (
        isWriteConflict(thrown) ||
        (storageError(thrown).code === 'InvalidBlockList' && (await this.exists(client, options)))
      ) {
        throw new ConcurrentRunError(
          `Export blob '${this.name}' was committed by another run; this run stops without writing it.`,
        );
      }
      throw describeStorageError(thrown, this.container.containerName, `commit '${this.name}'`, this.name);
    }
  }

  private async exists(client: BlockBlobClient, options: StorageCallOptions): Promise<boolean> {
    try {
      return await client.exists(abortable(options));
    } catch (thrown) {
      throw describeStorageError(thrown, this.container.containerName, `read '${this.name}'`, this.name);
    }
  }
}

/**
 * A checkpoint document, by default the live export's `state/checkpoint.json` (a backfill keeps its own),
 * guarded by ETags (412 = another writer won).
 */
export class BlobCheckpointStore implements CheckpointStore {
  constructor(
    private readonly container: ContainerClient,
    readonly blobName: string = CHECKPOINT_BLOB,
  ) {}

  async read(options: StorageCallOptions = {}): Promise<StoredCheckpoint | undefined> {
    const client = this.container.getBlockBlobClient(this.blobName);
    let body: Buffer;
    let etag: string | undefined;
    try {
      const response = await client.download(0, undefined, abortable(options));
      etag = response.etag;
      body = await streamToBuffer(response.readableStreamBody);
    } catch (thrown) {
      if (storageError(thrown).statusCode === 404 && storageError(thrown).code !== 'ContainerNotFound')
        return undefined;
      throw describeStorageError(thrown, this.container.containerName, `read '${this.blobName}'`);
    }
    let document: unknown;
    try {
      document = JSON.parse(body.toString('utf8'));
    } catch {
      document = undefined;
    }
    if (!isCheckpointDocument(document) || !etag) {
      throw new ExportError(
        `'${this.blobName}' in container '${this.container.containerName}' is not a valid checkpoint. Restore it from a soft-deleted ` +
          'version, or delete it to start over from EXPORT_INITIAL_LOOKBACK (versions already exported may then be written again).',
      );
    }
    return { document, etag };
  }

  async write(
    document: CheckpointDocument,
    etag: string | undefined,
    options: StorageCallOptions = {},
  ): Promise<string> {
    const body = Buffer.from(`${JSON.stringify(document, null, 2)}\n`, 'utf8');
    try {
      const response = await this.container.getBlockBlobClient(this.blobName).upload(body, body.length, {
        ...abortable(options),
        conditions: etag ? { ifMatch: etag } : { ifNoneMatch: '*' },
        blobHTTPHeaders: { blobContentType: 'application/json; charset=utf-8' },
      });
      if (!response.etag) {
        throw new StorageError(`Storage returned no ETag for '${this.blobName}'.`, {
          container: this.container.containerName,
          blob: this.blobName,
          isTransient: true,
        });
      }
      return response.etag;
    } catch (thrown) {
      // Only a moved ETag or a lost create-only write is another run; a lease or a WORM policy fails the run.
      if (isWriteConflict(thrown)) {
        throw new ConcurrentRunError(
          'Another export run moved the checkpoint first; this run stops without writing it.',
        );
      }
      if (thrown instanceof StorageError) throw thrown;
      throw describeStorageError(
        thrown,
        this.container.containerName,
        `write '${this.blobName}'`,
        this.blobName,
      );
    }
  }
}

function isCheckpointDocument(value: unknown): value is CheckpointDocument {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.schemaVersion === 1 &&
    typeof v.tenantId === 'string' &&
    (v.api === 'graph' || v.api === 'legacy') &&
    isCheckpoint(v.checkpoint)
  );
}

/** The SDK options that carry a call's abort signal. */
function abortable(options: StorageCallOptions): { abortSignal?: AbortSignal } {
  return options.abortSignal ? { abortSignal: options.abortSignal } : {};
}

/** Reads a Node stream into one Buffer. */
export async function streamToBuffer(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  if (!stream) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}
