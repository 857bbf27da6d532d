/**
 * Authorizer tests without signatures: a verifier that "verifies" the token text
 * `jti:<jti>` as a valid token (validClaims, issued at NOW_S) with that jti, and the hop
 * request that carries one.
 */
import { hopRequest } from '../../src/core/request.js';
import type { HopRequest } from '../../src/core/types.js';
import type { TokenVerifierLike } from '../../src/runtime/authorizer.js';
import type { VerifyResult } from '../../src/token/types.js';
import { CALLER, issuerPolicy, NOW_S, validClaims } from './tokens.js';

export const JTI_ISSUER = issuerPolicy(); // clock_skew 10 s, max_lifetime 300 s

export function verifiedJti(jti: string): VerifyResult {
  const payload = validClaims({ jti, iat: NOW_S, exp: NOW_S + 120 });
  return { ok: true, token: { header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'k' }, payload, issuer: JTI_ISSUER } };
}

export const jtiVerifier: TokenVerifierLike = {
  verify: (token: string): Promise<VerifyResult> => Promise.resolve(verifiedJti(token.slice('jti:'.length))),
};

/** A POST to the ledger by CALLER carrying the token `jti:<jti>`. */
export function jtiRequest(jti: string, ext: Record<string, string> = {}): HopRequest {
  return hopRequest({
    method: 'POST',
    path: '/v1/ledger/entries',
    tokenFromHeaders: [`jti:${jti}`],
    tokenFromHeaderMap: [],
    caller: CALLER,
    callerCertificate: undefined,
    contextExtensions: ext,
    requestId: 'r',
    traceId: '',
  });
}
