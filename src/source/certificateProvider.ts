import { X509Certificate } from 'node:crypto';
import { ExportError, registerSecret } from '../errors';
import type { KeyVaultSecretProvider } from './secretProvider';

/** Port: where the app registration's certificate (private key and certificate, PEM) comes from. */
export interface CertificateProvider {
  /** The PEM with the private key and the certificate; forceRefresh re-reads it (the certificate was renewed). */
  getCertificate(options?: { forceRefresh?: boolean; abortSignal?: AbortSignal }): Promise<string>;
  /** Where the certificate lives, for messages. */
  readonly location: string;
}

const PRIVATE_KEY =
  /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;
const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export interface KeyVaultCertificateProviderOptions {
  /** Reads the certificate's secret (same name as the certificate; `kind: 'certificate'` for its messages). */
  readonly secrets: Pick<KeyVaultSecretProvider, 'getSecret' | 'location'>;
  readonly certificateName: string;
  readonly clientId: string;
  readonly now?: () => number;
}

/**
 * The app's certificate from Key Vault, read through the certificate's secret: Key Vault serves a certificate
 * with an exportable key as a secret of the same name holding the key and the certificate, in PEM when the
 * certificate policy's content type is `application/x-pem-file`
 * (https://learn.microsoft.com/azure/key-vault/certificates/how-to-export-certificate). It stays in memory:
 * the SDK's ClientCertificateCredential takes the PEM itself, so nothing is written to disk. The key and the
 * PEM are registered for redaction. A certificate in PKCS#12, without a key (not exportable), or outside its
 * validity is refused with what to do, before Entra is asked.
 */
export class KeyVaultCertificateProvider implements CertificateProvider {
  readonly location: string;

  constructor(private readonly o: KeyVaultCertificateProviderOptions) {
    this.location = o.secrets.location;
  }

  async getCertificate(options: { forceRefresh?: boolean; abortSignal?: AbortSignal } = {}): Promise<string> {
    const { value, contentType } = await this.o.secrets.getSecret(options);
    const key = PRIVATE_KEY.exec(value)?.[0];
    if (key) registerKey(key);
    if (contentType === 'application/x-pkcs12') {
      throw new ExportError(
        `${this.location} is stored as PKCS#12 (PFX): the exporter reads it as PEM. Create a new version whose policy has secretProperties.contentType 'application/x-pem-file' (docs/deploy.md, certificate mode), and upload its public certificate to the app registration ${this.o.clientId}.`,
      );
    }
    const pem = CERTIFICATE.exec(value)?.[0];
    if (!pem) {
      throw new ExportError(
        `${this.location} holds no certificate (content type ${contentType ?? 'none'}): expected the PEM of a Key Vault certificate. Check that KEY_VAULT_CERTIFICATE_NAME names a certificate, not a secret.`,
      );
    }
    if (!key) {
      throw new ExportError(
        `${this.location} has no private key in its secret: its key is not exportable (keyProperties.exportable false), so Key Vault gives only the public certificate. ` +
          'Create a new version with an exportable key (docs/deploy.md, certificate mode), and upload its public certificate to the app registration.',
      );
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch {
      throw new ExportError(
        `${this.location} holds a certificate that cannot be parsed: create a new version.`,
      );
    }
    const now = (this.o.now ?? Date.now)();
    const validTo = new Date(certificate.validTo);
    const validFrom = new Date(certificate.validFrom);
    const thumbprint = certificate.fingerprint.replace(/:/g, '');
    if (validTo.getTime() <= now) {
      throw new ExportError(
        `${this.location} (thumbprint ${thumbprint}) expired on ${validTo.toISOString()}. Renew it (az keyvault certificate create with the same policy, or let its lifetime action renew it), ` +
          `then upload the new public certificate to the app registration: az ad app credential reset --id ${this.o.clientId} --cert @cert.pem --append.`,
      );
    }
    if (validFrom.getTime() > now) {
      throw new ExportError(
        `${this.location} (thumbprint ${thumbprint}) is not valid before ${validFrom.toISOString()}: check the clock, or wait.`,
      );
    }
    return `${key}\n${pem}\n`;
  }
}

/** Registers a private key for redaction: the PEM block, its base64 body in one piece, and each of its lines. */
function registerKey(key: string): void {
  registerSecret(key, { longLived: true });
  const lines = key.split(/\r?\n/).filter((line) => line !== '' && !line.startsWith('-----'));
  registerSecret(lines.join(''), { longLived: true });
  for (const line of lines) registerSecret(line, { longLived: true });
}
