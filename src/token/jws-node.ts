/**
 * JWS signatures made and checked synchronously with node:crypto (KeyObjects). WebCrypto's
 * subtle.sign/verify cost a thread-pool job, a promise and WebIDL conversions per call —
 * measured for ES256 on the 2-core bench machine: sign 65.7 µs CPU against 28.0 µs for
 * node:crypto, verify 100.1 µs against 56.0 µs. Used where that matters more than keeping
 * the main thread free: the STS's tokens and its subject-token checks (one of each per
 * exchange), and the audit chain's checkpoints (signed before the next event can be
 * linked, so they cannot wait). serve verifies on WebCrypto (token/verifier.ts): a sidecar
 * verifies a token once and answers from its cache, and the pool keeps the event loop free.
 */
import { constants, KeyObject, sign as nodeSign, verify as nodeVerify, type webcrypto } from 'node:crypto';
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

/** Whether `signature` is `a`'s signature of `signingInput` by `key` (a WebCrypto public key). */
export function jwsVerifySync(a: JwsAlgorithm, key: webcrypto.CryptoKey, signingInput: Uint8Array, signature: Uint8Array): boolean {
  const k = KeyObject.from(key);
  const digest = digestOf(a);
  switch (a.keyName) {
    case 'ECDSA':
      return nodeVerify(digest, signingInput, { key: k, dsaEncoding: 'ieee-p1363' }, signature);
    case 'RSA-PSS':
      return nodeVerify(digest, signingInput, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: a.verify.saltLength ?? 32 }, signature);
    default: // RSASSA-PKCS1-v1_5, Ed25519
      return nodeVerify(digest, signingInput, k, signature);
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
