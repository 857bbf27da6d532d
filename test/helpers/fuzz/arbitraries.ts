/**
 * fast-check generators for hostile hops. A case is generated as a PLAN (plain data, so
 * fast-check can shrink it) and built into a token + request by `buildCase`:
 *   base (a valid token for one of the issuers) → claim/header edits → JSON text edits
 *   → signing (usually with the real key: a validly signed token must still be denied
 *   unless every rule holds) → raw token edits → request edits.
 */
import fc from 'fast-check';
import type { HopRequest } from '../../../src/core/types.js';
import type { OracleRequest } from './oracle.js';
import {
  b64,
  CALLER,
  CALLER_PEM,
  ISSUER,
  ISSUER2,
  KEYS,
  NOW_MS,
  NOW_S,
  OTHER_PEM,
  PARTNER,
  PRIOR,
  signInput,
  TYP,
  WORKLOAD,
  type FuzzKey,
} from './world.js';
import { createHash, createHmac, X509Certificate } from 'node:crypto';
import { hopRequest } from '../../../src/core/request.js';

// ---------------------------------------------------------------------------------------
// Building blocks.

/** Characters that look like, or get normalized into, ASCII ones. */
const CONFUSABLE: Record<string, string[]> = {
  a: ['а', 'ɑ', 'ａ'], // Cyrillic a, Latin alpha, fullwidth
  e: ['е', 'ё', 'ｅ'],
  o: ['о', 'ο', '0'],
  p: ['р', 'ρ'],
  c: ['с', 'ϲ'],
  s: ['ѕ', 'ｓ'],
  i: ['і', 'ı', 'İ'],
  l: ['1', 'I', 'ⅼ'],
  '/': ['／', '∕', '⁄', '\\'],
  '.': ['．', '。', '․'],
  ':': ['：', '꞉'],
  '-': ['‐', '−', '–'],
};
const INVISIBLE = ['\u200b', '\u200c', '\u200d', '\ufeff', '\u00ad', '\u2060', '\u202e', '\u0000', '\t', ' ', '\n', '\r'];

export type Lookalike =
  | { t: 'confusable'; pos: number; pick: number }
  | { t: 'insert'; pos: number; ch: string }
  | { t: 'append'; ch: string }
  | { t: 'upper' }
  | { t: 'upperFirst' }
  | { t: 'percent'; pos: number }
  | { t: 'drop'; pos: number }
  | { t: 'dup'; pos: number }
  | { t: 'nfd' }
  | { t: 'suffix'; s: string }
  | { t: 'prefix'; s: string };

export function applyLookalike(s: string, l: Lookalike): string {
  const at = (pos: number) => (s.length === 0 ? 0 : pos % s.length);
  switch (l.t) {
    case 'confusable': {
      const idxs = [...s].map((c, i) => (CONFUSABLE[c.toLowerCase()] ? i : -1)).filter((i) => i >= 0);
      if (idxs.length === 0) return s + '\u200b';
      const i = idxs[l.pos % idxs.length] as number;
      const opts = CONFUSABLE[(s[i] as string).toLowerCase()] as string[];
      return s.slice(0, i) + opts[l.pick % opts.length] + s.slice(i + 1);
    }
    case 'insert':
      return s.slice(0, at(l.pos)) + l.ch + s.slice(at(l.pos));
    case 'append':
      return s + l.ch;
    case 'upper':
      return s.toUpperCase();
    case 'upperFirst':
      return s.slice(0, 1).toUpperCase() + s.slice(1);
    case 'percent': {
      const i = at(l.pos);
      const ch = s[i] ?? 'a';
      return s.slice(0, i) + '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0') + s.slice(i + 1);
    }
    case 'drop':
      return s.slice(0, at(l.pos)) + s.slice(at(l.pos) + 1);
    case 'dup':
      return s.slice(0, at(l.pos) + 1) + s.slice(at(l.pos));
    case 'nfd':
      return (s + 'é').normalize('NFD');
    case 'suffix':
      return s + l.s;
    case 'prefix':
      return l.s + s;
  }
}

const lookalikeArb: fc.Arbitrary<Lookalike> = fc.oneof(
  fc.record({ t: fc.constant('confusable' as const), pos: fc.nat(200), pick: fc.nat(5) }),
  fc.record({ t: fc.constant('insert' as const), pos: fc.nat(200), ch: fc.constantFrom(...INVISIBLE) }),
  fc.record({ t: fc.constant('append' as const), ch: fc.constantFrom(...INVISIBLE, '/', '.', '%00', '#', '?', ':443') }),
  fc.record({ t: fc.constant('upper' as const) }),
  fc.record({ t: fc.constant('upperFirst' as const) }),
  fc.record({ t: fc.constant('percent' as const), pos: fc.nat(200) }),
  fc.record({ t: fc.constant('drop' as const), pos: fc.nat(200) }),
  fc.record({ t: fc.constant('dup' as const), pos: fc.nat(200) }),
  fc.record({ t: fc.constant('nfd' as const) }),
  fc.record({
    t: fc.constant('suffix' as const),
    s: fc.constantFrom('/', '/x', '/..', '/.', '.evil.org', 'x', ' ', '\u0000evil', ',spiffe://prod.example.org/ns/x/sa/x'),
  }),
  fc.record({ t: fc.constant('prefix' as const), s: fc.constantFrom(' ', 'x', 'spiffe://prod.example.org@', 'SPIFFE://', '\ufeff') }),
);

