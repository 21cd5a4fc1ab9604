import { constants, createHash, verify, X509Certificate, type KeyObject } from 'node:crypto';

/** `client_assertion_type` of a JWT client assertion (RFC 7523). */
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** A federated identity credential on the app registration (what `az ad app federated-credential create` adds). */
export interface FederatedCredential {
  readonly issuer: string;
  readonly subject: string;
  readonly audiences: readonly string[];
}

/** What the assertion check reads from its tenant. */
export interface AssertionContext {
  /** The app registration's federated identity credentials. */
  readonly federatedCredentials: readonly FederatedCredential[];
  /** Public certificates uploaded to the app registration (PEM). */
  readonly appCertificates: readonly string[];
  /** The issuer of the tenant's managed identity tokens, and the key that signs them. */
  readonly identityIssuer: string;
  identitySigningKey(): KeyObject;
  clock(): number;
}

/** Entra's refusal of an assertion: the HTTP status, OAuth error and AADSTS code with its description. */
export interface AssertionRefusal {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  readonly description: string;
}

interface Jwt {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  readonly signedPart: string;
  readonly signature: Buffer;
}

function parseJwt(text: string): Jwt | undefined {
  const parts = text.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const [header, payload] = parts
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>);
    if (typeof header !== 'object' || typeof payload !== 'object' || !header || !payload) return undefined;
    return {
      header,
      payload,
      signedPart: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2] ?? '', 'base64url'),
    };
  } catch {
    return undefined;
  }
}

const malformed: AssertionRefusal = {
  status: 400,
  error: 'invalid_request',
  code: 50027,
  description: 'JWT token is invalid or malformed.',
};

/** Verifies an RS256 or PS256 signature with a public key. */
function signatureValid(jwt: Jwt, key: KeyObject): boolean {
  const alg = jwt.header.alg;
  if (alg !== 'RS256' && alg !== 'PS256') return false;
  return verify(
    'sha256',
    Buffer.from(jwt.signedPart),
    alg === 'PS256'
      ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
      : { key, padding: constants.RSA_PKCS1_PADDING },
    jwt.signature,
  );
}

