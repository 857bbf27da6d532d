/**
 * The fuzz world: two configured issuers with real keys, the policy hopguard is built with
 * (through the real config loader), the same facts for the oracle, and run budgets.
 *
 * Budget: FUZZ_RUNS (per property, default below) and FUZZ_SEED (reproduce a failure:
 * fast-check prints the seed and path of any counterexample).
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { Authorizer } from '../../../src/runtime/authorizer.js';
import { parseConfig } from '../../../src/config/load.js';
import { toIssuerPolicy, toPolicy } from '../../../src/config/policy.js';
import { MemoryReplayStore } from '../../../src/replay/memory.js';
import { StaticKeySource } from '../../../src/token/sources.js';
import { TokenVerifier } from '../../../src/token/verifier.js';
import { b64url, CALLER, ISSUER, NOW_MS, NOW_S, rawSign, TYP, WORKLOAD } from '../tokens.js';
import type { OracleIssuer, OracleKey, OracleWorld } from './oracle.js';

/** Cases per property. CI default keeps all fuzz files within ~30 s on 2 cores. */
export const RUNS = Math.max(1, Number(process.env['FUZZ_RUNS'] ?? '') || 400);
/** Per-test timeout that scales with the budget (long runs take hours, CI seconds). */
export const FUZZ_TEST_TIMEOUT_MS = 60_000 + RUNS * 50;
const seedEnv = Number(process.env['FUZZ_SEED'] ?? '');
/** fast-check parameters shared by every property. */
export const FC_PARAMS = {
  numRuns: RUNS,
  ...(Number.isInteger(seedEnv) && process.env['FUZZ_SEED'] ? { seed: seedEnv } : {}),
  // Stop at the first counterexample (shrinking a huge run's case can take long).
  endOnFailure: true,
} as const;

// The identities and clock every token test uses (test/helpers/tokens.ts), plus the fuzz world's own.
export { CALLER, ISSUER, NOW_MS, NOW_S, TYP, WORKLOAD };
export const ISSUER2 = 'https://sts.partner.example.org';
export const PRIOR = 'spiffe://prod.example.org/ns/web/sa/frontend';
export const PARTNER = 'spiffe://partner.example.org/ns/p/sa/p';

export const CALLER_PEM = readFileSync(new URL('../../fixtures/core-caller-cert.pem', import.meta.url), 'utf8');
export const OTHER_PEM = readFileSync(new URL('../../fixtures/core-other-cert.pem', import.meta.url), 'utf8');

export interface FuzzKey {
  readonly kid: string;
  readonly alg: 'ES256' | 'EdDSA';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JWK;
}

function makeKey(alg: 'ES256' | 'EdDSA', kid: string): FuzzKey {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/** Issuer 1: es-1 + ed-1. Issuer 2: p-1 only, ES256 only, audience arrays allowed. */
export const KEYS = {
  es: makeKey('ES256', 'es-1'),
  ed: makeKey('EdDSA', 'ed-1'),
  partner: makeKey('ES256', 'p-1'),
  /** Not in any JWKS; shares a kid with a real key. */
  stranger: makeKey('ES256', 'es-1'),
} as const;

/** Signs `${h}.${p}` as `alg` with `key` (JWS: ECDSA raw r||s): the suites' one signer, test/helpers/tokens.ts. */
export function signInput(alg: string, key: KeyObject, input: string): Buffer {
  return Buffer.from(rawSign(alg, key, Buffer.from(input, 'ascii')));
}

export const b64 = b64url;

/** A compact JWS of arbitrary header/payload JSON TEXT, correctly signed with `key`. */
export function jws(headerJson: string | Uint8Array, payloadJson: string | Uint8Array, key: FuzzKey, alg: string = key.alg): string {
  const h = b64(headerJson);
  const p = b64(payloadJson);
  return `${h}.${p}.${signInput(alg, key.privateKey, `${h}.${p}`).toString('base64url')}`;
}

const CONFIG = `
workload: { id: "${WORKLOAD}" }
token: { max_bytes: 4096 }
issuers:
  - issuer: ${ISSUER}
    jwks_file: /nonexistent/fuzz-1.json
  - issuer: ${ISSUER2}
    jwks_file: /nonexistent/fuzz-2.json
    algorithms: [ES256]
    typ: application/delegation+jwt
    clock_skew: 5s
    max_lifetime: 60s
    audience_arrays: true
delegation:
  trusted_domains: [prod.example.org, partner.example.org]
  max_chain_depth: 4
exempt:
  - { method: GET, path: /healthz }
`;

function buildWorld() {
  const parsed = parseConfig(CONFIG, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const config = parsed.config;
  const policy = toPolicy(config);
  const jwksFor: Record<string, FuzzKey[]> = { [ISSUER]: [KEYS.es, KEYS.ed], [ISSUER2]: [KEYS.partner] };
  const issuers = config.issuers.map((i) => ({
    policy: toIssuerPolicy(i),
    keys: new StaticKeySource({ keys: (jwksFor[i.issuer] ?? []).map((k) => k.jwk) }),
  }));
  const clock = { ms: NOW_MS };
  // With the verified-token cache, as in production (src/runtime/engine.ts): repeated tokens are
  // served from it, at other clock readings, and must still be decided like fresh ones.
  let hits = 0;
  const verifier = new TokenVerifier({
    issuers,
    maxBytes: config.token.max_bytes,
    cache: { maxEntries: config.token.cache_max_entries, now: () => clock.ms, onLookup: (hit) => void (hit && hits++) },
  });
  // As in production (src/runtime/engine.ts): a store always exists, off unless a route says on.
  const replay = new MemoryReplayStore(config.replay.max_entries, () => clock.ms);
  const authorizer = new Authorizer({ policy, verifier, replay, replayByDefault: config.replay.enabled, now: () => clock.ms });

  const oracleIssuers: OracleIssuer[] = config.issuers.map((i) => ({
    issuer: i.issuer,
    algorithms: [...i.algorithms],
    typ: i.typ,
    clockSkewMs: i.clock_skew,
    maxLifetimeMs: i.max_lifetime,
    audienceArrays: i.audience_arrays,
    keys: new Map<string, OracleKey>(
      (jwksFor[i.issuer] ?? []).map((k) => [k.kid, { algs: k.alg === 'EdDSA' ? ['EdDSA', 'Ed25519'] : ['ES256'], key: k.publicKey }]),
    ),
  }));
  const world: OracleWorld = {
    workloadId: config.workload.id,
    maxTokenBytes: config.token.max_bytes,
    requirePeerIdentity: config.delegation.require_peer_identity,
    trustedDomains: [...config.delegation.trusted_domains],
    maxChainDepth: config.delegation.max_chain_depth,
    grantType: config.delegation.grant_type,
    exempt: config.exempt.map((e) => ({ method: e.method, path: e.path })),
    issuers: oracleIssuers,
    replayByDefault: config.replay.enabled,
  };
  return { authorizer, clock, world, policy, cacheHits: () => hits };
}

export const WORLD = buildWorld();