const RELATED = [WORKLOAD, CALLER, PRIOR, PARTNER, ISSUER, ISSUER2, 'POST', 'hop', '/v1/ledger/entries', '/v1/reports/**', 'prod.example.org'];

/** A string close to one that matters (or one of them verbatim). */
const nearString: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(...RELATED) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...RELATED), lookalikeArb).map(([s, l]) => applyLookalike(s, l)) },
);

const edgeNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: NOW_S - 400, max: NOW_S + 400 }),
  fc.constantFrom(
    0,
    -1,
    1,
    -0,
    1.5,
    NOW_S + 0.5,
    2 ** 31,
    2 ** 32,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53) + 1,
    -(2 ** 53),
    1e21,
    1e300,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    NOW_S * 1000, // milliseconds by mistake
  ),
);

/** Deeply nested arrays/objects (hopguard's JSON depth limit is 256). */
const deep: fc.Arbitrary<unknown> = fc
  .tuple(fc.integer({ min: 1, max: 300 }), fc.boolean())
  .map(([d, obj]) => {
    let v: unknown = WORKLOAD;
    for (let i = 0; i < d; i++) v = obj ? { sub: v } : [v];
    return v;
  });

export const interestingValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: nearString },
  { weight: 3, arbitrary: edgeNumber },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, '', [], {}, [WORKLOAD], [WORKLOAD, PRIOR], [[WORKLOAD]], { sub: CALLER }, String(NOW_S), ['POST'], ['*'], ['/**']) },
  { weight: 1, arbitrary: fc.array(nearString, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: deep },
);

const CLAIM_PATHS = [
  'iss',
  'aud',
  'sub',
  'iat',
  'exp',
  'nbf',
  'jti',
  'act',
  'act.sub',
  'act.act',
  'act.act.sub',
  'act.act.act',
  'authorization_details',
  'authorization_details.0',
  'authorization_details.0.type',
  'authorization_details.0.locations',
  'authorization_details.0.locations.0',
  'authorization_details.0.actions',
  'authorization_details.0.actions.0',
  'authorization_details.0.paths',
  'authorization_details.0.paths.0',
  'authorization_details.1',
  'txn',
  'cnf',
  'cnf.x5t#S256',
  'extra',
  '__proto__',
  'constructor',
] as const;

// ---------------------------------------------------------------------------------------
// Plans.

export type ClaimEdit =
  | { k: 'set'; path: string; value: unknown }
  | { k: 'del'; path: string }
  | { k: 'time'; iat: number; exp: number; nbf: number | null }
  | { k: 'chain'; actors: string[] }
  | { k: 'validChain'; depth: number; corruptAt: number | null; corruption: Corruption }
  | { k: 'cnf'; which: 'caller' | 'other' | 'junk' }
  | { k: 'grant'; locations: unknown; actions: unknown; paths: unknown; type: string };

export type Corruption =
  | { c: 'actor'; value: unknown }
  | { c: 'repeat'; of: number }
  | { c: 'node'; value: unknown }
  | { c: 'noSub' };

export type HeaderEdit =
  | { k: 'set'; key: string; value: unknown }
  | { k: 'del'; key: string };

export type TextEdit =
  | { k: 'dupKey'; target: 'h' | 'p'; key: string; value: unknown; last: boolean }
  | { k: 'escapeKey'; target: 'h' | 'p'; key: string }
  | { k: 'escapeValue'; target: 'h' | 'p'; key: string }
  | { k: 'ws'; target: 'h' | 'p'; ws: string }
  | { k: 'bom'; target: 'h' | 'p' }
  | { k: 'trailing'; target: 'h' | 'p'; junk: string }
  | { k: 'numText'; key: 'iat' | 'exp' | 'nbf'; text: string }
  | { k: 'byte'; target: 'h' | 'p'; pos: number; byte: number }
  | { k: 'loneSurrogate'; key: 'sub' | 'jti' | 'txn' }
  | { k: 'reorder'; seed: number };

export type Signing =
  | { k: 'right' }
  | { k: 'stranger' }
  | { k: 'wrongKey' }
  | { k: 'hmac' }
  | { k: 'empty' }
  | { k: 'zeros' }
  | { k: 'der' }
  | { k: 'otherTokenSig' };

export type RawEdit =
  | { k: 'flip'; pos: number; bit: number }
  | { k: 'replace'; pos: number; ch: string }
  | { k: 'insert'; pos: number; ch: string }
  | { k: 'delete'; pos: number }
  | { k: 'truncate'; pos: number }
  | { k: 'swap'; i: number; j: number }
  | { k: 'dropSeg'; i: number }
  | { k: 'dupSeg'; i: number }
  | { k: 'extraSeg'; s: string }
  | { k: 'pad'; i: number }
  | { k: 'stdB64' }
  | { k: 'trailBits'; i: number }
  | { k: 'wrap'; pre: string; post: string }
  | { k: 'case' }
  | { k: 'spliceOther'; i: number };