/** Whether the assertion's validity window holds now (Entra allows five minutes of clock skew). */
function timeRefusal(jwt: Jwt, nowMs: number): AssertionRefusal | undefined {
  const skew = 300;
  const now = Math.floor(nowMs / 1000);
  const exp = Number(jwt.payload.exp);
  const nbf = Number(jwt.payload.nbf ?? jwt.payload.iat ?? 0);
  if (!Number.isFinite(exp) || exp + skew <= now || nbf - skew > now) {
    return {
      status: 400,
      error: 'invalid_client',
      code: 700024,
      description: `Client assertion is not within its valid time range. Current time: ${new Date(now * 1000).toISOString()}, assertion valid from ${new Date(nbf * 1000).toISOString()}, expiry time of assertion ${new Date((Number.isFinite(exp) ? exp : 0) * 1000).toISOString()}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
    };
  }
  return undefined;
}

/**
 * Checks a client assertion as Entra does for the app `clientId` at `tokenEndpoint`, and answers the refusal,
 * if any, with Entra's code (https://learn.microsoft.com/entra/identity-platform/reference-error-codes):
 * - signed with a certificate (`x5t#S256` or `x5t` header): the certificate must be uploaded to the app
 *   (700027 otherwise), the signature valid with its public key (700027), `iss` = `sub` = the client ID, `aud`
 *   the token endpoint, and the time window current (700024);
 * - a federated token (the managed identity's): a federated credential of the app must match its issuer
 *   (700211), subject (700213) and audience (700212), none at all is 70021; the issuer's key must verify the
 *   signature (50013) and the token must be current (700024).
 */
export function checkClientAssertion(
  t: AssertionContext,
  clientId: string,
  assertion: string,
  tokenEndpoint: string,
): AssertionRefusal | undefined {
  const jwt = parseJwt(assertion);
  if (!jwt) return malformed;
  const sha256 = jwt.header['x5t#S256'];
  const sha1 = jwt.header.x5t;
  if (typeof sha256 === 'string' || typeof sha1 === 'string') {
    return checkCertificateAssertion(t, clientId, jwt, tokenEndpoint, { sha256, sha1 });
  }
  return checkFederatedAssertion(t, jwt);
}

function checkCertificateAssertion(
  t: AssertionContext,
  clientId: string,
  jwt: Jwt,
  tokenEndpoint: string,
  thumbprints: { sha256: unknown; sha1: unknown },
): AssertionRefusal | undefined {
  const registered = t.appCertificates
    .map((pem) => new X509Certificate(pem))
    .find((cert) => {
      const der = cert.raw;
      return (
        thumbprints.sha256 === createHash('sha256').update(der).digest('base64url') ||
        thumbprints.sha1 === createHash('sha1').update(der).digest('base64url')
      );
    });
  const shown = String(thumbprints.sha256 ?? thumbprints.sha1);
  if (!registered) {
    return {
      status: 401,
      error: 'invalid_client',
      code: 700027,
      description: `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${clientId}'.]`,
    };
  }
  if (!signatureValid(jwt, registered.publicKey)) {
    return {
      status: 401,
      error: 'invalid_client',
      code: 700027,
      description: 'Client assertion failed signature validation.',
    };
  }
  if (new Date(registered.validTo).getTime() <= t.clock()) {
    return {
      status: 401,
      error: 'invalid_client',
      code: 700027,
      description: `Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '${shown}', Found key 'Start=${registered.validFrom}, End=${registered.validTo}']`,
    };
  }
  if (jwt.payload.iss !== clientId || jwt.payload.sub !== clientId || jwt.payload.aud !== tokenEndpoint) {
    return malformed;
  }
  return timeRefusal(jwt, t.clock());
}

function checkFederatedAssertion(t: AssertionContext, jwt: Jwt): AssertionRefusal | undefined {
  const text = (value: unknown): string => (typeof value === 'string' ? value : '');
  const issuer = text(jwt.payload.iss);
  const subject = text(jwt.payload.sub);
  const audiences = ([] as unknown[]).concat(jwt.payload.aud ?? []).map(String);
  const presented = `Assertion Issuer: '${issuer}'. Assertion Subject: '${subject}'. Assertion Audience: '${audiences.join(',')}'.`;
  const check =
    ' Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation';
  const refuse = (code: number, description: string): AssertionRefusal => ({
    status: 400,
    error: 'invalid_request',
    code,
    description,
  });
  const fics = t.federatedCredentials;
  if (fics.length === 0) {
    return refuse(
      70021,
      `No matching federated identity record found for presented assertion. ${presented}${check}`,
    );
  }
  const byIssuer = fics.filter((f) => f.issuer === issuer);
  if (byIssuer.length === 0) {
    return refuse(
      700211,
      `No matching federated identity record found for presented assertion issuer '${issuer}'.${check}`,
    );
  }
  const bySubject = byIssuer.filter((f) => f.subject === subject);
  if (bySubject.length === 0) {
    return refuse(
      700213,
      `No matching federated identity record found for presented assertion subject '${subject}'.${check}`,
    );
  }
  if (!bySubject.some((f) => f.audiences.some((a) => audiences.includes(a)))) {
    return refuse(
      700212,
      `No matching federated identity record found for presented assertion audience '${audiences.join(',')}'.${check}`,
    );
  }
  if (issuer !== t.identityIssuer || !signatureValid(jwt, t.identitySigningKey())) {
    return {
      status: 401,
      error: 'invalid_client',
      code: 50013,
      description: 'Assertion failed signature validation. [Reason - The key was not found.]',
    };
  }
  // The identity's tokens are dated by the host's clock (SimulatedTenant.issueIdentityToken).
  return timeRefusal(jwt, Date.now());
}
