import type { TenantSetting } from '../config';
import { classifyFailure, toError } from '../errors';
import type { RunSummary } from '../export/exportRun';
import type { Logger } from '../logger';
import type { TenantExporters } from './exporter';
import { forEachConcurrently } from '../export/forEachConcurrently';

/**
 * One queue message of the fan-out: which tenant to export. Only the tenant's ID travels: its container, app
 * and API come from DEFENDER_TENANTS where the message is handled, so a message can never point a tenant's
 * data at another container.
 */
export interface TenantMessage {
  readonly tenantId: string;
  /** The timer invocation that queued it (for the logs: which cycle a run belongs to). */
  readonly cycleId: string;
  readonly queuedAt: string;
}

/** The messages of one cycle: one per tenant, in list order. */
export function tenantMessages(
  tenants: readonly TenantSetting[],
  cycleId: string,
  nowMs: number,
): TenantMessage[] {
  const queuedAt = new Date(nowMs).toISOString();
  return tenants.map((t) => ({ tenantId: t.tenantId, cycleId, queuedAt }));
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A queue message as the trigger hands it over (the JSON, parsed; or the text when it is not JSON), checked;
 * or what is wrong with it (anyone who may send to the queue may have put anything there).
 */
export function parseTenantMessage(entry: unknown): TenantMessage | string {
  let value = entry;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return 'it is not JSON';
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'it is not a JSON object';
  const m = value as Record<string, unknown>;
  if (typeof m.tenantId !== 'string' || !GUID.test(m.tenantId)) return "its 'tenantId' is not a GUID";
  return {
    tenantId: m.tenantId.toLowerCase(),
    cycleId: typeof m.cycleId === 'string' ? m.cycleId.slice(0, 100) : '',
    queuedAt: typeof m.queuedAt === 'string' ? m.queuedAt.slice(0, 40) : '',
  };
}

/** How one tenant's run of `defender-export run` ended. */
export interface TenantRunResult {
  readonly tenantId: string;
  readonly name: string;
  readonly container: string;
  /** The run's summary; absent when the run failed (then {@link error}). */
  readonly summary?: RunSummary;
  readonly error?: string;
  /** With {@link error}: a later run gets past it by itself (network, 5xx, throttling). */
  readonly transient?: boolean;
}

/**
 * Exports every tenant in this process, at most `concurrency` at once: `defender-export run` with
 * DEFENDER_TENANTS. A tenant that fails does not stop the others; each result says how its run ended.
 */
export async function exportTenants(
  exporters: TenantExporters,
  options: { readonly concurrency: number; readonly logger: Logger; readonly abortSignal?: AbortSignal },
): Promise<TenantRunResult[]> {
  const results = new Map<string, TenantRunResult>();
  const tenantIds = [...exporters.keys()];
  await forEachConcurrently(
    tenantIds,
    options.concurrency,
    async (tenantId) => {
      const exporter = exporters.get(tenantId);
      if (!exporter) return;
      const base = {
        tenantId,
        name: exporter.config.tenantName ?? tenantId,
        container: exporter.container.containerName,
      };
      try {
        const summary = await exporter.run({
          logger: options.logger,
          ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
        });
        results.set(tenantId, { ...base, summary });
      } catch (thrown) {
        const error = toError(thrown);
        options.logger.warn(`Tenant ${base.name} (${tenantId}) failed: ${error.message}`);
        results.set(tenantId, {
          ...base,
          error: error.message,
          transient: classifyFailure(thrown).transient,
        });
      }
    },
    options.abortSignal,
  );
  return tenantIds.flatMap((id) => results.get(id) ?? []);
}
