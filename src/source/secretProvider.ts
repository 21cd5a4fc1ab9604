import type { SecretClient } from '@azure/keyvault-secrets';
import { ExportError, isTransientStatus, registerSecret } from '../errors';

/** Port: where the Entra app's client secret comes from. */
export interface SecretProvider {
  /** The client secret; forceRefresh bypasses the cache (the secret was rotated). */
  getClientSecret(options?: { forceRefresh?: boolean; abortSignal?: AbortSignal }): Promise<string>;
  /** Where the secret lives, for messages ("Key Vault secret 'x' in https://…" or a setting name). */
  readonly location: string;
}

/** A secret given directly (DEFENDER_CLIENT_SECRET, local development only). */
export class StaticSecretProvider implements SecretProvider {
  readonly location = 'DEFENDER_CLIENT_SECRET';
  constructor(private readonly secret: string) {
    registerSecret(secret, { longLived: true });
  }
  getClientSecret(): Promise<string> {
    return Promise.resolve(this.secret);
  }
}

export interface KeyVaultSecretProviderOptions {
  readonly client: Pick<SecretClient, 'getSecret'>;
  readonly vaultUrl: string;
  readonly secretName: string;
  /**
   * What the secret is, for messages: the client secret itself (default), or the secret through which Key Vault
   * gives a certificate's private key and certificate (same name as the certificate).
   */
  readonly kind?: 'secret' | 'certificate';
  /** Client ID of the managed identity that reads the vault, for messages. */
  readonly identityClientId: string | undefined;
  /** How long a read secret is reused. Default one hour; a rejected secret is re-read at once anyway. */
  readonly cacheTtlInMs?: number;
  readonly now?: () => number;
}

/** What a Key Vault secret read gives: the value and its content type (a certificate's: PEM or PKCS#12). */
export interface KeyVaultSecretValue {
  readonly value: string;
  readonly contentType: string | undefined;
}

/**
 * Reads the client secret (or a certificate's secret) from Key Vault with the function's managed identity and
 * caches it in memory.
 */
export class KeyVaultSecretProvider implements SecretProvider {
  private cached: { secret: KeyVaultSecretValue; readAt: number } | undefined;
  readonly location: string;
  private readonly noun: string;
  private readonly setting: string;
  private readonly create: string;

  constructor(private readonly o: KeyVaultSecretProviderOptions) {
    const certificate = o.kind === 'certificate';
    this.noun = certificate ? 'certificate' : 'secret';
    this.setting = certificate ? 'KEY_VAULT_CERTIFICATE_NAME' : 'KEY_VAULT_SECRET_NAME';
    this.create = certificate
      ? `az keyvault certificate create --vault-name <vault> --name ${o.secretName} --policy @policy.json (content type application/x-pem-file, exportable key: docs/deploy.md)`
      : `az keyvault secret set --vault-name <vault> --name ${o.secretName} --value <secret>`;
    this.location = `Key Vault ${this.noun} '${o.secretName}' in ${o.vaultUrl}`;
  }

  async getClientSecret(
    options: { forceRefresh?: boolean; abortSignal?: AbortSignal } = {},
  ): Promise<string> {
    return (await this.getSecret(options)).value;
  }

  /** The secret with its content type, from the cache unless `forceRefresh` or an hour passed. */
  async getSecret(
    options: { forceRefresh?: boolean; abortSignal?: AbortSignal } = {},
  ): Promise<KeyVaultSecretValue> {
    const now = (this.o.now ?? Date.now)();
    if (
      this.cached &&
      !options.forceRefresh &&
      now - this.cached.readAt < (this.o.cacheTtlInMs ?? 3_600_000)
    ) {
      return this.cached.secret;
    }
    let value: string | undefined;
    let contentType: string | undefined;
    try {
      const secret = await this.o.client.getSecret(
        this.o.secretName,
        options.abortSignal ? { abortSignal: options.abortSignal } : {},
      );
      value = secret.value;
      contentType = secret.properties.contentType;
    } catch (thrown) {
      throw this.describe(thrown);
    }
    if (!value) {
      throw new ExportError(
        `${this.location} is empty. ${this.o.kind === 'certificate' ? 'Create the certificate' : 'Set it to the client secret value'}: ${this.create}.`,
      );
    }
    registerSecret(value, { longLived: true });
    const secret = { value, contentType };
    this.cached = { secret, readAt: now };
    return secret;
  }

