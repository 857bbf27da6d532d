import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compactVerify, createLocalJWKSet, exportSPKI } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { DENY_STATUS, type DenyReason } from '../../../src/core/reasons.js';
import { HttpKeySource, StaticKeySource } from '../../../src/token/sources.js';
import type { IssuerRuntime, KeyLookup, KeySource, VerifyResult } from '../../../src/token/types.js';
import { TokenVerifier } from '../../../src/token/verifier.js';
import { missingRows } from '../../helpers/reasons.js';
import {
  b64url,
  forge,
  generateIssuerKeys,
  ISSUER,
  issuerPolicy,
  jwksOf,
  signToken,
  testKey,
  TYP,
  validClaims,
  type IssuerKeys,
  type TestKey,
} from '../../helpers/tokens.js';

/** Counts lookups, so tests can prove which checks run before any key is consulted. */
class SpySource implements KeySource {
  readonly calls: Array<[string, string]> = [];
  constructor(private readonly inner: KeySource) {}
  lookup(kid: string, alg: string): Promise<KeyLookup> {
    this.calls.push([kid, alg]);
    return this.inner.lookup(kid, alg);
  }
  ready(): boolean {
    return this.inner.ready();
  }
  start(): Promise<void> {
    return this.inner.start();
  }
  close(): void {
    this.inner.close();
  }
}

let keys: IssuerKeys;
/** Another ES256 key that claims the SAME kid as keys.es256. */
let impostor: TestKey;
let rsa: TestKey;
let spkiPem: string;

beforeAll(async () => {
  keys = await generateIssuerKeys();
  impostor = await testKey('ES256', keys.es256.kid);
  rsa = await testKey('RS256', 'rsa-1');
  spkiPem = await exportSPKI(keys.es256.publicKey);
});

function setup(policy = issuerPolicy(), jwks: unknown = keys.jwks, maxBytes = 8192, source?: KeySource) {
  const spy = new SpySource(source ?? new StaticKeySource(jwks));
  const runtime: IssuerRuntime = { policy, keys: spy };
  return { spy, verifier: new TokenVerifier({ issuers: [runtime], maxBytes }) };
}

function reasonOf(r: VerifyResult): DenyReason | 'ok' {
  return r.ok ? 'ok' : r.reason;
}

/** What jose's own compactVerify is given, to show it would ACCEPT the token we refuse. */
type JoseKey = 'jwks' | 'single-key-jwks' | 'hmac-spki';

interface Case {
  readonly name: string;
  readonly token: () => Promise<string>;
  readonly reason: DenyReason | 'ok';
  /** When set: jose.compactVerify accepts this exact token with that key input. */
  readonly jose?: JoseKey;
  readonly policy?: () => ReturnType<typeof issuerPolicy>;
  readonly jwks?: () => unknown;
  /** `token.max_bytes` (default 8192). */
  readonly maxBytes?: number;
  /** A key source instead of the JWKS. */
  readonly keys?: () => KeySource;
}

/** An issuer whose keys cannot be obtained (its JWKS server is down, never loaded). */
const UNAVAILABLE: KeySource = {
  lookup: () => Promise.resolve({ status: 'unavailable', detail: 'keys not loaded (network)' }),
  ready: () => false,
  start: () => Promise.resolve(),
  close: () => {},
};

const es = () => keys.es256;
const header = (over: Record<string, unknown> = {}, key: TestKey = es()) => ({ alg: key.alg, typ: TYP, kid: key.kid, ...over });
const withoutMember = (o: Record<string, unknown>, k: string) => {
  const c = { ...o };
  delete c[k];
  return c;
};

