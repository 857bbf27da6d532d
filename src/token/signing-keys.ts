/**
 * The STS's signing keys (SPEC §7 "Keys"): a directory of private JWK files, watched like a
 * `jwks_file` (Kubernetes Secret updates included). Every key is published in `/jwks.json`;
 * the one that signs is the greatest `kid` among the keys this process has known for at
 * least `publish_ahead` (keys present at start-up count as known), so a rotated-in key is
 * fetched by every sidecar before a token signed with it reaches one.
 *
 * A directory version is read whole and replaces the previous one only when every file in
 * it is a usable private key: an unreadable directory, an unreadable or invalid file, a
 * public key only, two files with one kid, or no key at all keeps the previous keys.
 */
import { createHash, KeyObject, randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import { DELEGATION_TYP as ISSUED_TYP, STS_SIGNING_ALGORITHMS } from '../core/exchange.js';
import { BoundedReadError, fileReader } from '../lib/bounded-read.js';
import { PathWatcher } from '../lib/path-watcher.js';
import { realTimers, type Timers } from '../lib/timers.js';
import { jwsAlgorithm, keyFitsAlgorithm, type JwsAlgorithm } from './algorithms.js';
import { compactJws, encodeJsonHeader, jwsSignature } from './jws-node.js';
import { parseStrictJson } from './json.js';
import { parseJwks, type JwkSet } from './jwks.js';
import type { KeyLookup, KeySource } from './types.js';

/** Algorithms the STS signs with (every one a sidecar can verify; no HMAC, never `none`). */
export const SIGNING_ALGS: readonly string[] = STS_SIGNING_ALGORITHMS;

/** A private JWK file is a few hundred bytes (RSA 4096: ~3.2 KiB). */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
/** More files than this in the key directory is a mistake, not a rotation. */
export const MAX_KEY_FILES = 64;
/** Each key file read (a hung mount must not hold a check forever). */
export const KEY_FILE_READ_TIMEOUT_MS = 5_000;
export const DEFAULT_KEY_POLL_MS = 30_000;

/** `typ` of every token the STS issues. */
export const DELEGATION_TYP = ISSUED_TYP;

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  /** The same private key for node:crypto's synchronous sign (token/jws-node.ts). */
  readonly keyObject: KeyObject;
  readonly algorithm: JwsAlgorithm;
  /** The encoded protected header every token of this key carries: alg, typ, kid. */
  readonly encodedHeader: string;
  /** Public members plus `kid`, `alg`, `use: "sig"`: what `/jwks.json` publishes. */
  readonly publicJwk: JWK;
  /** The JWK's `iat` member (seconds) when present (hopguard keygen writes it), else the file's mtime; ms. */
  readonly createdAtMs: number;
}

export type KeyDirErrorCode = 'read_failed' | 'invalid_key' | 'duplicate_kid' | 'no_keys' | 'kid_reused';

export class KeyDirError extends Error {
  override readonly name = 'KeyDirError';
  constructor(
    readonly code: KeyDirErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** One load attempt of the directory, for logs and metrics. */
export type KeyDirLoad =
  | { readonly ok: true; readonly changed: boolean; readonly kids: readonly string[] }
  | { readonly ok: false; readonly code: KeyDirErrorCode; readonly message: string; readonly keptKids: readonly string[] };

export interface KeyDirectoryOptions {
  readonly dir: string;
  readonly publishAheadMs: number;
  /** Wall clock, ms (injected in tests). */
  readonly now: () => number;
  /** Fallback re-check period; default 30 s. */
  readonly pollMs?: number;
  readonly timers?: Timers;
  readonly debounceMs?: number;
  /** Watch the directory (default true). */
  readonly watch?: boolean;
  readonly onLoad?: (r: KeyDirLoad) => void;
}

const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'x', 'y'],
  OKP: ['crv', 'x'],
  RSA: ['n', 'e'],
};

function problemOf(e: unknown): string {
  return e instanceof KeyDirError ? e.message : `unexpected: ${e instanceof Error ? e.message : String(e)}`;
}

