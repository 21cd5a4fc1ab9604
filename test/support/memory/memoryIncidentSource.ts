import { advance, isAfter, type IncidentRecord } from '../../../src/export/checkpoint';
import type {
  DefenderApi,
  IncidentPage,
  IncidentSource,
  ListWindow,
  SourceStats,
} from '../../../src/export/ports';
import { parseTimestamp, type Timestamp } from '../../../src/export/timestamp';

/**
 * An {@link IncidentSource} over versions a test sets: Graph-shaped items (`id`, `lastUpdateDateTime`), listed in
 * (last update, id) order in pages of `pageSize`, each page resumable. Only what is visible is listed, so a test
 * makes a version indexed late by adding it after the position passed its time. `apiClock` is the API's clock.
 */
export class MemoryIncidentSource implements IncidentSource {
  readonly api: DefenderApi = 'graph';
  readonly paging = 'timeSlices' as const;
  readonly stats = { requests: 0, retries: 0, throttles: 0 } satisfies SourceStats;
  readonly alertsUnavailable = 0;
  /** The latest visible version of each incident. */
  private readonly latest = new Map<string, IncidentRecord>();
  /** Every window listed, as [from watermark, until). */
  readonly windows: { from: string; until: string }[] = [];
  /**
   * The last page resumes from the window's end, as a source reading by time slices does (the slice that ends
   * the window was read completely), rather than from its last version.
   */
  resumeAtWindowEnd = false;

  constructor(
    private readonly apiClock: () => number | undefined,
    private readonly pageSize = 3,
  ) {}

  /** Makes a version visible (a newer version of the same id replaces the older one, as the API lists only the latest). */
  put(id: string, lastUpdate: string, extra: Record<string, unknown> = {}): void {
    const ts = parseTimestamp(lastUpdate);
    if (!ts) throw new Error(`not a timestamp: ${lastUpdate}`);
    this.latest.set(id, { id, lastUpdate: ts, raw: { id, lastUpdateDateTime: lastUpdate, ...extra } });
  }

  apiNow(): number | undefined {
    return this.apiClock();
  }

  identify(raw: unknown): { id: string; lastUpdate: Timestamp } | undefined {
    const item = raw as { id?: unknown; lastUpdateDateTime?: unknown };
    const lastUpdate = parseTimestamp(item.lastUpdateDateTime);
    return typeof item.id === 'string' && lastUpdate ? { id: item.id, lastUpdate } : undefined;
  }

  async *listPages(window: ListWindow): AsyncIterable<IncidentPage> {
    this.windows.push({ from: window.from.watermark, until: window.until });
    const until = parseTimestamp(window.until)!.ticks;
    const matching = [...this.latest.values()]
      .filter((r) => isAfter(r, window.from) && r.lastUpdate.ticks < until)
      .sort((a, b) =>
        a.lastUpdate.ticks !== b.lastUpdate.ticks
          ? a.lastUpdate.ticks < b.lastUpdate.ticks
            ? -1
            : 1
          : a.id < b.id
            ? -1
            : a.id > b.id
              ? 1
              : 0,
      );
    let position = window.from;
    for (let i = 0; i < matching.length || i === 0; i += this.pageSize) {
      const records = matching.slice(i, i + this.pageSize);
      this.stats.requests++;
      position =
        this.resumeAtWindowEnd && i + this.pageSize >= matching.length
          ? { watermark: window.until, idsAtWatermark: [] }
          : advance(position, records);
      await Promise.resolve();
      yield { records, resumeFrom: position };
    }
  }
}