export interface RequestPlan {
  method: string;
  path: string;
  caller: string | undefined;
  cert: 'none' | 'caller' | 'other' | 'garbage' | 'truncated' | 'twoCerts';
  action: string | undefined;
  placement: 'headers' | 'map' | 'both' | 'bothDiff' | 'twoHeaders' | 'joined' | 'none' | 'blank' | 'mapTwice' | 'blankPlusMap';
  nowOffsetMs: number;
}

export interface Plan {
  base: 'es' | 'ed' | 'partner';
  baseChain: number;
  baseGrantPath: number;
  claims: ClaimEdit[];
  header: HeaderEdit[];
  text: TextEdit[];
  signing: Signing;
  raw: RawEdit[];
  req: RequestPlan;
}

const REQUEST_PATHS = [
  '/v1/ledger/entries',
  '/v1/ledger/entries?x=1',
  '/v1/ledger/entries/',
  '/v1/accounts/acc-42/balance',
  '/v1/reports',
  '/v1/reports/2026/q3',
  '/v1/reports/',
  '/healthz',
  '/healthz?probe=1',
];

export const pathPiece = fc.constantFrom(
  'v1', 'ledger', 'entries', 'accounts', 'acc-42', 'balance', 'reports', 'healthz', 'a', 'B', '*', '**', '.', '..', '...',
  '%2F', '%2f', '%2E', '%2e', '%5C', '%5c', '%41', '%7E', '%20', '%00', '%0A', '%25', '%252e', '%252F', '%C3%A9', '%c3%a9',
  '%C0%AE', '%C0%AF', '%E0%80%AE', '%ED%A0%80', '%FF', '%E2%80%AE', '%', '%G0', '%4', '\\', ';', ';x=1', '#', '?', 'é',
  '／', 'Ａ', ' ', '\t', '~', '@', ':', '!', '$', "'", '(', ')', '+', ',', '=', '&', '-', '_', '"', '<', '[', '`', '{',
  '|', '^', '\u0000', '\u202e', 'ｖ1', 'V1',
);

export const pathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...REQUEST_PATHS) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.constantFrom('/', '/', '/', '', '//', '\\', 'http://ledger/', '*', '%2F'),
        fc.array(fc.array(pathPiece, { minLength: 1, maxLength: 3 }).map((p) => p.join('')), { minLength: 0, maxLength: 5 }),
        fc.constantFrom('/', '/', '/', '/', '//', '\\', '/./', '/../', '%2F', ';/'),
        fc.constantFrom('', '', '/', '?q=1', '?a/../b', '#f', '?'),
      )
      .map(([pre, segs, sep, post]) => pre + segs.join(sep) + post),
  },
  {
    // a granted path with one piece respelled
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('/v1/ledger/entries', '/v1/accounts/acc-42/balance', '/v1/reports/2026/q3'), fc.nat(40), pathPiece)
      .map(([p, at, piece]) => {
        const i = at % (p.length + 1);
        return p.slice(0, i) + piece + p.slice(i);
      }),
  },
);

export const patternArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '/v1/ledger/entries',
    '/v1/accounts/*/balance',
    '/v1/reports/**',
    '/**',
    '/',
    '/v1/*',
    '/v1/**/x',
    '/v1/a*',
    '*',
    '',
    'v1/x',
    '/v1//x',
    '/v1/./x',
    '/v1/ledger/entries/',
    '/*/*/*',
    '/v1/*/**',
    '/**/**',
  ),
  pathArb,
  fc.array(fc.constantFrom('v1', 'ledger', 'entries', 'reports', '*', '**', 'a', '%41', '%C3%A9', '.'), { maxLength: 4 }).map((s) => '/' + s.join('/')),
);

