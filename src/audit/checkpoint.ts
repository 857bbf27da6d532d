/**
 * Signed checkpoints (SPEC §8): a compact JWS, `typ` `hopguard-checkpoint+jwt`, over
 * `{chain, seq, hash, ts}` (+ `final: true` at shutdown), where `hash` is the chain hash of
 * the event just before the checkpoint and `seq` the checkpoint's own. A checkpoint ties
 * everything linked before it to a key that an attacker on the log path does not hold: the
 * hash chain alone can be recomputed by anyone who rewrites a tail.
 *
 * Signing is synchronous (node:crypto): a checkpoint is one link of the chain, and the next
 * event's `prev` needs its hash, so an asynchronous signature would stall the chain. It
 * costs tens of microseconds once per `audit.checkpoint_interval`. Verification (`audit
 * verify`) goes through jose, an independent implementation of the same JWS.
 */
import { createPrivateKey, createPublicKey, verify, type KeyObject } from 'node:crypto';
// jose's entry points one by one: its package root loads every JWS/JWE/JWT module (~45),
// which `serve` (it loads this module for the signing key) would carry for nothing.
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { compactVerify } from 'jose/jws/compact/verify';
import { BoundedReadError, fileReader } from '../lib/bounded-read.js';
import { jwsAlgorithm, type JwsAlgorithm } from '../token/algorithms.js';
import { compactJws, encodeJsonHeader, jwsSignature } from '../token/jws-node.js';
import { isParseFailure, parseCompact } from '../token/jws.js';
import type { JwkSet } from '../token/jwks.js';
import { parseStrictJson } from '../token/json.js';
import { canonicalize } from './jcs.js';

export const CHECKPOINT_TYP = 'hopguard-checkpoint+jwt';
/** Algorithms a checkpoint key may use (SPEC §8). */
export const CHECKPOINT_ALGS = ['ES256', 'EdDSA'] as const;
export type CheckpointAlg = (typeof CHECKPOINT_ALGS)[number];
/** A private JWK is a few hundred bytes; anything this big is not one. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** What a checkpoint's JWS payload states. */
export interface CheckpointClaims {
  readonly chain: string;
  readonly seq: number;
  /** Chain hash of the event just before the checkpoint (its `prev`). */
  readonly hash: string;
  readonly ts: string;
  readonly final?: true;
}

export interface CheckpointSigner {
  readonly kid: string;
  readonly alg: CheckpointAlg;
  /** Compact JWS over the claims (payload in JCS form). Synchronous; throws only on a broken key. */
  sign(claims: CheckpointClaims): string;
}

export type SigningKeyErrorCode = 'read_failed' | 'too_large' | 'invalid_json' | 'public_key' | 'unsupported_key' | 'invalid_key';

