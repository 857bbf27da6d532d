/**
 * An independent reference of SPEC §2–§3, for the fuzz tests. It imports NOTHING from src/:
 * its own JSON parser, base64url check, signature verification (node:crypto, not the
 * WebCrypto path hopguard uses), SPIFFE/path/grant rules (regular expressions, where
 * hopguard walks indexes). Written for clarity, not speed.
 *
 * It answers "which reasons may hopguard give for this hop?". Where the SPEC leaves an
 * order open (two problems in one row of the table), the answer is a set. Where the SPEC is
 * silent, the oracle follows these documented choices (each also a hopguard behaviour):
 *  - JSON nesting deeper than 256 containers is malformed (a parser limit);
 *  - a lone surrogate escape (`"\ud800"`) is malformed (I-JSON, RFC 7493);
 *  - a kid whose key cannot verify the token's alg is `bad_signature`;
 *  - every `authorization_details` entry must be an object with a string `type`;
 *  - `act.sub` must be a non-empty string (`bad_claim`), like every other required claim;
 *  - a chain is walked at most 64 levels; deeper is `chain_too_deep` whatever lies beyond.
 */
import { createHash, verify as nodeVerify, X509Certificate, type KeyObject } from 'node:crypto';

export interface OracleKey {
  /** JWS algs this key can verify. */
  readonly algs: readonly string[];
  readonly key: KeyObject;
}

export interface OracleIssuer {
  readonly issuer: string;
  readonly algorithms: readonly string[];
  /** As configured (normalized by the oracle). */
  readonly typ: string;
  readonly clockSkewMs: number;
  readonly maxLifetimeMs: number;
  readonly audienceArrays: boolean;
  readonly keys: ReadonlyMap<string, OracleKey>;
}

export interface OracleWorld {
  readonly workloadId: string;
  readonly maxTokenBytes: number;
  readonly requirePeerIdentity: boolean;
  readonly trustedDomains: readonly string[];
  readonly maxChainDepth: number;
  readonly grantType: string;
  readonly exempt: readonly { method: string; path: string }[];
  readonly issuers: readonly OracleIssuer[];
  /** `replay.enabled`; a route may override it with `context_extensions.replay`. */
  readonly replayByDefault: boolean;
}

export interface OracleRequest {
  readonly method: string;
  readonly path: string;
  readonly tokenFromHeaders: readonly string[];
  readonly tokenFromHeaderMap: readonly string[];
  readonly caller: string | undefined;
  readonly certificate: string | undefined;
  readonly ext: Readonly<Record<string, string>>;
}

/** The reasons hopguard may answer with (allow iff the set is {granted} or {exempt}). */
export type Expected = readonly string[];

const one = (r: string): Expected => [r];

// ---------------------------------------------------------------------------------------
// JSON (RFC 8259, strict): returns undefined for anything hopguard must call malformed.

class Bad extends Error {}