const claimEdit: fc.Arbitrary<ClaimEdit> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('set' as const), path: fc.constantFrom(...CLAIM_PATHS), value: interestingValue }) },
  {
    // The claims that bind a token to this hop, set to near-misses of their right values.
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('set' as const),
      path: fc.constantFrom('aud', 'act.sub', 'authorization_details.0.locations', 'authorization_details.0.actions', 'iss', 'authorization_details.0.type'),
      value: fc.oneof(
        nearString,
        fc.constantFrom([WORKLOAD], [WORKLOAD, PRIOR], [PRIOR, WORKLOAD], [], ['POST'], ['post'], ['POST', 'GET'], [CALLER]),
        fc.array(nearString, { minLength: 1, maxLength: 3 }),
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), path: fc.constantFrom(...CLAIM_PATHS) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('time' as const),
      iat: fc.integer({ min: -400, max: 400 }),
      exp: fc.integer({ min: -400, max: 400 }),
      nbf: fc.option(fc.integer({ min: -400, max: 400 }), { nil: null }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('chain' as const),
      actors: fc.array(
        fc.oneof(
          fc.constantFrom(CALLER, PRIOR, PARTNER, WORKLOAD, 'spiffe://prod.example.org/ns/a/sa/a', 'spiffe://prod.example.org/ns/b/sa/b', 'spiffe://prod.example.org/ns/c/sa/c', 'spiffe://evil.example.org/ns/x/sa/x', 'spiffe://prod.example.org', 'spiffe://PROD.example.org/x', 'spiffe://prod.example.org/a/../b', 'spiffe://prod.example.org:8443/x', 'spiffe://u@prod.example.org/x', 'spiffe://prod.example.org/x/', 'spiffe://prod.example.org//x', 'spiffe://prod.example.org/%41'),
          nearString,
        ),
        { minLength: 0, maxLength: 8 },
      ),
    }),
  },
  {
    // A well-formed chain starting at the caller, of any depth, optionally broken at one level.
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('validChain' as const),
      depth: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 1, max: 7 }) }, { weight: 1, arbitrary: fc.integer({ min: 60, max: 70 }) }),
      corruptAt: fc.option(fc.nat(70), { nil: null }),
      corruption: fc.oneof(
        fc.record({ c: fc.constant('actor' as const), value: fc.oneof(fc.constantFrom('spiffe://evil.example.org/ns/x/sa/x', 'spiffe://partner.example.org/ns/y/sa/y', 'spiffe://prod.example.org.evil.org/x', 'spiffe://prod.example.org', 'spiffe://prod.example.org/'), nearString, interestingValue) }),
        fc.record({ c: fc.constant('repeat' as const), of: fc.nat(70) }),
        fc.record({ c: fc.constant('node' as const), value: fc.constantFrom(null, 'spiffe://prod.example.org/ns/z/sa/z', [], 1, true, [{ sub: 'spiffe://prod.example.org/ns/z/sa/z' }]) }),
        fc.record({ c: fc.constant('noSub' as const) }),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cnf' as const), which: fc.constantFrom('caller' as const, 'other' as const, 'junk' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('grant' as const),
      type: fc.oneof(fc.constant('hop'), nearString, fc.constantFrom('Hop', 'hop ', 'other')),
      locations: fc.oneof(fc.constant([WORKLOAD]), fc.array(nearString, { maxLength: 3 }), interestingValue),
      actions: fc.oneof(fc.constant(['POST']), fc.array(fc.constantFrom('POST', 'post', 'GET', 'POST ', 'ledger.write', '*', 'PÖST'), { maxLength: 3 }), interestingValue),
      paths: fc.oneof(fc.array(patternArb, { maxLength: 4 }), interestingValue),
    }),
  },
);

const headerEdit: fc.Arbitrary<HeaderEdit> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('set' as const),
      key: fc.constantFrom('alg', 'typ', 'kid'),
      value: fc.oneof(
        fc.constantFrom('none', 'None', 'NONE', 'HS256', 'RS256', 'ES256', 'es256', 'ES256 ', 'EdDSA', 'Ed25519', 'ES384', 'PS256', ''),
        fc.constantFrom('JWT', 'jwt', 'delegation+jwt', 'DELEGATION+JWT', 'application/delegation+jwt', 'Application/Delegation+JWT', 'delegation+jwt ', 'application/application/delegation+jwt', 'at+jwt', 'DELEGATİON+JWT'),
        fc.constantFrom('es-1', 'ed-1', 'p-1', 'nope', 'ES-1', 'es-1 ', '../es-1', '__proto__', 'constructor', 'toString'),
        interestingValue,
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('set' as const),
      key: fc.constantFrom('jwk', 'jku', 'x5u', 'x5c', 'crit', 'b64', 'cty', 'zip', 'enc', 'x5t', 'iss', 'foo', '__proto__', 'ALG', 'Kid'),
      value: interestingValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('del' as const), key: fc.constantFrom('alg', 'typ', 'kid') }) },
);

const target = fc.constantFrom('h' as const, 'p' as const);
const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('dupKey' as const),
      target,
      key: fc.constantFrom('iss', 'aud', 'sub', 'exp', 'act', 'authorization_details', 'alg', 'kid', 'typ', 'jti'),
      value: interestingValue,
      last: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('escapeKey' as const), target, key: fc.constantFrom('iss', 'aud', 'alg', 'kid', 'typ', 'act', 'exp') }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('escapeValue' as const), target, key: fc.constantFrom('iss', 'aud', 'alg', 'kid', 'typ', 'sub', 'jti') }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('ws' as const), target, ws: fc.constantFrom(' ', '\n', '\t', '\r\n', '\u00a0', '\u2028', '\v', '\f') }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('bom' as const), target }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('trailing' as const), target, junk: fc.constantFrom(',', ' ', '\n', '}', '{}', '//c', '/*c*/', 'x', '\u0000', ',}') }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('numText' as const),
      key: fc.constantFrom('iat' as const, 'exp' as const, 'nbf' as const),
      text: fc.constantFrom('1800000060.0', '18000000.6e2', '1.80000006E9', '1800000060e0', '1e400', '-1e400', '-0', '01800000060', '+1800000060', '0x6B49D258', '1800000060.', '.5', 'NaN', 'Infinity', '"1800000060"', '1800000060.000000000001', '9007199254740993', '1800000060 1'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('byte' as const), target, pos: fc.nat(400), byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('loneSurrogate' as const), key: fc.constantFrom('sub' as const, 'jti' as const, 'txn' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('reorder' as const), seed: fc.nat() }) },
);

