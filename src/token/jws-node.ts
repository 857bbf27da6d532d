/**
 * JWS signatures made synchronously with node:crypto (a KeyObject), for the issuing side:
 * the STS's tokens and the audit chain's checkpoints (signed before the next event can be
 * linked, so they cannot wait for a thread-pool job). For ES256 on the 2-core bench machine
 * node:crypto's sign costs 28.0 µs CPU against 65.7 µs for WebCrypto's subtle.sign (a job,
 * a promise and WebIDL conversions per call).
 *
 * Verification stays on WebCrypto (token/verifier.ts), in the STS too: a synchronous
 * verify (56 µs against 100 µs CPU) lowered the exchange bench's throughput from 0.78/0.80×
 * to 0.67/0.73× of the baseline, because on the pool it runs beside the event loop.
 */
import { constants, sign as nodeSign, type KeyObject } from 'node:crypto';
import { encodeBase64url } from './base64url.js';
import type { JwsAlgorithm } from './algorithms.js';

type NodeDigest = 'sha256' | 'sha384' | 'sha512' | null;

function digestOf(a: JwsAlgorithm): NodeDigest {
  switch (a.hash) {
    case 'SHA-256':
      return 'sha256';
    case 'SHA-384':
      return 'sha384';
    case 'SHA-512':
      return 'sha512';
    default:
      return null; // Ed25519 hashes internally
  }
}

/** The raw JWS signature of `signingInput` (ASCII) with `key` by algorithm `a`. */
export function jwsSignature(a: JwsAlgorithm, key: KeyObject, signingInput: string): Buffer {
  const data = Buffer.from(signingInput, 'latin1');
  const digest = digestOf(a);
  switch (a.keyName) {
    case 'ECDSA':
      // JWS carries r||s (IEEE P1363), not DER.
      return nodeSign(digest, data, { key, dsaEncoding: 'ieee-p1363' });
    case 'RSA-PSS':
      return nodeSign(digest, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: a.verify.saltLength ?? 32 });
    default: // RSASSA-PKCS1-v1_5, Ed25519
      return nodeSign(digest, data, key);
  }
}

/** A compact JWS: `header` is the already-encoded protected header, `payload` the claims' JSON text. */
export function compactJws(a: JwsAlgorithm, key: KeyObject, encodedHeader: string, payload: string): string {
  const input = encodedHeader + '.' + Buffer.from(payload, 'utf8').toString('base64url');
  return input + '.' + encodeBase64url(jwsSignature(a, key, input));
}

/** base64url of a JSON text (a protected header). */
export function encodeJsonHeader(header: Readonly<Record<string, unknown>>): string {
  return Buffer.from(JSON.stringify(header), 'utf8').toString('base64url');
}