/** A private JWK file's contents → a key that has proven it signs what its public half verifies. */
export async function parsePrivateJwk(bytes: Uint8Array, name: string, mtimeMs: number): Promise<SigningKey> {
  const fail = (why: string): never => {
    throw new KeyDirError('invalid_key', `${name}: ${why}`);
  };
  const json = parseStrictJson(bytes);
  if (!json.ok) fail(`not valid JSON (${json.problem})`);
  const v = (json as { value: unknown }).value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('not a JWK object');
  const jwk = v as Record<string, unknown>;
  const own = (k: string): unknown => (Object.hasOwn(jwk, k) ? jwk[k] : undefined);
  const kid = own('kid');
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) fail('needs a "kid" (a non-empty string)');
  const alg = own('alg');
  if (typeof alg !== 'string' || !SIGNING_ALGS.includes(alg)) fail(`needs an "alg", one of ${SIGNING_ALGS.join(', ')}`);
  const a = jwsAlgorithm(alg as string);
  if (a === undefined) return fail('unsupported alg');
  if (own('kty') !== a.kty) fail(`kty must be ${a.kty} for ${String(alg)}`);
  if (typeof own('d') !== 'string') fail('is not a private key (no "d"): the STS needs the private half');
  const use = own('use');
  if (use !== undefined && use !== 'sig') fail('"use" must be "sig"');
  const pub: Record<string, unknown> = { kty: a.kty };
  for (const m of PUBLIC_MEMBERS[a.kty] ?? []) {
    if (typeof own(m) !== 'string') fail(`missing public member "${m}"`);
    pub[m] = own(m);
  }
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  try {
    const priv = await importJWK({ ...pub, d: own('d'), ...(a.kty === 'RSA' ? rsaPrivate(jwk) : {}) } as JWK, alg as string);
    const pk = await importJWK(pub as JWK, alg as string);
    if (priv instanceof Uint8Array || pk instanceof Uint8Array) return fail('not an asymmetric key');
    privateKey = priv;
    publicKey = pk;
  } catch (e) {
    if (e instanceof KeyDirError) throw e;
    return fail(`cannot be imported as an ${String(alg)} key`);
  }
  if (privateKey.type !== 'private' || !keyFitsAlgorithm(publicKey, a)) fail(`is not usable with ${String(alg)}`);
  // A file whose public members do not belong to its private key would publish a key that
  // verifies nothing: every token would fail at every sidecar. Prove the pair at load.
  // Signed as tokens will be (node:crypto), verified as sidecars will (WebCrypto).
  const keyObject = KeyObject.from(privateKey);
  try {
    const input = randomBytes(16).toString('base64url');
    const sig = jwsSignature(a, keyObject, input);
    if (!(await crypto.subtle.verify(a.verify, publicKey, sig, Buffer.from(input, 'latin1')))) fail('its public members do not match its private key');
  } catch (e) {
    if (e instanceof KeyDirError) throw e;
    fail('cannot sign');
  }
  const iat = own('iat');
  const createdAtMs = typeof iat === 'number' && Number.isSafeInteger(iat) && iat > 0 ? iat * 1000 : mtimeMs;
  return {
    kid: kid as string,
    alg: alg as string,
    privateKey,
    keyObject,
    algorithm: a,
    encodedHeader: encodeJsonHeader({ alg: alg, typ: DELEGATION_TYP, kid: kid }),
    publicJwk: { ...(pub as JWK), kid: kid as string, alg: alg as string, use: 'sig' },
    createdAtMs,
  };
}

function rsaPrivate(jwk: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of ['p', 'q', 'dp', 'dq', 'qi']) if (typeof jwk[m] === 'string') out[m] = jwk[m];
  return out;
}

interface Version {
  /** Identity of the directory contents (names and bytes). */
  readonly fingerprint: string;
  readonly keys: readonly SigningKey[];
  /** Verification view of the public keys (hop subject tokens are verified with it). */
  readonly jwkSet: JwkSet;
  /** `{"keys":[...]}` as served. */
  readonly jwksJson: string;
}

