import { createHash, X509Certificate } from 'node:crypto';
import type { Memo } from './memo.js';

/**
 * RFC 8705 certificate thumbprint of the caller's mTLS certificate, as Envoy hands it over
 * in `attributes.source.certificate` (a URL-encoded PEM). Pure computation: node:crypto's
 * X.509 parser and SHA-256, no I/O.
 */

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/** A leaf certificate is a few KiB; anything far larger is not one we will parse. */
const MAX_INPUT_CHARS = 64 * 1024;

function compute(envoyCertificate: string): string | undefined {
  if (envoyCertificate.length > MAX_INPUT_CHARS) return undefined;
  let pem: string;
  try {
    pem = decodeURIComponent(envoyCertificate);
  } catch {
    return undefined; // malformed URL encoding
  }
  const begin = pem.indexOf(BEGIN);
  if (begin === -1) return undefined;
  const end = pem.indexOf(END, begin + BEGIN.length);
  if (end === -1) return undefined;
  try {
    // Only the first block: Envoy sends the peer's leaf certificate first.
    const cert = new X509Certificate(pem.slice(begin, end + END.length));
    return createHash('sha256').update(cert.raw).digest('base64url');
  } catch {
    return undefined; // not a parsable certificate
  }
}

/**
 * base64url (unpadded) SHA-256 of the DER of the first CERTIFICATE block of Envoy's
 * URL-encoded PEM, i.e. the value an RFC 8705 `cnf.x5t#S256` must equal; undefined when the
 * input is not decodable or holds no parsable certificate.
 *
 * `memo`: each caller presents the same certificate on every request, and parsing X.509
 * costs far more than a lookup, so the caller may pass a memo it owns (null records "not a
 * certificate"). It must be bounded: the input comes from the network side.
 */
export function x5tS256(envoyCertificate: string, memo?: Memo<string, string | null>): string | undefined {
  if (memo === undefined || envoyCertificate.length > MAX_INPUT_CHARS) return compute(envoyCertificate);
  const hit = memo.get(envoyCertificate);
  if (hit !== undefined) return hit ?? undefined;
  const result = compute(envoyCertificate);
  memo.set(envoyCertificate, result ?? null);
  return result;
}
