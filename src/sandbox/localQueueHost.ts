import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { QUEUE_SETTINGS } from '../config';

/** host.json `extensions.queues`, as the local host applies them. */
export interface QueueHostSettings {
  readonly batchSize: number;
  readonly newBatchThreshold: number;
  readonly maxDequeueCount: number;
  /** How long a failed message stays invisible before its next try (host.json: 5 minutes; the sandbox: 0). */
  readonly visibilityTimeoutInSeconds: number;
}

/** What one {@link LocalQueueHost.drain} did. */
export interface DrainReport {
  /** Messages handled without an error, and their handlers' results. */
  readonly completed: {
    readonly message: unknown;
    readonly dequeueCount: number;
    readonly result: unknown;
  }[];
  /** Tries that threw (each made the message visible again, or poisoned it). */
  readonly failures: { readonly message: unknown; readonly dequeueCount: number; readonly error: string }[];
  /** Messages moved to the poison queue after their last try. */
  readonly poisoned: unknown[];
}

export type QueueHandler = (entry: unknown, context: InvocationContext) => Promise<unknown>;

/** How long a message is hidden while its handler runs (the host renews it; a drain is shorter than this). */
const PROCESSING_VISIBILITY_IN_SECONDS = 600;

/**
 * Plays the Functions host's queue listener against a real Storage queue (Azurite): what the sandbox, the tests
 * and the bench need to run the queue path of DEFENDER_TENANTS in one process, since the host itself cannot run
 * here. As the host does (https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages):
 * messages are fetched `batchSize` at a time and a new batch once fewer than `newBatchThreshold` run; the
 * handler gets the message's JSON and its `dequeueCount`; a message whose handler returns is deleted; one whose
 * handler throws becomes visible again after the visibility timeout, and after `maxDequeueCount` tries is moved
 * to `<queue>-poison`. Messages are base64 text, as the output binding writes them (messageEncoding base64).
 */
export class LocalQueueHost {
  readonly queue: QueueClient;
  readonly poisonQueue: QueueClient;

  constructor(
    connectionString: string,
    queueName: string,
    private readonly settings: QueueHostSettings,
  ) {
    const service = QueueServiceClient.fromConnectionString(connectionString);
    this.queue = service.getQueueClient(queueName);
    this.poisonQueue = service.getQueueClient(`${queueName}-poison`);
  }

  /**
   * A host with the deployment's host.json queue settings (`QUEUE_SETTINGS`), but retrying at once instead of
   * after the visibility timeout, on its queue and poison queue (created if missing).
   */
  static async start(connectionString: string, queueName: string): Promise<LocalQueueHost> {
    const host = new LocalQueueHost(connectionString, queueName, {
      ...QUEUE_SETTINGS,
      visibilityTimeoutInSeconds: 0,
    });
    await host.ensureQueues();
    return host;
  }

  async ensureQueues(): Promise<void> {
    await this.queue.createIfNotExists();
    await this.poisonQueue.createIfNotExists();
  }

  /** Sends messages as the queue output binding does: JSON, base64-encoded. */
  async enqueue(messages: readonly unknown[]): Promise<void> {
    for (const message of messages) await this.queue.sendMessage(encode(message));
  }

  /** The messages in the poison queue, decoded (peeked, left there). */
  async poisoned(): Promise<unknown[]> {
    const peeked = await this.poisonQueue.peekMessages({ numberOfMessages: 32 });
    return peeked.peekedMessageItems.map((m) => decode(m.messageText));
  }

  /**
   * Handles messages until the queue is empty (the visible ones and the ones a failure hid for the visibility
   * timeout), with at most batchSize + newBatchThreshold handlers at once, like one host instance.
   */
  async drain(
    handler: QueueHandler,
    options: { readonly functionName?: string; readonly log?: (level: string, text: string) => void } = {},
  ): Promise<DrainReport> {
    const report: DrainReport = { completed: [], failures: [], poisoned: [] };
    const running = new Set<Promise<void>>();
    const limit = this.settings.batchSize + this.settings.newBatchThreshold;
    for (;;) {
      if (running.size <= this.settings.newBatchThreshold) {
        const wanted = Math.min(this.settings.batchSize, limit - running.size);
        const received = await this.queue.receiveMessages({
          numberOfMessages: Math.max(1, wanted),
          visibilityTimeout: PROCESSING_VISIBILITY_IN_SECONDS,
        });
        for (const item of received.receivedMessageItems) {
          const task = this.handle(item, handler, report, options).finally(() => running.delete(task));
          running.add(task);
        }
        if (received.receivedMessageItems.length > 0) continue;
      }
      if (running.size > 0) {
        await Promise.race(running);
        continue;
      }
      const { approximateMessagesCount } = await this.queue.getProperties();
      if (!approximateMessagesCount) return report;
      // Messages hidden for their retry's visibility timeout: Storage's own clock brings them back.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  private async handle(
    item: {
      messageId: string;
      popReceipt: string;
      messageText: string;
      dequeueCount: number;
      insertedOn: Date;
    },
    handler: QueueHandler,
    report: DrainReport,
    options: { readonly functionName?: string; readonly log?: (level: string, text: string) => void },
  ): Promise<void> {
    const message = decode(item.messageText);
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: options.functionName ?? 'exportTenant',
      triggerMetadata: {
        id: item.messageId,
        dequeueCount: item.dequeueCount,
        insertionTime: item.insertedOn.toISOString(),
        popReceipt: item.popReceipt,
      },
      logHandler: (level, ...args) => options.log?.(level, args.map(String).join(' ')),
    });
    try {
      const result = await handler(message, context);
      report.completed.push({ message, dequeueCount: item.dequeueCount, result });
      await this.queue.deleteMessage(item.messageId, item.popReceipt);
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown.message : String(thrown);
      report.failures.push({ message, dequeueCount: item.dequeueCount, error });
      if (item.dequeueCount >= this.settings.maxDequeueCount) {
        await this.poisonQueue.sendMessage(item.messageText);
        await this.queue.deleteMessage(item.messageId, item.popReceipt);
        report.poisoned.push(message);
      } else {
        await this.queue.updateMessage(
          item.messageId,
          item.popReceipt,
          undefined,
          this.settings.visibilityTimeoutInSeconds,
        );
      }
    }
  }
}

function encode(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}

/** The message as the trigger gives it to a Node function: its JSON parsed, else its text. */
function decode(text: string): unknown {
  const decoded = Buffer.from(text, 'base64').toString('utf8');
  try {
    return JSON.parse(decoded) as unknown;
  } catch {
    return decoded;
  }
}