/** Reads every key file of `dir` (dotfiles such as Kubernetes' `..data` are skipped). */
async function readVersion(dir: string): Promise<{ fingerprint: string; files: { name: string; bytes: Uint8Array; mtimeMs: number }[] }> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new KeyDirError('read_failed', `cannot read ${dir}: ${(e as { code?: string }).code ?? 'error'}`);
  }
  const names = entries
    .map((e) => e.name)
    .filter((n) => !n.startsWith('.'))
    .sort();
  const files: { name: string; bytes: Uint8Array; mtimeMs: number }[] = [];
  const hash = createHash('sha256');
  for (const name of names) {
    const file = path.join(dir, name);
    let st;
    try {
      st = await stat(file); // follows the Secret's symlinks
    } catch (e) {
      throw new KeyDirError('read_failed', `cannot read ${name}: ${(e as { code?: string }).code ?? 'error'}`);
    }
    if (st.isDirectory()) continue;
    if (files.length >= MAX_KEY_FILES) throw new KeyDirError('invalid_key', `more than ${MAX_KEY_FILES} key files`);
    let bytes: Uint8Array;
    try {
      // The bounded reader: a regular file only (a FIFO never blocks), its size checked on
      // what is read, within a deadline.
      bytes = await fileReader.read(file, { maxBytes: MAX_KEY_FILE_BYTES, timeoutMs: KEY_FILE_READ_TIMEOUT_MS });
    } catch (e) {
      if (e instanceof BoundedReadError && e.code === 'too_large') throw new KeyDirError('invalid_key', `${name}: over ${MAX_KEY_FILE_BYTES} bytes`);
      if (e instanceof BoundedReadError && e.code === 'not_regular') throw new KeyDirError('invalid_key', `${name}: not a regular file`);
      throw new KeyDirError('read_failed', `cannot read ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
    files.push({ name, bytes, mtimeMs: st.mtimeMs });
    hash.update(name).update('\0').update(createHash('sha256').update(bytes).digest()).update('\0');
  }
  return { fingerprint: hash.digest('hex'), files };
}

/** The signing key of a set under the publish_ahead rule: greatest kid among the eligible. */
export function selectSigningKey(
  keys: readonly SigningKey[],
  knownSince: ReadonlyMap<string, number>,
  publishAheadMs: number,
  nowMs: number,
): SigningKey | undefined {
  let best: SigningKey | undefined;
  for (const k of keys) {
    const since = knownSince.get(k.kid);
    if (since === undefined || nowMs - since < publishAheadMs) continue;
    if (best === undefined || k.kid > best.kid) best = k;
  }
  return best;
}

export class KeyDirectory {
  private version: Version | undefined;
  /** When this process first saw each current kid (-Infinity: present at start-up). */
  private readonly knownSince = new Map<string, number>();
  private readonly watcher: PathWatcher | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private lastFingerprint: string | undefined;
  private closed = false;
  /** The start-up load is over: keys seen from now on wait publish_ahead. */
  private started = false;
  private readonly opts: KeyDirectoryOptions;

  constructor(opts: KeyDirectoryOptions) {
    this.opts = opts;
    this.watcher =
      opts.watch === false
        ? undefined
        : new PathWatcher(
            // PathWatcher watches the directory holding the path it is given: a name inside
            // the key directory makes it watch the directory itself (Secret swaps included).
            path.join(opts.dir, '..data'),
            {
              onChange: () => void this.check(),
              pollMs: opts.pollMs ?? DEFAULT_KEY_POLL_MS,
              timers: opts.timers ?? realTimers,
              ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
            },
          );
  }

  /** First load (its keys count as known since forever), then watching. Never rejects. */
  async start(): Promise<void> {
    await this.check();
    this.started = true;
    this.watcher?.start();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  /** Re-reads the directory now and applies a new valid version. Serialized; never rejects. */
  check(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.loadOnce();
      } while (this.again && !this.closed);
    })();
    this.running = run.finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loadOnce(): Promise<void> {
    const first = !this.started;
    try {
      let read: Awaited<ReturnType<typeof readVersion>>;
      try {
        read = await readVersion(this.opts.dir);
      } catch (e) {
        // Reported once per distinct problem, not once per poll.
        const id = `error:${problemOf(e)}`;
        if (id === this.lastFingerprint) return;
        this.lastFingerprint = id;
        throw e;
      }
      const fingerprint = read.fingerprint;
      if (fingerprint === this.lastFingerprint) return; // unchanged (a touch, a burst of events)
      this.lastFingerprint = fingerprint;
      const keys: SigningKey[] = [];
      const kids = new Set<string>();
      for (const f of read.files) {
        const k = await parsePrivateJwk(f.bytes, f.name, f.mtimeMs);
        if (kids.has(k.kid)) throw new KeyDirError('duplicate_kid', `two files hold kid ${JSON.stringify(k.kid)}`);
        kids.add(k.kid);
        keys.push(k);
      }
      if (keys.length === 0) throw new KeyDirError('no_keys', `no key files in ${this.opts.dir}`);
      const prev = this.version;
      if (prev !== undefined) {
        for (const k of keys) {
          const old = prev.keys.find((p) => p.kid === k.kid);
          if (old !== undefined && JSON.stringify(old.publicJwk) !== JSON.stringify(k.publicJwk)) {
            // Sidecars cache keys by kid: new material under an old kid would break them.
            throw new KeyDirError('kid_reused', `kid ${JSON.stringify(k.kid)} now names another key; give a new key a new kid`);
          }
        }
      }
      this.apply(keys, first);
      this.report({ ok: true, changed: true, kids: keys.map((k) => k.kid) });
    } catch (e) {
      const err = e instanceof KeyDirError ? e : new KeyDirError('invalid_key', problemOf(e));
      this.report({ ok: false, code: err.code, message: err.message, keptKids: this.version?.keys.map((k) => k.kid) ?? [] });
    }
  }

  private apply(keys: readonly SigningKey[], first: boolean): void {
    const now = this.opts.now();
    const current = new Set(keys.map((k) => k.kid));
    for (const kid of [...this.knownSince.keys()]) if (!current.has(kid)) this.knownSince.delete(kid);
    for (const k of keys) if (!this.knownSince.has(k.kid)) this.knownSince.set(k.kid, first ? -Infinity : now);
    const publicKeys = keys.map((k) => k.publicJwk);
    const parsed = parseJwks({ keys: publicKeys });
    if (!parsed.ok) throw new KeyDirError('invalid_key', parsed.problem);
    this.version = {
      fingerprint: this.lastFingerprint ?? '',
      keys,
      jwkSet: parsed.keys,
      jwksJson: JSON.stringify({ keys: publicKeys }),
    };
  }

  private report(r: KeyDirLoad): void {
    try {
      this.opts.onLoad?.(r);
    } catch {
      // observers never affect key handling
    }
  }

  /** The key that signs now, or undefined (no key, or none known for publish_ahead yet). */
  active(): SigningKey | undefined {
    const v = this.version;
    return v === undefined ? undefined : selectSigningKey(v.keys, this.knownSince, this.opts.publishAheadMs, this.opts.now());
  }

  /** Every key held (published), signing or not. */
  keys(): readonly SigningKey[] {
    return this.version?.keys ?? [];
  }

  /** `/jwks.json`; undefined before any key has loaded (then the endpoint answers 503, never an empty set). */
  jwksJson(): string | undefined {
    return this.version?.jwksJson;
  }

  /** Usable for issuing: a key is active. */
  ready(): boolean {
    return this.active() !== undefined;
  }

  /** Signs `claims` with the active key (header exactly alg, typ, kid); undefined without one. */
  async sign(claims: Readonly<Record<string, unknown>>): Promise<{ token: string; kid: string } | undefined> {
    const k = this.active();
    if (k === undefined) return undefined;
    // Synchronous node:crypto signature (token/jws-node.ts says why); the header is the key's.
    const token = compactJws(k.algorithm, k.keyObject, k.encodedHeader, JSON.stringify(claims));
    return { token, kid: k.kid };
  }

  /** The published keys as a KeySource, for verifying hop subject tokens (never fetches). */
  keySource(): KeySource {
    return {
      lookup: (kid: string, alg: string): Promise<KeyLookup> => {
        const v = this.version;
        if (v === undefined) return Promise.resolve({ status: 'unavailable', detail: 'no signing keys loaded' });
        return v.jwkSet.lookup(kid, alg);
      },
      peek: (kid: string, alg: string) => this.version?.jwkSet.peek(kid, alg),
      ready: () => this.version !== undefined,
      start: () => Promise.resolve(),
      close: () => undefined,
    };
  }
}