export function refParseJson(bytes: Uint8Array): { value: unknown } | undefined {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return undefined; // BOM
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const str = (): string => {
    if (text[i] !== '"') throw new Bad();
    i++;
    let out = '';
    for (;;) {
      if (i >= text.length) throw new Bad();
      const c = text[i] as string;
      if (c === '"') {
        i++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) throw new Bad();
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = text[i + 1];
      i += 2;
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) {
        out += simple[e];
        continue;
      }
      if (e !== 'u') throw new Bad();
      const hex = (): number => {
        const h = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(h)) throw new Bad();
        i += 4;
        return parseInt(h, 16);
      };
      const u = hex();
      if (u >= 0xdc00 && u <= 0xdfff) throw new Bad();
      if (u >= 0xd800 && u <= 0xdbff) {
        if (text[i] !== '\\' || text[i + 1] !== 'u') throw new Bad();
        i += 2;
        const lo = hex();
        if (lo < 0xdc00 || lo > 0xdfff) throw new Bad();
        out += String.fromCharCode(u, lo);
      } else out += String.fromCharCode(u);
    }
  };
  const NUM = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (depth: number): unknown => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth > 256) throw new Bad();
      i++;
      ws();
      if (c === '[') {
        const arr: unknown[] = [];
        if (text[i] === ']') {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === ']') {
            i++;
            return arr;
          }
          throw new Bad();
        }
      }
      const obj: Record<string, unknown> = {};
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const k = str();
        if (Object.hasOwn(obj, k)) throw new Bad(); // duplicate key
        ws();
        if (text[i] !== ':') throw new Bad();
        i++;
        const v = value(depth + 1);
        Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        throw new Bad();
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (m === null || m[0] === '' || m[0] === '-') throw new Bad();
    i += m[0].length;
    return Number(m[0]);
  };
  try {
    const v = value(1);
    ws();
    if (i !== text.length) return undefined;
    return { value: v };
  } catch (e) {
    if (e instanceof Bad) return undefined;
    if (e instanceof RangeError) return undefined; // our recursion: only past the depth limit
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// Small rules.

function b64urlCanonical(seg: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(seg) || seg.length % 4 === 1) return undefined;
  const bytes = Buffer.from(seg, 'base64url');
  return bytes.toString('base64url') === seg ? new Uint8Array(bytes) : undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const get = (o: Record<string, unknown>, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);
const nonEmptyStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const strArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const safeInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const normTyp = (t: string): string => {
  const l = asciiLower(t);
  return l.startsWith('application/') ? l.slice(12) : l;
};

const SPIFFE = /^spiffe:\/\/([a-z0-9._-]{1,255})((?:\/[A-Za-z0-9._-]+)*)$/;
export function refTrustDomain(id: string): string | undefined {
  if (id.length > 2048) return undefined;
  const m = SPIFFE.exec(id);
  if (m === null) return undefined;
  const segs = (m[2] as string).split('/').slice(1);
  if (segs.some((s) => s === '.' || s === '..')) return undefined;
  return m[1];
}

const PCHAR = /^(?:[A-Za-z0-9\-._~!$&'()*+,=:@]|%[0-9A-Fa-f]{2})*$/;
/** SPEC §2 canonical request path (query already removed). */
export function refCanonical(path: string): boolean {
  if (!path.startsWith('/')) return false;
  const segs = path.slice(1).split('/');
  for (let k = 0; k < segs.length; k++) {
    const s = segs[k] as string;
    if (s === '' && k < segs.length - 1) return false; // "//" (a trailing "/" is fine)
    if (s === '.' || s === '..') return false;
    if (!PCHAR.test(s)) return false;
    for (const m of s.matchAll(/%([0-9A-Fa-f]{2})/g)) {
      const b = parseInt(m[1] as string, 16);
      const ch = String.fromCharCode(b);
      if (b === 0x2f || b === 0x5c || b < 0x20 || b === 0x7f) return false;
      if (/[A-Za-z0-9\-._~]/.test(ch)) return false; // an unreserved char has exactly one spelling
    }
    if (/%25[0-9A-Fa-f]{2}/.test(s)) return false; // double encoding
    // The segment's bytes (escapes decoded once) must be valid UTF-8.
    const bytes = s.split(/(%[0-9A-Fa-f]{2})/).flatMap((part) =>
      part.startsWith('%') && part.length === 3 ? [parseInt(part.slice(1), 16)] : [...part].map((c) => c.charCodeAt(0)),
    );
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
    } catch {
      return false;
    }
  }
  return true;
}

/** SPEC §2 grant path pattern → RegExp, or undefined when the pattern is not a valid one. */
export function refPattern(pattern: string): RegExp | undefined {
  if (!refCanonical(pattern)) return undefined;
  const segs = pattern.slice(1).split('/');
  let prefix = false;
  if (segs[segs.length - 1] === '**') {
    prefix = true;
    segs.pop();
  }
  if (segs.some((s) => s !== '*' && s.includes('*'))) return undefined;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = segs.map((s) => '/' + (s === '*' ? '[^/]+' : esc(s))).join('');
  return new RegExp('^' + body + (prefix ? '(?:/.*)?' : '') + '$', 's');
}

export const stripQuery = (p: string): string => {
  const q = p.indexOf('?');
  return q === -1 ? p : p.slice(0, q);
};

function thumbprint(envoyCert: string): string | undefined {
  if (envoyCert.length > 64 * 1024) return undefined;
  let pem: string;
  try {
    pem = decodeURIComponent(envoyCert);
  } catch {
    return undefined;
  }
  const m = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem);
  if (m === null) return undefined;
  try {
    return createHash('sha256').update(new X509Certificate(m[0]).raw).digest('base64url');
  } catch {
    return undefined;
  }
}

function sigOk(k: OracleKey, alg: string, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    if (alg === 'ES256') return sig.length === 64 && nodeVerify('sha256', data, { key: k.key, dsaEncoding: 'ieee-p1363' }, sig);
    if (alg === 'EdDSA' || alg === 'Ed25519') return sig.length === 64 && nodeVerify(null, data, k.key, sig);
  } catch {
    return false;
  }
  return false; // the fuzz world configures no other algorithms
}

