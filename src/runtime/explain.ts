/** `hopguard check`: one decision, offline, by the same engine `serve` runs. */
import type { HopguardConfig } from '../config/types.js';
import { validateClaims } from '../core/claims.js';
import { explainGrants } from '../core/grants.js';
import type { HopRequest, Outcome } from '../core/types.js';
import type { Clock } from './clock.js';
import { buildEngine } from './engine.js';

export interface Explanation {
  readonly outcome: Outcome;
  /** Grant-by-grant explanation, when the token verifies and its claims are well formed. */
  readonly grants: readonly string[];
}

/**
 * Decides `req` (carrying `token`) with a fresh engine for `config`: its key sources load
 * once (remote JWKS are fetched once) and are closed before this returns.
 */
export async function explainDecision(config: HopguardConfig, req: HopRequest, token: string, clock: Clock): Promise<Explanation> {
  const engine = buildEngine(config, clock);
  try {
    await Promise.all(engine.issuers.map((i) => i.keys.start()));
    const outcome = await engine.authorizer.authorize(req);
    // Same verifier and cache key as authorize(): a token it verified is a cache hit here,
    // not a second signature check (the key sources stay open until then).
    const verified = await engine.verifier.verify(token, outcome.audit.tokenSha256);
    let grants: readonly string[] = [];
    if (verified.ok) {
      const claims = validateClaims(verified.token.payload, engine.authorizer.policy);
      if ('claims' in claims) grants = explainGrants(claims.claims, req, engine.authorizer.policy);
    }
    return { outcome, grants };
  } finally {
    for (const i of engine.issuers) i.keys.close();
  }
}