  private describe(thrown: unknown): ExportError {
    const e = (typeof thrown === 'object' && thrown !== null ? thrown : {}) as {
      statusCode?: number;
      code?: string;
      name?: string;
      message?: string;
      errorCode?: unknown;
      details?: unknown;
      response?: { bodyAsText?: string | null };
    };
    const who = this.o.identityClientId
      ? `the managed identity (AZURE_CLIENT_ID ${this.o.identityClientId})`
      : "the function's identity";
    if (e.statusCode === 403 && isSecretDisabled(e)) {
      // Key Vault answers 403 Forbidden, inner error SecretDisabled, for a disabled secret: not a missing role.
      return new ExportError(
        `Key Vault ${this.noun} '${this.o.secretName}' in vault ${this.o.vaultUrl} is disabled: enable it or ${this.o.kind === 'certificate' ? 'create' : 'set'} a new version ` +
          `(az keyvault ${this.noun} set-attributes --vault-name <vault> --name ${this.o.secretName} --enabled true, or ${this.create}). Key Vault said: ${e.message ?? 'SecretDisabled'}`,
        { cause: thrown },
      );
    }
    if (e.statusCode === 403) {
      return new ExportError(
        `Key Vault ${this.o.vaultUrl} refused to read ${this.noun} '${this.o.secretName}'${this.o.kind === 'certificate' ? " through the certificate's secret" : ''} (403 ${e.code ?? 'Forbidden'}). ` +
          `Grant ${who} the 'Key Vault Secrets User' role on the vault (RBAC), and check the vault's firewall.`,
        { cause: thrown },
      );
    }
    if (e.statusCode === 404) {
      return new ExportError(
        `${this.o.kind === 'certificate' ? "Certificate '" : "Secret '"}${this.o.secretName}' was not found in Key Vault ${this.o.vaultUrl}. Create it (${this.create}) ` +
          `or set ${this.setting} to the right name.`,
        { cause: thrown },
      );
    }
    // The identity's own token request failed (@azure/identity errors; MSAL's carry an errorCode).
    if (
      e.statusCode === 401 ||
      /^(CredentialUnavailable|Authentication|AuthenticationRequired|AggregateAuthentication)Error$/.test(
        e.name ?? '',
      ) ||
      typeof e.errorCode === 'string'
    ) {
      return new ExportError(
        `Could not authenticate to Key Vault ${this.o.vaultUrl} as ${who}: ${e.message ?? ''}. Check AZURE_CLIENT_ID and that the identity is assigned to the function app.`,
        { cause: thrown },
      );
    }
    // No answer, a timeout, throttling or a 5xx pass; a host name that does not resolve is a wrong KEY_VAULT_URL.
    return new ExportError(
      `Could not read ${this.noun} '${this.o.secretName}' from Key Vault ${this.o.vaultUrl} (check KEY_VAULT_URL): ${e.message ?? String(thrown)}`,
      { cause: thrown, isTransient: e.code !== 'ENOTFOUND' && isTransientStatus(e.statusCode ?? 0) },
    );
  }
}

/** A 403 for a disabled secret: inner error code SecretDisabled (https://learn.microsoft.com/azure/key-vault/general/rest-error-codes). */
function isSecretDisabled(e: {
  message?: string;
  details?: unknown;
  response?: { bodyAsText?: string | null };
}): boolean {
  const details = JSON.stringify(e.details ?? null);
  return (
    /"SecretDisabled"/.test(details) ||
    /"SecretDisabled"/.test(e.response?.bodyAsText ?? '') ||
    /not allowed on a disabled secret/i.test(e.message ?? '')
  );
}