const CASES: Case[] = [
  // --- token_too_large (more in its describe below) ---
  { name: 'a token over max_bytes', token: () => signToken(es(), { pad: 'x'.repeat(9000) }), reason: 'token_too_large', maxBytes: 8192 },
  // --- keys_unavailable (a real down JWKS server in its describe below) ---
  { name: 'issuer keys cannot be obtained', token: () => signToken(es()), reason: 'keys_unavailable', keys: () => UNAVAILABLE },

  // --- accepted ---
  { name: 'valid ES256', token: () => signToken(es()), reason: 'ok', jose: 'jwks' },
  { name: 'valid EdDSA', token: () => signToken(keys.eddsa), reason: 'ok', jose: 'jwks' },
  { name: 'typ application/delegation+jwt', token: () => forge({ key: es(), header: header({ typ: 'application/delegation+jwt' }) }), reason: 'ok' },
  { name: 'typ DELEGATION+JWT', token: () => forge({ key: es(), header: header({ typ: 'DELEGATION+JWT' }) }), reason: 'ok' },
  { name: 'typ Application/Delegation+JWT', token: () => forge({ key: es(), header: header({ typ: 'Application/Delegation+JWT' }) }), reason: 'ok' },
  { name: 'header members in another order', token: () => forge({ key: es(), headerJson: `{"kid":"${es().kid}","typ":"${TYP}","alg":"ES256"}` }), reason: 'ok' },

  // --- malformed_token: encodings jose tolerates ---
  { name: '== padded signature', token: () => forge({ key: es(), signature: 'pad' }), reason: 'malformed_token', jose: 'jwks' },
  {
    name: 'newline inside the signature',
    token: async () => {
      const t = await signToken(es());
      return t.slice(0, t.length - 20) + '\n' + t.slice(t.length - 20);
    },
    reason: 'malformed_token',
    jose: 'jwks',
  },
  { name: 'trailing space after the signature', token: async () => (await signToken(es())) + ' ', reason: 'malformed_token', jose: 'jwks' },
  {
    name: 'newline inside the payload segment (validly signed)',
    token: () => forge({ key: es(), segments: (h, p) => [h, p.slice(0, 10) + '\n' + p.slice(10)] }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'space inside the header segment (validly signed)',
    token: () => forge({ key: es(), segments: (h, p) => [h.slice(0, 8) + ' ' + h.slice(8), p] }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'padded payload segment (validly signed)',
    token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims({ jti: 'x' })) + ' ', segments: (h, p) => [h, p + '='.repeat((4 - (p.length % 4)) % 4 || 4)] }),
    reason: 'malformed_token',
  },
  {
    name: 'non-canonical last char of the signature',
    token: async () => {
      const t = await signToken(es());
      // 64-byte signature: 86 chars, the last one has 4 unused bits; set the lowest.
      const last = t.charCodeAt(t.length - 1);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const v = alphabet.indexOf(String.fromCharCode(last));
      return t.slice(0, -1) + alphabet[v ^ 1];
    },
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'non-canonical last char of the header (validly signed)',
    token: () =>
      forge({
        key: es(),
        // 55 bytes (kid "es256-1" + a space): 74 chars, the last one carries 4 unused bits.
        headerJson: `{"alg":"ES256","typ":"${TYP}","kid":"${es().kid}" }`,
        segments: (h, p) => {
          if (h.length % 4 !== 2) throw new Error('fixture: expected unused bits in the last char');
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
          const v = alphabet.indexOf(h.slice(-1));
          return [h.slice(0, -1) + alphabet[v ^ 1], p];
        },
      }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  { name: 'standard base64 alphabet (+/) in the signature', token: async () => (await signToken(es())).slice(0, -4) + 'AA+/', reason: 'malformed_token' },
  { name: 'two segments', token: async () => (await signToken(es())).split('.').slice(0, 2).join('.'), reason: 'malformed_token' },
  { name: 'four segments', token: async () => (await signToken(es())) + '.' + b64url('x'), reason: 'malformed_token' },
  { name: 'trailing dot', token: async () => (await signToken(es())) + '.', reason: 'malformed_token' },
  {
    name: 'JWE-like five segments',
    token: async () => [b64url('{"alg":"dir","enc":"A256GCM"}'), '', b64url('iv-iv-iv-iv-'), b64url('ciphertext'), b64url('tag-tag-tag-tag-')].join('.'),
    reason: 'malformed_token',
  },
  { name: 'empty token', token: async () => '', reason: 'malformed_token' },
  { name: 'three empty segments', token: async () => '..', reason: 'malformed_token' },
  { name: 'header is a JSON array', token: () => forge({ key: es(), headerJson: '["ES256"]', alg: 'ES256' }), reason: 'malformed_token' },
  { name: 'payload is a JSON string', token: () => forge({ key: es(), payloadJson: '"claims"' }), reason: 'malformed_token' },
  { name: 'payload is null', token: () => forge({ key: es(), payloadJson: 'null' }), reason: 'malformed_token' },
  { name: 'payload is not JSON', token: () => forge({ key: es(), payloadJson: '{iss: 1}' }), reason: 'malformed_token' },
  { name: 'payload with trailing comma', token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims()).slice(0, -1) + ',}' }), reason: 'malformed_token' },
  {
    name: 'payload with a BOM',
    token: () => forge({ key: es(), payloadJson: '\ufeff' + JSON.stringify(validClaims()) }),
    reason: 'malformed_token',
  },
  {
    name: 'payload that is not UTF-8',
    token: () => forge({ key: es(), segments: (h) => [h, b64url(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))] }),
    reason: 'malformed_token',
  },
  {
    name: 'duplicate header key (alg)',
    token: () => forge({ key: es(), alg: 'ES256', headerJson: `{"alg":"none","typ":"${TYP}","kid":"es256-1","alg":"ES256"}` }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'duplicate payload key (iss)',
    token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims()).replace('{', '{"iss":"https://evil.example",') }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'duplicate payload key spelled with an escape (\\u0061ud)',
    token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims()).replace('{', '{"\\u0061ud":"spiffe://prod.example.org/ns/x/sa/y",') }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  {
    name: 'lone surrogate escape in the payload',
    token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims()).replace('{', '{"x":"\\ud800",') }),
    reason: 'malformed_token',
    jose: 'jwks',
  },
  { name: 'payload nested 300 deep', token: () => forge({ key: es(), payloadJson: JSON.stringify(validClaims()).replace('{', '{"x":' + '['.repeat(300) + ']'.repeat(300) + ',') }), reason: 'malformed_token' },
  {
    name: 'malformed wins over forbidden header',
    token: () => forge({ key: es(), header: header({ jku: 'https://evil.example/jwks' }), payloadJson: '{"iss":' }),
    reason: 'malformed_token',
  },

  // --- forbidden_header ---
  ...(
    [
      ['cty', { cty: 'JWT' }, true],
      ['crit', { crit: ['exp'] }, false],
      ['jwk (embedded key)', { jwk: { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } }, true],
      ['jku', { jku: 'https://evil.example/jwks.json' }, true],
      ['x5u', { x5u: 'https://evil.example/cert.pem' }, true],
      ['x5c', { x5c: ['MIIB'] }, true],
      ['x5t', { x5t: 'AAAA' }, true],
      ['x5t#S256', { 'x5t#S256': 'AAAA' }, true],
      ['b64: false', { b64: false }, false],
      ['b64: true', { b64: true }, true],
      ['zip', { zip: 'DEF' }, true],
      ['unknown parameter', { foo: 'bar' }, true],
      ['__proto__', { ['__proto__']: { alg: 'none' } }, true],
      ['enc', { enc: 'A256GCM' }, true],
    ] as const
  ).map(
    ([name, extra, joseAccepts]): Case => ({
      name: `header ${name}`,
      token: () => {
        const h = header();
        const json = JSON.stringify(h).slice(0, -1) + ',' + JSON.stringify(extra).slice(1);
        return forge({ key: es(), headerJson: json });
      },
      reason: 'forbidden_header',
      ...(joseAccepts ? { jose: 'jwks' as const } : {}),
    }),
  ),
  { name: 'forbidden header beats untrusted issuer', token: () => forge({ key: es(), header: header({ jku: 'x' }), payload: validClaims({ iss: 'https://evil.example' }) }), reason: 'forbidden_header' },

  // --- untrusted_issuer (never consults keys) ---
  { name: 'iss missing', token: () => signToken(es(), { iss: undefined }), reason: 'untrusted_issuer', jose: 'jwks' },
  { name: 'iss not a string', token: () => signToken(es(), { iss: 42 }), reason: 'untrusted_issuer' },
  { name: 'iss an array with the issuer', token: () => signToken(es(), { iss: [ISSUER] }), reason: 'untrusted_issuer' },
  { name: 'iss unconfigured', token: () => signToken(es(), { iss: 'https://sts.evil.example' }), reason: 'untrusted_issuer', jose: 'jwks' },
  { name: 'iss differs by a trailing slash', token: () => signToken(es(), { iss: ISSUER + '/' }), reason: 'untrusted_issuer', jose: 'jwks' },
  { name: 'iss differs by case', token: () => signToken(es(), { iss: ISSUER.toUpperCase() }), reason: 'untrusted_issuer', jose: 'jwks' },
  { name: 'iss "__proto__"', token: () => signToken(es(), { iss: '__proto__' }), reason: 'untrusted_issuer' },
  { name: 'untrusted issuer beats alg none', token: () => forge({ header: header({ alg: 'none' }), payload: validClaims({ iss: 'https://evil.example' }), signature: 'empty', alg: 'none' }), reason: 'untrusted_issuer' },

  // --- alg_not_allowed ---
  { name: 'alg none, empty signature', token: () => forge({ header: header({ alg: 'none' }), alg: 'none', signature: 'empty' }), reason: 'alg_not_allowed' },
  { name: 'alg none, with a (valid ES256) signature', token: () => forge({ header: header({ alg: 'none' }), key: es().privateKey, alg: 'ES256' }), reason: 'alg_not_allowed' },
  {
    name: 'alg none even when the config lists it',
    token: () => forge({ header: header({ alg: 'none' }), alg: 'none', signature: 'empty' }),
    reason: 'alg_not_allowed',
    policy: () => issuerPolicy({ algorithms: ['ES256', 'none'] }),
  },
  { name: 'alg "es256" (lower case)', token: () => forge({ header: header({ alg: 'es256' }), key: es().privateKey, alg: 'ES256' }), reason: 'alg_not_allowed' },
  { name: 'alg "ES256 " (trailing space)', token: () => forge({ header: header({ alg: 'ES256 ' }), key: es().privateKey, alg: 'ES256' }), reason: 'alg_not_allowed' },
  { name: 'alg missing', token: () => forge({ header: withoutMember(header(), 'alg'), key: es().privateKey, alg: 'ES256' }), reason: 'alg_not_allowed' },
  { name: 'alg not a string', token: () => forge({ header: header({ alg: ['ES256'] }), key: es().privateKey, alg: 'ES256' }), reason: 'alg_not_allowed' },
  {
    name: 'HS256 with the public key (SPKI PEM) as HMAC secret',
    token: () => forge({ header: header({ alg: 'HS256' }), key: new TextEncoder().encode(spkiPem), alg: 'HS256' }),
    reason: 'alg_not_allowed',
    jose: 'hmac-spki',
  },
  {
    name: 'HS256 even when the config lists it',
    token: () => forge({ header: header({ alg: 'HS256' }), key: new TextEncoder().encode(spkiPem), alg: 'HS256' }),
    reason: 'alg_not_allowed',
    policy: () => issuerPolicy({ algorithms: ['ES256', 'HS256'] }),
  },
  {
    name: 'RS256 when only ES256 is allowed',
    token: () => signToken(rsa),
    reason: 'alg_not_allowed',
    policy: () => issuerPolicy({ algorithms: ['ES256'] }),
    jwks: () => jwksOf(keys.es256, rsa),
  },
  { name: 'EdDSA when only ES256 is allowed', token: () => signToken(keys.eddsa), reason: 'alg_not_allowed', policy: () => issuerPolicy({ algorithms: ['ES256'] }), jose: 'jwks' },

  // --- bad_typ ---
  { name: 'typ JWT', token: () => forge({ key: es(), header: header({ typ: 'JWT' }) }), reason: 'bad_typ', jose: 'jwks' },
  { name: 'typ at+jwt', token: () => forge({ key: es(), header: header({ typ: 'at+jwt' }) }), reason: 'bad_typ', jose: 'jwks' },
  { name: 'typ missing', token: () => forge({ key: es(), header: withoutMember(header(), 'typ') }), reason: 'bad_typ', jose: 'jwks' },
  { name: 'typ not a string', token: () => forge({ key: es(), header: header({ typ: 1 }) }), reason: 'bad_typ' },
  { name: 'typ with a trailing space', token: () => forge({ key: es(), header: header({ typ: 'delegation+jwt ' }) }), reason: 'bad_typ', jose: 'jwks' },
  { name: 'typ with a doubled application/ prefix', token: () => forge({ key: es(), header: header({ typ: 'application/application/delegation+jwt' }) }), reason: 'bad_typ', jose: 'jwks' },
  { name: 'typ with a media-type parameter', token: () => forge({ key: es(), header: header({ typ: 'delegation+jwt;charset=utf-8' }) }), reason: 'bad_typ', jose: 'jwks' },
  {
    name: 'typ using a non-ASCII case variant (Kelvin sign K)',
    token: () => forge({ key: es(), header: header({ typ: 'desk+jwt'.replace('k', '\u212a') }) }),
    reason: 'bad_typ',
    policy: () => issuerPolicy({ typ: 'desk+jwt' }),
  },

  // --- unknown_key ---
  { name: 'kid missing with a single-key JWKS', token: () => forge({ key: es(), header: withoutMember(header(), 'kid') }), reason: 'unknown_key', jwks: () => jwksOf(keys.es256), jose: 'single-key-jwks' },
  { name: 'kid empty', token: () => forge({ key: es(), header: header({ kid: '' }) }), reason: 'unknown_key' },
  { name: 'kid not a string', token: () => forge({ key: es(), header: header({ kid: 1 }) }), reason: 'unknown_key' },
  { name: 'foreign kid', token: () => forge({ key: es(), header: header({ kid: 'someone-else' }) }), reason: 'unknown_key' },
  { name: 'kid "__proto__"', token: () => forge({ key: es(), header: header({ kid: '__proto__' }) }), reason: 'unknown_key' },

  // --- bad_signature ---
  {
    name: 'tampered payload',
    token: async () => {
      const [h, , s] = (await signToken(es())).split('.');
      return `${h}.${b64url(JSON.stringify(validClaims({ sub: 'user:mallory@example.org' })))}.${s}`;
    },
    reason: 'bad_signature',
  },
  { name: 'tampered signature bit', token: () => forge({ key: es(), signature: 'tamper' }), reason: 'bad_signature' },
  { name: 'signed by another key with the same kid', token: () => signToken(impostor), reason: 'bad_signature' },
  { name: 'truncated signature', token: () => forge({ key: es(), signature: 'truncate' }), reason: 'bad_signature' },
  { name: 'ES256 DER-encoded signature', token: () => forge({ key: es(), signature: 'der' }), reason: 'bad_signature' },
  { name: 'ES256 empty signature', token: () => forge({ key: es(), signature: 'empty' }), reason: 'bad_signature' },
  { name: 'ES256 signature with a zero byte appended', token: async () => {
    const [h, p, s] = (await signToken(es())).split('.');
    return `${h}.${p}.${b64url(Buffer.concat([Buffer.from(s as string, 'base64url'), Buffer.from([0])]))}`;
  }, reason: 'bad_signature' },
  { name: 'EdDSA truncated signature', token: () => forge({ key: keys.eddsa, signature: 'truncate' }), reason: 'bad_signature' },
  { name: 'EdDSA tampered signature', token: () => forge({ key: keys.eddsa, signature: 'tamper' }), reason: 'bad_signature' },
  {
    name: 'EdDSA header naming the ES256 kid (key does not fit alg)',
    token: () => forge({ key: keys.eddsa, header: header({ alg: 'EdDSA', kid: keys.es256.kid }) }),
    reason: 'bad_signature',
  },
  {
    name: 'header re-encoded after signing (signature covers the original text)',
    token: async () => {
      const [, p, s] = (await signToken(es())).split('.');
      return `${b64url(JSON.stringify({ kid: es().kid, alg: 'ES256', typ: TYP }))}.${p}.${s}`;
    },
    reason: 'bad_signature',
  },
];

