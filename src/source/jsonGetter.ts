import type { SourceStats } from '../export/ports';

/** The slice of the HTTP client the incident sources need (see src/source/apiClient.ts). */
export interface JsonGetter {
  readonly stats: SourceStats;
  /** The API's clock by its newest `Date` header (epoch ms), undefined before any response. */
  serverNow(): number | undefined;
  getJson(
    url: string,
    options?: { headers?: Record<string, string>; abortSignal?: AbortSignal },
  ): Promise<unknown>;
}