const signing: fc.Arbitrary<Signing> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({ k: 'right' as const }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<Signing>(
      { k: 'stranger' },
      { k: 'wrongKey' },
      { k: 'hmac' },
      { k: 'empty' },
      { k: 'zeros' },
      { k: 'der' },
      { k: 'otherTokenSig' },
    ),
  },
);

const rawEdit: fc.Arbitrary<RawEdit> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), pos: fc.nat(5000), bit: fc.nat(15) }),
  fc.record({ k: fc.constant('replace' as const), pos: fc.nat(5000), ch: fc.constantFrom('A', 'a', '_', '-', '.', '=', '+', '/', ' ', 'é', '\u0000', ',', '%') }),
  fc.record({ k: fc.constant('insert' as const), pos: fc.nat(5000), ch: fc.constantFrom('A', '.', '=', ' ', '\n', ',', '\u200b') }),
  fc.record({ k: fc.constant('delete' as const), pos: fc.nat(5000) }),
  fc.record({ k: fc.constant('truncate' as const), pos: fc.nat(5000) }),
  fc.record({ k: fc.constant('swap' as const), i: fc.nat(2), j: fc.nat(2) }),
  fc.record({ k: fc.constant('dropSeg' as const), i: fc.nat(2) }),
  fc.record({ k: fc.constant('dupSeg' as const), i: fc.nat(2) }),
  fc.record({ k: fc.constant('extraSeg' as const), s: fc.constantFrom('', 'AAAA', 'e30') }),
  fc.record({ k: fc.constant('pad' as const), i: fc.nat(2) }),
  fc.record({ k: fc.constant('stdB64' as const) }),
  fc.record({ k: fc.constant('trailBits' as const), i: fc.nat(2) }),
  fc.record({ k: fc.constant('wrap' as const), pre: fc.constantFrom('', ' ', 'Bearer ', '\t', '"'), post: fc.constantFrom('', ' ', '\n', '"', '.') }),
  fc.record({ k: fc.constant('case' as const) }),
  fc.record({ k: fc.constant('spliceOther' as const), i: fc.nat(2) }),
);

const requestPlan: fc.Arbitrary<RequestPlan> = fc.record({
  method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 2, arbitrary: fc.constantFrom('GET', 'post', 'DELETE', 'POST ', 'PÖST', '', 'PUT') }),
  path: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('/v1/ledger/entries', '/v1/accounts/acc-42/balance', '/v1/reports/2026/q3') }, { weight: 4, arbitrary: pathArb }),
  caller: fc.oneof(
    { weight: 8, arbitrary: fc.constant(CALLER) },
    { weight: 2, arbitrary: fc.oneof(fc.constantFrom(undefined, '', PRIOR, PARTNER, WORKLOAD), nearString) },
  ),
  cert: fc.oneof({ weight: 6, arbitrary: fc.constant('none' as const) }, { weight: 4, arbitrary: fc.constantFrom('caller' as const, 'other' as const, 'garbage' as const, 'truncated' as const, 'twoCerts' as const) }),
  action: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constantFrom('POST', 'ledger.write', '', 'GET') }),
  placement: fc.oneof(
    { weight: 10, arbitrary: fc.constant('headers' as const) },
    { weight: 3, arbitrary: fc.constantFrom('map' as const, 'both' as const) },
    { weight: 2, arbitrary: fc.constantFrom('bothDiff' as const, 'twoHeaders' as const, 'joined' as const, 'none' as const, 'blank' as const, 'mapTwice' as const, 'blankPlusMap' as const) },
  ),
  nowOffsetMs: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: -400_000, max: 400_000 }) }),
});

export interface PlanWeights {
  claims: number;
  header: number;
  text: number;
  raw: number;
  wrongSigning: boolean;
  request: boolean;
}

const VALID_REQUEST: RequestPlan = {
  method: 'POST',
  path: '/v1/ledger/entries',
  caller: CALLER,
  cert: 'none',
  action: undefined,
  placement: 'headers',
  nowOffsetMs: 0,
};

/** Plans whose edit lists are at most the given lengths. */
export function planArb(w: PlanWeights): fc.Arbitrary<Plan> {
  const list = <T>(a: fc.Arbitrary<T>, n: number) => (n === 0 ? fc.constant([] as T[]) : fc.array(a, { maxLength: n }));
  return fc.record({
    base: fc.constantFrom('es' as const, 'ed' as const, 'partner' as const),
    baseChain: fc.nat(3),
    baseGrantPath: fc.nat(2),
    claims: list(claimEdit, w.claims),
    header: list(headerEdit, w.header),
    text: list(textEdit, w.text),
    signing: w.wrongSigning ? signing : fc.constant({ k: 'right' as const }),
    raw: list(rawEdit, w.raw),
    req: w.request ? requestPlan : fc.constant(VALID_REQUEST),
  });
}

// ---------------------------------------------------------------------------------------
// Building a case from a plan.