describe('TokenVerifier: SPEC §3 token stage', () => {
  it('covers every reason the token stage decides (derived from DENY_REASONS)', () => {
    expect(missingRows('verifier', CASES.map((c) => c.reason))).toEqual([]);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const { spy, verifier } = setup(c.policy?.(), c.jwks?.() ?? keys.jwks, c.maxBytes, c.keys?.());
    const token = await c.token();
    const result = await verifier.verify(token);
    expect(reasonOf(result)).toBe(c.reason);

    // Before the kid stage nothing may touch the key source (no fetch for junk or foreign tokens).
    const preKey: ReadonlyArray<DenyReason | 'ok'> = ['token_too_large', 'malformed_token', 'forbidden_header', 'untrusted_issuer', 'alg_not_allowed', 'bad_typ'];
    if (preKey.includes(c.reason)) expect(spy.calls).toEqual([]);

    if (c.jose !== undefined) {
      // Proof that the check is ours: jose itself accepts this exact token.
      const key =
        c.jose === 'hmac-spki'
          ? new TextEncoder().encode(spkiPem)
          : createLocalJWKSet(c.jose === 'single-key-jwks' ? jwksOf(keys.es256) : keys.jwks);
      await expect(compactVerify(token, key as Parameters<typeof compactVerify>[1])).resolves.toBeDefined();
    }
  });

  it('returns the verified header, payload and issuer policy', async () => {
    const policy = issuerPolicy();
    const { verifier } = setup(policy);
    const claims = validClaims({ jti: 'fixed-jti' });
    const r = await verifier.verify(await forge({ key: es(), header: header({ typ: 'application/DELEGATION+jwt' }), payload: claims }));
    expect(r).toEqual({
      ok: true,
      token: { header: { alg: 'ES256', typ: 'application/DELEGATION+jwt', kid: es().kid }, payload: claims, issuer: policy },
    });
  });

  it.each(['ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'Ed25519'])(
    'verifies %s when allowed',
    async (alg) => {
      const k = await testKey(alg);
      const { verifier } = setup(issuerPolicy({ algorithms: [alg] }), jwksOf(k));
      expect(reasonOf(await verifier.verify(await signToken(k)))).toBe('ok');
      expect(reasonOf(await verifier.verify(await forge({ key: k, signature: 'tamper' })))).toBe('bad_signature');
    },
  );

  it('refuses an RSA key under 2048 bits (refused at load: unknown_key)', async () => {
    const weak = await testKey('RS256', 'weak', { modulusLength: 1024 });
    const { verifier } = setup(issuerPolicy({ algorithms: ['RS256'] }), jwksOf(rsa, weak));
    expect(reasonOf(await verifier.verify(await signToken(weak)))).toBe('unknown_key');
    expect(reasonOf(await verifier.verify(await signToken(rsa)))).toBe('ok');
  });

  it('an ES256 JWKS entry with a different JWK alg is unusable for ES256', async () => {
    const jwk = { ...keys.es256.publicJwk, alg: 'ES384' };
    const { verifier } = setup(issuerPolicy(), { keys: [jwk] });
    expect(reasonOf(await verifier.verify(await signToken(es())))).toBe('bad_signature');
  });
});

describe('token_too_large', () => {
  it('accepts a token of exactly max_bytes and refuses one byte more', async () => {
    const token = await signToken(es());
    const exact = setup(issuerPolicy(), keys.jwks, token.length);
    expect(reasonOf(await exact.verifier.verify(token))).toBe('ok');
    const under = setup(issuerPolicy(), keys.jwks, token.length - 1);
    expect(await under.verifier.verify(token)).toMatchObject({ ok: false, reason: 'token_too_large' });
    expect(under.spy.calls).toEqual([]);
  });

  it('counts UTF-8 bytes, not UTF-16 units', async () => {
    const token = (await signToken(es())) + 'é'; // +1 char, +2 bytes
    const { verifier } = setup(issuerPolicy(), keys.jwks, token.length);
    expect(reasonOf(await verifier.verify(token))).toBe('token_too_large');
    const roomy = setup(issuerPolicy(), keys.jwks, token.length + 1);
    expect(reasonOf(await roomy.verifier.verify(token))).toBe('malformed_token');
  });

  it('is checked before anything else (a huge junk string)', async () => {
    const { verifier } = setup();
    expect(reasonOf(await verifier.verify('x'.repeat(1_000_000)))).toBe('token_too_large');
  });
});

describe('audit fields and robustness', () => {
  it('reports unverified iss and kid on failures, only when strings, truncated', async () => {
    const { verifier } = setup();
    const long = 'https://evil.example/' + 'a'.repeat(1000);
    const r = await verifier.verify(await forge({ key: es(), header: header({ kid: 'k'.repeat(500) }), payload: validClaims({ iss: long }) }));
    expect(r).toMatchObject({ ok: false, reason: 'untrusted_issuer' });
    if (r.ok) throw new Error('unreachable');
    expect(r.iss).toBe(long.slice(0, 256));
    expect(r.kid).toBe('k'.repeat(256));

    const r2 = await verifier.verify(await forge({ key: es(), header: header({ kid: 7 }), payload: validClaims({ iss: 7 }) }));
    expect(r2.ok).toBe(false);
    expect(r2).not.toHaveProperty('iss');
    expect(r2).not.toHaveProperty('kid');

    const r3 = await verifier.verify(await forge({ key: es(), header: header({ x5u: 'https://evil.example' }) }));
    expect(r3).toMatchObject({ ok: false, reason: 'forbidden_header', iss: ISSUER, kid: es().kid });

    const r4 = await verifier.verify(await forge({ key: es(), signature: 'tamper' }));
    expect(r4).toMatchObject({ ok: false, reason: 'bad_signature', iss: ISSUER, kid: es().kid });
  });

  it('never includes token bytes in detail', async () => {
    const { verifier } = setup();
    const token = await forge({ key: es(), signature: 'tamper' });
    const r = await verifier.verify(token);
    if (r.ok) throw new Error('unreachable');
    for (const seg of token.split('.')) expect(r.detail ?? '').not.toContain(seg.slice(0, 16));
  });

  it('turns a throwing key source into internal_error (503), never a throw', async () => {
    const throwing: KeySource = {
      lookup: () => Promise.reject(new Error('boom')),
      ready: () => true,
      start: () => Promise.resolve(),
      close: () => {},
    };
    const verifier = new TokenVerifier({ issuers: [{ policy: issuerPolicy(), keys: throwing }], maxBytes: 8192 });
    const r = await verifier.verify(await signToken(es()));
    expect(r).toMatchObject({ ok: false, reason: 'internal_error', iss: ISSUER, kid: es().kid });
    expect(DENY_STATUS.internal_error).toBe(503);
  });

  it('treats a key source that returns a non-verify key as bad_signature', async () => {
    const wrongKind: KeySource = {
      lookup: async () => ({ status: 'found', key: keys.eddsa.publicKey }),
      ready: () => true,
      start: () => Promise.resolve(),
      close: () => {},
    };
    const verifier = new TokenVerifier({ issuers: [{ policy: issuerPolicy(), keys: wrongKind }], maxBytes: 8192 });
    expect(reasonOf(await verifier.verify(await signToken(es())))).toBe('bad_signature');
  });

  it('with two issuers, only the token issuer\'s key source is consulted', async () => {
    const other = await generateIssuerKeys({ es256: 'other-es', eddsa: 'other-ed' });
    const spyA = new SpySource(new StaticKeySource(keys.jwks));
    const spyB = new SpySource(new StaticKeySource(other.jwks));
    const b = 'https://sts.other.example.org';
    const verifier = new TokenVerifier({
      issuers: [
        { policy: issuerPolicy(), keys: spyA },
        { policy: issuerPolicy({ issuer: b }), keys: spyB },
      ],
      maxBytes: 8192,
    });
    expect(reasonOf(await verifier.verify(await signToken(other.es256, { iss: b })))).toBe('ok');
    expect(spyA.calls).toEqual([]);
    expect(spyB.calls).toEqual([['other-es', 'ES256']]);
    // A's key under B's name is not B's key.
    expect(reasonOf(await verifier.verify(await signToken(es(), { iss: b })))).toBe('unknown_key');
  });
});

describe('keys_unavailable', () => {
  it('is 503 keys_unavailable when the JWKS server is down and keys never loaded', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const source = new HttpKeySource({
      uri: `http://127.0.0.1:${port}/jwks.json`,
      timeoutMs: 2000,
      cooldownMs: 30_000,
      maxBytes: 65536,
      allowInsecureHttp: true,
      now: () => 0,
    });
    await source.start();
    expect(source.ready()).toBe(false);
    const verifier = new TokenVerifier({ issuers: [{ policy: issuerPolicy(), keys: source }], maxBytes: 8192 });
    const r = await verifier.verify(await signToken(es()));
    expect(r).toMatchObject({ ok: false, reason: 'keys_unavailable', iss: ISSUER, kid: es().kid });
    expect(DENY_STATUS.keys_unavailable).toBe(503);
    expect(source.stats()).toMatchObject({ attempts: 1, successes: 0, failures: 1, lastErrorCode: 'network' });
    source.close();
  });
});
