import { generate } from 'selfsigned';

/** A TLS key pair for 127.0.0.1; clients trust it by passing `cert` as their CA. */
export interface LoopbackCertificate {
  readonly cert: string;
  readonly key: string;
}

let cached: Promise<LoopbackCertificate> | undefined;

/**
 * A self-signed certificate for 127.0.0.1 and localhost, generated in memory (nothing on disk) once per
 * process: generating an RSA key takes about half a second.
 */
export function createLoopbackCertificate(): Promise<LoopbackCertificate> {
  cached ??= generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 30 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  }).then((pems) => ({ cert: pems.cert, key: pems.private }));
  return cached;
}

/**
 * A self-signed certificate for an app registration (client authentication), generated in memory: what a Key
 * Vault certificate with a self-signed issuer holds.
 */
export async function createAppCertificate(
  subject: string,
  validity: { notBefore: Date; notAfter: Date },
): Promise<LoopbackCertificate> {
  const pems = await generate([{ name: 'commonName', value: subject.replace(/^CN=/, '') }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: validity.notBefore,
    notAfterDate: validity.notAfter,
    extensions: [
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
