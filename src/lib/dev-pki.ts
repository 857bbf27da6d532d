/**
 * A throwaway mesh PKI for `hopguard dev` and tests: a CA and the certificates a mesh would
 * give its workloads (URI SAN = SPIFFE ID) and the STS (DNS/IP SANs). Keys are RSA 2048,
 * generated and used for signing by node:crypto; node-forge only assembles the X.509
 * structures (Node has no certificate builder; forge's own RSA is pure JavaScript and far
 * slower). Nothing here is for production certificates.
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import forge from 'node-forge';

export interface IssuedCert {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertRequest {
  readonly cn?: string;
  /** URI SANs (SPIFFE IDs). */
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  /** Default: valid from an hour ago for a day. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** A key of its own even when the PKI shares one among leaves. */
  readonly freshKey?: boolean;
}

export interface Pki {
  readonly caPem: string;
  issue(req: CertRequest): IssuedCert;
}

function rsaKeys(): { pub: forge.pki.rsa.PublicKey; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { pub: forge.pki.publicKeyFromPem(publicKey), keyPem: privateKey };
}

/** Signs `cert` (sha256WithRSAEncryption) with node:crypto, as forge's cert.sign would. */
function signCert(cert: forge.pki.Certificate, issuerKeyPem: string): void {
  const oid = forge.pki.oids['sha256WithRSAEncryption'] as string;
  cert.signatureOid = oid;
  (cert as unknown as { siginfo: { algorithmOid: string } }).siginfo.algorithmOid = oid;
  // In forge, missing from its type definitions.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  (cert as unknown as { tbsCertificate: unknown }).tbsCertificate = tbs;
  const der = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.signature = sign('sha256', der, issuerKeyPem).toString('binary');
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive
  return b.toString('hex');
}

function window(req: CertRequest): [Date, Date] {
  const now = Date.now();
  return [req.notBefore ?? new Date(now - 3_600_000), req.notAfter ?? new Date(now + 86_400_000)];
}

export interface PkiOptions {
  /**
   * One key pair for every leaf certificate instead of one each: RSA key generation is most
   * of the cost, and a test suite issuing dozens of certificates does not need distinct keys.
   */
  readonly shareLeafKey?: boolean;
}

/** A new CA (self-signed) that issues leaf certificates for both TLS client and server use. */
export function createPki(name = 'hopguard dev CA', opts: PkiOptions = {}): Pki {
  const ca = rsaKeys();
  let shared: ReturnType<typeof rsaKeys> | undefined;
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = ca.pub;
  caCert.serialNumber = serial();
  const [nb, na] = window({ notAfter: new Date(Date.now() + 7 * 86_400_000) });
  caCert.validity.notBefore = nb;
  caCert.validity.notAfter = na;
  const caName = [{ name: 'commonName', value: name }];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCert(caCert, ca.keyPem);
  const caPem = forge.pki.certificateToPem(caCert);

  return {
    caPem,
    issue(req) {
      const k = opts.shareLeafKey === true && req.freshKey !== true ? (shared ??= rsaKeys()) : rsaKeys();
      const cert = forge.pki.createCertificate();
      cert.publicKey = k.pub;
      cert.serialNumber = serial();
      const [from, to] = window(req);
      cert.validity.notBefore = from;
      cert.validity.notAfter = to;
      cert.setSubject([{ name: 'commonName', value: req.cn ?? req.uris?.[0]?.split('/').pop() ?? req.dns?.[0] ?? 'leaf' }]);
      cert.setIssuer(caCert.subject.attributes);
      const altNames = [
        ...(req.uris ?? []).map((value) => ({ type: 6, value })),
        ...(req.dns ?? []).map((value) => ({ type: 2, value })),
        ...(req.ips ?? []).map((ip) => ({ type: 7, ip })),
      ];
      const extensions: object[] = [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        { name: 'subjectKeyIdentifier' },
      ];
      if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
      cert.setExtensions(extensions);
      signCert(cert, ca.keyPem);
      return { certPem: forge.pki.certificateToPem(cert), keyPem: k.keyPem };
    },
  };
}