/** Why a checkpoint key file cannot be used; the message names the file and the problem. */
export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
  constructor(
    readonly code: SigningKeyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const PROBE = 'hopguard checkpoint key self-test';

/**
 * A checkpoint signer from a private JWK (the parsed JSON of `audit.signing_key_file`):
 * EC P-256 (ES256) or OKP Ed25519 (EdDSA). `kid` is the JWK's, else its RFC 7638
 * thumbprint. The key is checked by signing and verifying a probe with the JWK's own public
 * members, so a file whose `d` does not belong to its `x`/`y` is refused here rather than
 * producing checkpoints nobody can verify.
 */
export async function signerFromJwk(doc: unknown, where = 'the key'): Promise<CheckpointSigner> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new SigningKeyError('invalid_key', `${where} is not a JWK (a JSON object)`);
  }
  const jwk = doc as Record<string, unknown>;
  if (Array.isArray(jwk['keys'])) {
    throw new SigningKeyError('invalid_key', `${where} is a JWKS; a single private JWK is needed`);
  }
  const kty = jwk['kty'];
  const crv = jwk['crv'];
  let alg: CheckpointAlg;
  if (kty === 'EC' && crv === 'P-256') alg = 'ES256';
  else if (kty === 'OKP' && crv === 'Ed25519') alg = 'EdDSA';
  else {
    throw new SigningKeyError(
      'unsupported_key',
      `${where} is a ${String(kty)}${crv === undefined ? '' : ' ' + String(crv)} key; checkpoints need EC P-256 (ES256) or OKP Ed25519 (EdDSA)`,
    );
  }
  if (jwk['alg'] !== undefined && jwk['alg'] !== alg) {
    throw new SigningKeyError('unsupported_key', `${where} has "alg": ${JSON.stringify(jwk['alg'])}, but its key type signs ${alg}`);
  }
  if (typeof jwk['d'] !== 'string' || jwk['d'] === '') {
    throw new SigningKeyError('public_key', `${where} is a public key (no "d"); checkpoints need the private key`);
  }
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig') {
    throw new SigningKeyError('invalid_key', `${where} has "use": ${JSON.stringify(jwk['use'])}, not "sig"`);
  }
  const ops = jwk['key_ops'];
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes('sign'))) {
    throw new SigningKeyError('invalid_key', `${where} has "key_ops" without "sign"`);
  }
  const members: Record<string, string> = {};
  for (const m of alg === 'ES256' ? ['kty', 'crv', 'x', 'y', 'd'] : ['kty', 'crv', 'x', 'd']) {
    const v = jwk[m];
    if (typeof v !== 'string' || v === '') throw new SigningKeyError('invalid_key', `${where} lacks "${m}"`);
    members[m] = v;
  }
  let key: KeyObject;
  let pub: KeyObject;
  try {
    key = createPrivateKey({ key: members, format: 'jwk' });
    const { d: _d, ...publicMembers } = members;
    pub = createPublicKey({ key: publicMembers, format: 'jwk' });
  } catch (err) {
    throw new SigningKeyError('invalid_key', `${where} is not a valid ${alg} key: ${err instanceof Error ? err.message : String(err)}`);
  }
  const algorithm = jwsAlgorithm(alg) as JwsAlgorithm; // ES256 and EdDSA are in the table
  const digest = alg === 'ES256' ? 'sha256' : null;
  let selfTest: boolean;
  try {
    // Signed as checkpoints will be (token/jws-node.ts), verified with the JWK's public part.
    const sig = jwsSignature(algorithm, key, PROBE);
    selfTest = verify(digest, Buffer.from(PROBE, 'latin1'), { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    selfTest = false;
  }
  if (!selfTest) throw new SigningKeyError('invalid_key', `${where}: its private part does not match its public part`);
  const kid =
    typeof jwk['kid'] === 'string' && jwk['kid'] !== ''
      ? jwk['kid']
      : await calculateJwkThumbprint(publicJwkOf(members), 'sha256');
  const header = encodeJsonHeader({ alg, typ: CHECKPOINT_TYP, kid });
  return {
    kid,
    alg,
    sign(claims: CheckpointClaims): string {
      return compactJws(algorithm, key, header, canonicalize(claims));
    },
  };
}

function publicJwkOf(m: Readonly<Record<string, string>>): Record<string, string> {
  const { d: _d, ...pub } = m;
  return pub;
}

/** Reads and imports `audit.signing_key_file`. Errors name the file and say what is wrong. */
export async function loadSigningKey(file: string): Promise<{ signer: CheckpointSigner; text: string }> {
  const text = await readKeyFile(file);
  return { signer: await signerFromText(text, file), text };
}

/** A signer from the text of a key file (`file` only names it in errors). */
export async function signerFromText(text: string, file: string): Promise<CheckpointSigner> {
  const parsed = parseStrictJson(new TextEncoder().encode(text));
  if (!parsed.ok) throw new SigningKeyError('invalid_json', `${file} is not a JSON private JWK: ${parsed.problem}`);
  return signerFromJwk(parsed.value, file);
}

/** A key file read may take this long (a hung mount must not hold start-up or the watcher). */
export const KEY_FILE_READ_TIMEOUT_MS = 5_000;

/**
 * The file's text, through symlinks (Kubernetes Secret volumes), by the process's bounded
 * reader (src/lib/bounded-read.ts): a regular file only, at most MAX_KEY_FILE_BYTES, within
 * KEY_FILE_READ_TIMEOUT_MS.
 */
export async function readKeyFile(file: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await fileReader.read(file, { maxBytes: MAX_KEY_FILE_BYTES, timeoutMs: KEY_FILE_READ_TIMEOUT_MS });
  } catch (err) {
    if (err instanceof BoundedReadError && err.code === 'too_large') {
      throw new SigningKeyError('too_large', `${file} is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    }
    const detail = err instanceof BoundedReadError ? err.message : err instanceof Error ? err.message : String(err);
    throw new SigningKeyError('read_failed', `cannot read ${file}: ${detail}`);
  }
  return new TextDecoder().decode(bytes);
}

// ---------------------------------------------------------------------------------------
// Verification (hopguard audit verify)

export type CheckpointProblem =
  | 'missing_signature' // no `jws` on the checkpoint event
  | 'malformed_signature' // not a compact JWS of the checkpoint profile
  | 'checkpoint_mismatch' // the signed claims are not this event's chain/seq/prev/ts/final
  | 'unknown_key' // kid not in the verifier's JWKS, or not a key for alg
  | 'bad_signature';

export type CheckpointCheck =
  | { readonly ok: true; readonly final: boolean; /** false: no keys given, the signature was not checked */ readonly verified: boolean }
  | { readonly ok: false; readonly problem: CheckpointProblem; readonly detail: string };

function fail(problem: CheckpointProblem, detail: string): CheckpointCheck {
  return { ok: false, problem, detail };
}

/**
 * Checks a checkpoint event: its JWS must be of the checkpoint profile and state exactly the
 * event's chain, seq, prev (as `hash`), ts and finality; with `keys`, its signature must
 * verify with the key its `kid` names. The JWS claims are checked even without keys.
 */
export async function checkCheckpoint(event: Readonly<Record<string, unknown>>, keys: JwkSet | undefined): Promise<CheckpointCheck> {
  const jws = event['jws'];
  if (typeof jws !== 'string' || jws === '') return fail('missing_signature', 'the checkpoint has no "jws"');
  const parsed = parseCompact(jws);
  if (isParseFailure(parsed)) return fail('malformed_signature', `jws: ${parsed.detail}`);
  const { header, payload } = parsed;
  const alg = header['alg'];
  const kid = header['kid'];
  if (header['typ'] !== CHECKPOINT_TYP) return fail('malformed_signature', `jws "typ" is not ${CHECKPOINT_TYP}`);
  if (typeof alg !== 'string' || !(CHECKPOINT_ALGS as readonly string[]).includes(alg)) {
    return fail('malformed_signature', `jws "alg" is not one of ${CHECKPOINT_ALGS.join(', ')}`);
  }
  if (typeof kid !== 'string' || kid === '') return fail('malformed_signature', 'jws has no "kid"');
  const final = event['final'] === true;
  const expected: Record<string, unknown> = {
    chain: event['chain'],
    seq: event['seq'],
    hash: event['prev'],
    ts: event['ts'],
  };
  if (final) expected['final'] = true;
  const names = Object.keys(payload);
  for (const k of names) {
    if (!Object.hasOwn(expected, k)) return fail('checkpoint_mismatch', `the signed claims carry "${k}", which a checkpoint never signs`);
  }
  for (const [k, v] of Object.entries(expected)) {
    if (payload[k] !== v) {
      const what = k === 'hash' ? 'hash (of the event before it)' : k === 'final' ? 'final' : k;
      return fail('checkpoint_mismatch', `the signed ${what} does not match the checkpoint event`);
    }
  }
  if (event['final'] !== undefined && !final) return fail('checkpoint_mismatch', '"final" on the event is not true');
  if (keys === undefined) return { ok: true, final, verified: false };
  const found = await keys.lookup(kid, alg);
  if (found.status !== 'found') {
    return fail('unknown_key', `kid ${JSON.stringify(kid)} is ${found.status === 'unknown' ? 'not in the JWKS' : `not a usable ${alg} key`}`);
  }
  try {
    await compactVerify(jws, found.key, { algorithms: [alg] }); // typ was checked above
  } catch {
    return fail('bad_signature', `the signature does not verify with kid ${JSON.stringify(kid)}`);
  }
  return { ok: true, final, verified: true };
}
