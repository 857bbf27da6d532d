import { randomUUID } from 'node:crypto';
import { decideExchange, exchangeKind, type Caller, type StsPolicy } from '../core/exchange.js';
import type { PathPattern } from '../core/path.js';
import { BoundedMemo } from '../lib/memo.js';
import { PATTERN_MEMO_MAX } from './authorizer.js';
import { exchangeError } from '../core/exchange-errors.js';
import { parseExchangeRequest, TOKEN_TYPE_JWT } from '../core/exchange-request.js';
import { errorAnswer, type ExchangeAnswer, type ExchangeFacts } from '../sts/answer.js';
import type { VerifyResult } from '../token/types.js';

/**
 * One token exchange, end to end but for HTTP: request parameters → the §2–§3 token stage
 * (TokenVerifier: parsing, pre-checks, issuer keys, signature) → the pure decision
 * (core/exchange.ts) → signature by the active key. Every outcome is a value carrying the
 * answer and the facts of its event. Never throws: a fault is `internal_error`.
 */

export interface SubjectVerifier {
  verify(token: string): VerifyResult | Promise<VerifyResult>;
}

export interface Signer {
  /** undefined when no key may sign now (none loaded, or none known for publish_ahead). */
  sign(claims: Readonly<Record<string, unknown>>): Promise<{ token: string; kid: string } | undefined>;
  ready(): boolean;
}

export interface ExchangerOptions {
  readonly policy: StsPolicy;
  readonly verifier: SubjectVerifier;
  readonly signer: Signer;
  /** Wall clock, ms. */
  readonly now: () => number;
  /** Random ids (jti, txn); injectable for tests. */
  readonly newId?: () => string;
}

export class Exchanger {
  private readonly newId: () => string;
  /** Compiled grant patterns of subject tokens and requests; bounded (they are request content). */
  private readonly patterns = new BoundedMemo<string, PathPattern | null>({ maxEntries: PATTERN_MEMO_MAX });

  constructor(private readonly opts: ExchangerOptions) {
    this.newId = opts.newId ?? randomUUID;
  }

  get policy(): StsPolicy {
    return this.opts.policy;
  }

  async exchange(params: ReadonlyMap<string, string>, caller: Caller): Promise<ExchangeAnswer> {
    const facts: Omit<ExchangeFacts, 'error' | 'reason' | 'status'> & { caller: string } = { caller: caller.id };
    try {
      const req = parseExchangeRequest(params);
      if ('ok' in req) return errorAnswer(req, facts);
      facts.audience = req.audience;
      if (!this.opts.signer.ready()) {
        return errorAnswer(exchangeError('keys_unavailable', 'no usable signing key'), facts);
      }

      const verified = await this.opts.verifier.verify(req.subjectToken);
      if (!verified.ok) {
        if (verified.iss !== undefined) facts.subjectIss = verified.iss;
        const kind = verified.iss === undefined ? undefined : exchangeKind(verified.iss, this.opts.policy);
        if (kind !== undefined) facts.kind = kind;
        return errorAnswer(exchangeError(verified.reason, `subject token: ${verified.detail ?? verified.reason}`), facts);
      }
      const { payload, issuer } = verified.token;
      facts.subjectIss = issuer.issuer;

      const r = decideExchange(
        {
          caller,
          request: req,
          subject: { payload, issuer },
          ids: { jti: this.newId(), txn: this.newId() },
          nowMs: this.opts.now(),
        },
        this.opts.policy,
        { patterns: this.patterns },
      );
      const a = r.audit;
      if (a.kind !== undefined) facts.kind = a.kind;
      if (a.sub !== undefined) facts.sub = a.sub;
      if (a.txn !== undefined) facts.txn = a.txn;
      if (a.subjectJti !== undefined) facts.subjectJti = a.subjectJti;
      if (!r.ok) return errorAnswer(r, facts);

      const signed = await this.opts.signer.sign(r.claims);
      if (signed === undefined) return errorAnswer(exchangeError('keys_unavailable', 'no usable signing key'), facts);
      return {
        status: 200,
        body: {
          access_token: signed.token,
          issued_token_type: TOKEN_TYPE_JWT,
          token_type: 'N_A',
          expires_in: r.expiresIn,
        },
        facts: {
          ...facts,
          reason: 'issued',
          status: 200,
          jti: r.claims['jti'] as string,
          grants: r.grants.length,
          exp: r.exp,
        },
      };
    } catch {
      return errorAnswer(exchangeError('internal_error', 'the exchange failed unexpectedly'), facts);
    }
  }
}