export interface Case {
  readonly token: string | undefined;
  readonly hop: HopRequest;
  readonly oracle: OracleRequest;
  readonly nowMs: number;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown, del: boolean): void {
  const parts = path.split('.');
  let cur: unknown = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const k = parts[i] as string;
    if (typeof cur !== 'object' || cur === null) return;
    const next = (cur as Record<string, unknown>)[k];
    if (typeof next !== 'object' || next === null) {
      if (del) return;
      (cur as Record<string, unknown>)[k] = {};
    }
    cur = (cur as Record<string, unknown>)[k];
  }
  if (typeof cur !== 'object' || cur === null) return;
  const last = parts[parts.length - 1] as string;
  if (del) delete (cur as Record<string, unknown>)[last];
  else Object.defineProperty(cur, last, { value, enumerable: true, writable: true, configurable: true });
}

const thumb = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
const CALLER_X5T = thumb(CALLER_PEM);
const OTHER_X5T = thumb(OTHER_PEM);

function basePayload(plan: Plan): Record<string, unknown> {
  const partner = plan.base === 'partner';
  const chain: Record<string, unknown> = { sub: CALLER };
  if (plan.baseChain >= 1) chain['act'] = plan.baseChain >= 2 ? { sub: PRIOR, act: { sub: PARTNER } } : { sub: PRIOR };
  const grantPaths = [['/v1/ledger/entries'], ['/v1/ledger/entries', '/v1/accounts/*/balance', '/v1/reports/**'], ['/v1/**']][plan.baseGrantPath % 3];
  return {
    iss: partner ? ISSUER2 : ISSUER,
    aud: partner ? [WORKLOAD] : WORKLOAD,
    sub: 'user:alice@example.org',
    iat: NOW_S - 10,
    exp: NOW_S + (partner ? 50 : 120),
    jti: 'jti-0001',
    act: chain,
    authorization_details: [{ type: 'hop', locations: [WORKLOAD], actions: ['POST'], paths: grantPaths }],
    txn: 'txn-1',
  };
}

function applyClaimEdit(p: Record<string, unknown>, e: ClaimEdit): void {
  switch (e.k) {
    case 'set':
      setPath(p, e.path, structuredClone(e.value), false);
      return;
    case 'del':
      setPath(p, e.path, undefined, true);
      return;
    case 'time':
      p['iat'] = NOW_S + e.iat;
      p['exp'] = NOW_S + e.exp;
      if (e.nbf === null) delete p['nbf'];
      else p['nbf'] = NOW_S + e.nbf;
      return;
    case 'chain': {
      let node: unknown = undefined;
      for (let i = e.actors.length - 1; i >= 0; i--) node = node === undefined ? { sub: e.actors[i] } : { sub: e.actors[i], act: node };
      if (node === undefined) delete p['act'];
      else p['act'] = node;
      return;
    }
    case 'validChain': {
      const actors = Array.from({ length: e.depth }, (_v, i) => (i === 0 ? CALLER : `spiffe://prod.example.org/ns/n${i}/sa/s${i}`));
      const at = e.corruptAt === null ? -1 : e.corruptAt % e.depth;
      let node: unknown = undefined;
      for (let i = e.depth - 1; i >= 0; i--) {
        let level: unknown = node === undefined ? { sub: actors[i] } : { sub: actors[i], act: node };
        if (i === at) {
          const c = e.corruption;
          if (c.c === 'actor') (level as Record<string, unknown>)['sub'] = structuredClone(c.value);
          else if (c.c === 'repeat') (level as Record<string, unknown>)['sub'] = actors[c.of % e.depth];
          else if (c.c === 'noSub') delete (level as Record<string, unknown>)['sub'];
          else if (i > 0) level = structuredClone(c.value);
        }
        node = level;
      }
      p['act'] = node;
      return;
    }
    case 'cnf':
      p['cnf'] = { 'x5t#S256': e.which === 'caller' ? CALLER_X5T : e.which === 'other' ? OTHER_X5T : 'AAAA' };
      return;
    case 'grant':
      (p['authorization_details'] as unknown[] | undefined)?.unshift?.({
        type: e.type,
        locations: structuredClone(e.locations),
        actions: structuredClone(e.actions),
        paths: structuredClone(e.paths),
      });
  }
}

function uEscape(s: string): string {
  return [...s].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('');
}

/** A deterministic shuffle of the top-level members (a re-encoding: same object). */
function reorder(json: string, seed: number): string {
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return json;
    const keys = Object.keys(o);
    let s = seed;
    for (let i = keys.length - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      const j = s % (i + 1);
      [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
    }
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + JSON.stringify(o[k])).join(',') + '}';
  } catch {
    return json;
  }
}

