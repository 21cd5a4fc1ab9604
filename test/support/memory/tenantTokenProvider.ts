import { ExportError, registerSecret } from '../../../src/errors';
import type { SimulatedTenant } from '../../../src/sandbox/simulatedTenant';

/**
 * API tokens for the in-memory path, issued by the simulated tenant without MSAL and HTTPS: the app's secret is
 * checked as Entra would, a token is cached until a 401 forces a refresh (as `ApiTokenProvider` does), and each
 * one is registered for redaction and recorded by the tenant, so the leak checks cover it.
 */
export class TenantTokenProvider {
  private token: string | undefined;
  requests = 0;

  constructor(
    private readonly tenant: SimulatedTenant,
    private readonly clientSecret: string = tenant.clientSecret,
  ) {}

  getToken = (options: { forceRefresh: boolean; abortSignal?: AbortSignal }): Promise<string> => {
    options.abortSignal?.throwIfAborted();
    if (options.forceRefresh || this.token === undefined) {
      this.requests++;
      if (!this.tenant.validClientSecrets.has(this.clientSecret))
        return Promise.reject(new ExportError('Entra rejected the client secret (AADSTS7000215).'));
      this.token = this.tenant.issueToken(this.tenant.clientId, this.tenant.origin);
      registerSecret(this.token, { longLived: false });
    }
    return Promise.resolve(this.token);
  };
}