// ---------------------------------------------------------------------------------------
// The decision.

export function expected(w: OracleWorld, req: OracleRequest, nowMs: number): Expected {
  const qless = stripQuery(req.path);
  if (w.exempt.some((e) => e.method === req.method && e.path === qless)) return one('exempt');

  // Selection.
  const a = req.tokenFromHeaders;
  const b = req.tokenFromHeaderMap;
  if (a.length > 1 || b.length > 1) return one('multiple_tokens');
  if ([...a, ...b].some((t) => t.includes(','))) return one('multiple_tokens');
  if (a.length === 1 && b.length === 1 && a[0] !== b[0]) return one('multiple_tokens');
  const token = a[0] ?? b[0];
  if (token === undefined || token.trim() === '') return one('missing_token');

  if (Buffer.byteLength(token, 'utf8') > w.maxTokenBytes) return one('token_too_large');

  // Three canonical segments, header and payload strict JSON objects.
  const parts = token.split('.');
  if (parts.length !== 3) return one('malformed_token');
  const [hs, ps, ss] = parts as [string, string, string];
  const hb = b64urlCanonical(hs);
  const pb = b64urlCanonical(ps);
  const sb = b64urlCanonical(ss);
  if (hb === undefined || pb === undefined || sb === undefined) return one('malformed_token');
  const hj = refParseJson(hb);
  const pj = refParseJson(pb);
  if (hj === undefined || !isObj(hj.value) || pj === undefined || !isObj(pj.value)) return one('malformed_token');
  const header = hj.value;
  const payload = pj.value;
  if (Object.keys(header).some((k) => k !== 'alg' && k !== 'typ' && k !== 'kid')) return one('forbidden_header');

  const iss = get(payload, 'iss');
  const issuer = w.issuers.find((i) => i.issuer === iss);
  if (issuer === undefined) return one('untrusted_issuer');
  const alg = get(header, 'alg');
  if (typeof alg !== 'string' || !issuer.algorithms.includes(alg)) return one('alg_not_allowed');
  const typ = get(header, 'typ');
  if (typeof typ !== 'string' || normTyp(typ) !== normTyp(issuer.typ)) return one('bad_typ');
  const kid = get(header, 'kid');
  const key = typeof kid === 'string' ? issuer.keys.get(kid) : undefined;
  if (key === undefined) return one('unknown_key');
  if (!key.algs.includes(alg)) return one('bad_signature');
  if (!sigOk(key, alg, Buffer.from(`${hs}.${ps}`, 'ascii'), sb)) return one('bad_signature');

  // Claims: presence first, then types.
  for (const c of ['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'act', 'authorization_details']) {
    if (get(payload, c) === undefined) return one('missing_claim');
  }
  const aud = get(payload, 'aud');
  const act = get(payload, 'act');
  const details = get(payload, 'authorization_details');
  const nbf = get(payload, 'nbf');
  const txn = get(payload, 'txn');
  const cnf = get(payload, 'cnf');
  const iat = get(payload, 'iat');
  const exp = get(payload, 'exp');
  const typesOk =
    (typeof aud === 'string' || strArray(aud)) &&
    nonEmptyStr(get(payload, 'sub')) &&
    safeInt(iat) &&
    safeInt(exp) &&
    (nbf === undefined || safeInt(nbf)) &&
    nonEmptyStr(get(payload, 'jti')) &&
    isObj(act) &&
    nonEmptyStr(get(act, 'sub')) &&
    Array.isArray(details) &&
    details.every(
      (d) =>
        isObj(d) &&
        typeof get(d, 'type') === 'string' &&
        (get(d, 'type') !== w.grantType ||
          ['locations', 'actions', 'paths'].every((f) => get(d, f) === undefined || strArray(get(d, f)))),
    ) &&
    (txn === undefined || typeof txn === 'string') &&
    (cnf === undefined || (isObj(cnf) && (get(cnf, 'x5t#S256') === undefined || typeof get(cnf, 'x5t#S256') === 'string')));
  if (!typesOk) return one('bad_claim');
  const iatN = iat;
  const expN = exp;

  const skew = issuer.clockSkewMs;
  if (nowMs > expN * 1000 + skew) return one('expired');
  if (nbf !== undefined && (nbf) * 1000 > nowMs + skew) return one('not_yet_valid');
  if (iatN * 1000 > nowMs + skew) return one('issued_in_future');
  if ((expN - iatN) * 1000 > issuer.maxLifetimeMs) return one('lifetime_too_long');

  const audOk = typeof aud === 'string' ? aud === w.workloadId : issuer.audienceArrays && (aud).includes(w.workloadId);
  if (!audOk) return one('audience_mismatch');

  const caller = req.caller !== undefined && req.caller !== '' ? req.caller : undefined;
  const actObj = act;
  if (caller === undefined) {
    if (w.requirePeerIdentity) return one('peer_unauthenticated');
  } else if (get(actObj, 'sub') !== caller) return one('actor_mismatch');

  if (cnf !== undefined) {
    const want = get(cnf, 'x5t#S256');
    const got = req.certificate === undefined || req.certificate === '' ? undefined : thumbprint(req.certificate);
    if (want === undefined || got === undefined || got !== want) return one('cnf_mismatch');
  }

  // Chain: invalid anywhere (within 64 levels) → chain_invalid; else depth.
  const actors: string[] = [];
  let node: unknown = actObj;
  let invalid = false;
  while (node !== undefined && actors.length < 64) {
    if (!isObj(node)) {
      invalid = true;
      break;
    }
    const s = get(node, 'sub');
    const td = typeof s === 'string' ? refTrustDomain(s) : undefined;
    if (td === undefined || !w.trustedDomains.includes(td) || actors.includes(s as string)) {
      invalid = true;
      break;
    }
    actors.push(s as string);
    node = get(node, 'act');
  }
  if (invalid) return one('chain_invalid');
  if (node !== undefined || actors.length > w.maxChainDepth) return one('chain_too_deep');

  if (!refCanonical(qless)) return one('path_not_canonical');

  const actionExt = Object.hasOwn(req.ext, 'action') ? req.ext['action'] : undefined;
  const action = typeof actionExt === 'string' && actionExt !== '' ? actionExt : undefined;
  const grants = (details as Record<string, unknown>[]).filter((d) => get(d, 'type') === w.grantType);
  if (grants.length === 0) return one('grant_missing');
  // Replay protection is stateful: a granted hop on a single-use route may also be `replayed`.
  const rv = Object.hasOwn(req.ext, 'replay') ? req.ext['replay'] : undefined;
  const single = typeof rv === 'string' && rv !== '' ? rv !== 'off' : w.replayByDefault;
  const granted: Expected = single ? ['granted', 'replayed'] : ['granted'];
  for (const g of grants) {
    const locations = (get(g, 'locations') as string[] | undefined) ?? [];
    const actions = (get(g, 'actions') as string[] | undefined) ?? [];
    const paths = (get(g, 'paths') as string[] | undefined) ?? [];
    if (!locations.includes(w.workloadId)) continue;
    if (!actions.includes(action ?? req.method)) continue;
    if (action !== undefined) return granted;
    if (paths.some((p) => refPattern(p)?.test(qless) === true)) return granted;
  }
  return one('grant_mismatch');
}