function applyTextEdit(t: { h: string | Uint8Array; p: string | Uint8Array }, e: TextEdit): void {
  const key: 'h' | 'p' = 'target' in e ? e.target : 'p';
  const cur = t[key];
  if (typeof cur !== 'string') return; // already raw bytes
  let s = cur;
  switch (e.k) {
    case 'dupKey': {
      const member = `${JSON.stringify(e.key)}:${JSON.stringify(e.value) ?? 'null'}`;
      s = e.last ? s.replace(/}\s*$/, `,${member}}`) : s.replace(/^\s*{/, `{${member},`);
      if (s === `{${member},}`) s = `{${member}}`;
      break;
    }
    case 'escapeKey':
      s = s.replace(`"${e.key}":`, `"${uEscape(e.key)}":`);
      break;
    case 'escapeValue':
      s = s.replace(new RegExp(`"${e.key}":"([^"\\\\]*)"`), (_m, v: string) => `"${e.key}":"${uEscape(v)}"`);
      break;
    case 'ws':
      s = s.replace(/([{}[\],:])/g, `$1${e.ws}`);
      break;
    case 'bom':
      s = '\ufeff' + s;
      break;
    case 'trailing':
      s = s + e.junk;
      break;
    case 'numText':
      s = s.replace(new RegExp(`"${e.key}":-?[0-9.eE+]+`), `"${e.key}":${e.text}`);
      break;
    case 'byte': {
      const bytes = Buffer.from(s, 'utf8');
      const i = bytes.length === 0 ? 0 : e.pos % bytes.length;
      t[key] = new Uint8Array(Buffer.concat([bytes.subarray(0, i), Buffer.from([e.byte]), bytes.subarray(i)]));
      return;
    }
    case 'loneSurrogate':
      s = s.replace(new RegExp(`"${e.key}":"`), `"${e.key}":"\\ud800`);
      break;
    case 'reorder':
      s = reorder(s, e.seed);
      break;
  }
  t[key] = s;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function applyRawEdit(token: string, e: RawEdit, other: string): string {
  const at = (pos: number) => (token.length === 0 ? 0 : pos % token.length);
  const segs = token.split('.');
  switch (e.k) {
    case 'flip': {
      const i = at(e.pos);
      return token.slice(0, i) + String.fromCharCode(token.charCodeAt(i) ^ (1 << e.bit)) + token.slice(i + 1);
    }
    case 'replace':
      return token.slice(0, at(e.pos)) + e.ch + token.slice(at(e.pos) + 1);
    case 'insert':
      return token.slice(0, at(e.pos)) + e.ch + token.slice(at(e.pos));
    case 'delete':
      return token.slice(0, at(e.pos)) + token.slice(at(e.pos) + 1);
    case 'truncate':
      return token.slice(0, at(e.pos));
    case 'swap': {
      const s = [...segs];
      const a = s[e.i];
      s[e.i] = s[e.j] as string;
      s[e.j] = a as string;
      return s.join('.');
    }
    case 'dropSeg':
      return segs.filter((_s, i) => i !== e.i).join('.');
    case 'dupSeg':
      return [...segs.slice(0, e.i + 1), segs[e.i] ?? '', ...segs.slice(e.i + 1)].join('.');
    case 'extraSeg':
      return token + '.' + e.s;
    case 'pad':
      return segs.map((s, i) => (i === e.i ? s + '=' : s)).join('.');
    case 'stdB64':
      return token.replace(/-/g, '+').replace(/_/g, '/');
    case 'trailBits':
      return segs
        .map((s, i) => {
          if (i !== e.i || s.length === 0) return s;
          const last = s[s.length - 1] as string;
          const idx = ALPHABET.indexOf(last);
          return s.slice(0, -1) + ALPHABET[(idx + 1) % 64];
        })
        .join('.');
    case 'wrap':
      return e.pre + token + e.post;
    case 'case':
      return token.toLowerCase() === token ? token.toUpperCase() : token.toLowerCase();
    case 'spliceOther': {
      const o = other.split('.');
      return segs.map((s, i) => (i === e.i ? (o[i] ?? s) : s)).join('.');
    }
  }
}

function keyFor(plan: Plan): FuzzKey {
  return plan.base === 'es' ? KEYS.es : plan.base === 'ed' ? KEYS.ed : KEYS.partner;
}

const BY_KID: Record<string, FuzzKey> = { 'es-1': KEYS.es, 'ed-1': KEYS.ed, 'p-1': KEYS.partner };

function sign(h: string | Uint8Array, p: string | Uint8Array, plan: Plan, headerKid: unknown): string {
  const hs = b64(h);
  const ps = b64(p);
  const input = `${hs}.${ps}`;
  // The key the header names when it is one of ours (so alg/kid edits stay validly signed
  // edits), else the base key.
  const key = (typeof headerKid === 'string' && Object.hasOwn(BY_KID, headerKid) ? BY_KID[headerKid] : undefined) ?? keyFor(plan);
  let sig: Buffer;
  switch (plan.signing.k) {
    case 'right':
      sig = signInput(key.alg, key.privateKey, input);
      break;
    case 'stranger':
      sig = signInput('ES256', KEYS.stranger.privateKey, input);
      break;
    case 'wrongKey':
      sig = key === KEYS.ed ? signInput('ES256', KEYS.es.privateKey, input) : signInput('EdDSA', KEYS.ed.privateKey, input);
      break;
    case 'hmac': {
      // Classic alg confusion: the public key as an HMAC secret.
      const secret = Buffer.from(JSON.stringify(key.jwk));
      sig = createHmac('sha256', secret).update(input).digest();
      break;
    }
    case 'empty':
      sig = Buffer.alloc(0);
      break;
    case 'zeros':
      sig = Buffer.alloc(64); // CVE-2022-21449 "psychic signature": r = s = 0
      break;
    case 'der': {
      const raw = signInput(key.alg, key.privateKey, input);
      const int = (b: Buffer) => {
        let v = [...b];
        while (v.length > 1 && v[0] === 0) v = v.slice(1);
        if ((v[0] as number) & 0x80) v.unshift(0);
        return [0x02, v.length, ...v];
      };
      const body = [...int(raw.subarray(0, 32)), ...int(raw.subarray(32))];
      sig = Buffer.from([0x30, body.length, ...body]);
      break;
    }
    case 'otherTokenSig':
      sig = signInput(key.alg, key.privateKey, `${b64('{}')}.${ps}`);
      break;
  }
  return `${input}.${sig.toString('base64url')}`;
}

/** A valid token of the same issuer/key, for splicing segments across tokens. */
let otherCache: Map<string, string> | undefined;
function otherToken(plan: Plan): string {
  otherCache ??= new Map();
  const hit = otherCache.get(plan.base);
  if (hit !== undefined) return hit;
  const key = keyFor(plan);
  const p = basePayload({ ...plan, baseChain: 0 });
  p['sub'] = 'user:mallory@example.org';
  p['authorization_details'] = [{ type: 'hop', locations: [WORKLOAD], actions: ['DELETE', 'POST'], paths: ['/**'] }];
  const t = sign(JSON.stringify({ alg: key.alg, typ: plan.base === 'partner' ? 'application/delegation+jwt' : TYP, kid: key.kid }), JSON.stringify(p), { ...plan, signing: { k: 'right' } }, key.kid);
  otherCache.set(plan.base, t);
  return t;
}

export function buildToken(plan: Plan): string {
  const key = keyFor(plan);
  const header: Record<string, unknown> = {
    alg: key.alg,
    typ: plan.base === 'partner' ? 'application/delegation+jwt' : TYP,
    kid: key.kid,
  };
  for (const e of plan.header) {
    if (e.k === 'del') delete header[e.key];
    else Object.defineProperty(header, e.key, { value: structuredClone(e.value), enumerable: true, writable: true, configurable: true });
  }
  const payload = basePayload(plan);
  for (const e of plan.claims) applyClaimEdit(payload, e);
  const text: { h: string | Uint8Array; p: string | Uint8Array } = {
    h: JSON.stringify(header),
    p: JSON.stringify(payload) ?? '{}',
  };
  for (const e of plan.text) applyTextEdit(text, e);
  let token = sign(text.h, text.p, plan, header['kid']);
  for (const e of plan.raw) token = applyRawEdit(token, e, otherToken(plan));
  return token;
}

function certFor(which: RequestPlan['cert']): string | undefined {
  switch (which) {
    case 'none':
      return undefined;
    case 'caller':
      return encodeURIComponent(CALLER_PEM);
    case 'other':
      return encodeURIComponent(OTHER_PEM);
    case 'garbage':
      return '%E0%A4%A';
    case 'truncated':
      return encodeURIComponent(CALLER_PEM.slice(0, 200));
    case 'twoCerts':
      return encodeURIComponent(OTHER_PEM + CALLER_PEM);
  }
}

export function buildCase(plan: Plan): Case {
  const token = buildToken(plan);
  const r = plan.req;
  let fromHeaders: string[] = [];
  let fromMap: string[] = [];
  switch (r.placement) {
    case 'headers':
      fromHeaders = [token];
      break;
    case 'map':
      fromMap = [token];
      break;
    case 'both':
      fromHeaders = [token];
      fromMap = [token];
      break;
    case 'bothDiff':
      fromHeaders = [token];
      fromMap = [otherToken(plan)];
      break;
    case 'twoHeaders':
      fromHeaders = [token, token];
      break;
    case 'joined':
      fromHeaders = [`${token},${otherToken(plan)}`];
      break;
    case 'none':
      break;
    case 'blank':
      fromHeaders = ['  '];
      break;
    case 'mapTwice':
      fromMap = [token, token];
      break;
    case 'blankPlusMap':
      fromHeaders = [''];
      fromMap = [token];
      break;
  }
  const ext: Record<string, string> = r.action === undefined ? {} : { action: r.action };
  const certificate = certFor(r.cert);
  const hop: HopRequest = hopRequest({
    method: r.method,
    path: r.path,
    tokenFromHeaders: fromHeaders,
    tokenFromHeaderMap: fromMap,
    caller: r.caller === '' ? undefined : r.caller,
    callerCertificate: certificate,
    contextExtensions: ext,
    requestId: 'fuzz',
    traceId: '',
  });
  const oracle: OracleRequest = {
    method: r.method,
    path: r.path,
    tokenFromHeaders: fromHeaders,
    tokenFromHeaderMap: fromMap,
    caller: r.caller,
    certificate,
    ext,
  };
  return { token, hop, oracle, nowMs: NOW_MS + r.nowOffsetMs };
}
