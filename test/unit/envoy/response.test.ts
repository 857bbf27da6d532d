import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../../src/core/decision.js';
import { DENY_MESSAGE, DENY_REASONS, DENY_STATUS } from '../../../src/core/reasons.js';
import type { Audit, Decision, HopRequest, Outcome, SharedAnswers } from '../../../src/core/types.js';
import type { CheckResponseMsg, HeaderValueOptionMsg, StructMsg } from '../../../src/envoy/proto.js';
import { internalErrorResponse, toCheckResponse } from '../../../src/envoy/response.js';
import { hopRequest } from '../../../src/core/request.js';

const CALLER = 'spiffe://prod.example.org/ns/web/sa/frontend';
const PRIOR = 'spiffe://prod.example.org/ns/edge/sa/gateway';
const FULL_AUDIT: Audit = {
  iss: 'https://sts.prod.example.org',
  kid: 'k1',
  sub: 'user:alice',
  actors: [CALLER, PRIOR],
  jti: 'jti-1',
  txn: 'txn-1',
  tokenSha256: 'ab'.repeat(32),
};
const ALL3 = ['x-hopguard-sub', 'x-hopguard-actor', 'x-hopguard-txn'];

function req(requestId = 'rid-1'): HopRequest {
  return hopRequest({
    method: 'POST',
    path: '/v1/ledger/entries',
    tokenFromHeaders: [],
    tokenFromHeaderMap: [],
    caller: CALLER,
    callerCertificate: undefined,
    contextExtensions: {},
    requestId,
    traceId: '',
  });
}

function outcome(decision: Decision, audit: Audit = FULL_AUDIT, enforced = true): Outcome {
  return { decision, enforced, audit };
}

const overwrite = (key: string, value: string): HeaderValueOptionMsg => ({
  header: { key, value },
  append: { value: false },
  append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
});

function md(r: CheckResponseMsg): Record<string, unknown> {
  const fields = (r.dynamic_metadata as StructMsg).fields;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Object.values(v)[0]]));
}

function setNames(r: CheckResponseMsg): string[] {
  return (r.ok_response?.headers ?? []).map((h) => h.header.key);
}

describe('allow', () => {
  it('granted: OK, overwrite all three upstream headers, remove none', () => {
    const r = toCheckResponse(outcome(allow('granted', 0)), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(0);
    expect(r.denied_response).toBeUndefined();
    expect(r.ok_response).toEqual({
      headers: [
        overwrite('x-hopguard-sub', 'user:alice'),
        overwrite('x-hopguard-actor', CALLER),
        overwrite('x-hopguard-txn', 'txn-1'),
      ],
      headers_to_remove: [],
    });
    expect(md(r)).toEqual({
      decision: 'allow',
      reason: 'granted',
      enforced: true,
      sub: 'user:alice',
      actor: CALLER,
      jti: 'jti-1',
      txn: 'txn-1',
    });
  });

  it('granted without txn: txn is removed (spoof stripped), the others set; never both set and removed', () => {
    const { txn: _t, ...noTxn } = FULL_AUDIT;
    const r = toCheckResponse(outcome(allow('granted'), noTxn), req(), { upstreamHeaders: true });
    expect(setNames(r)).toEqual(['x-hopguard-sub', 'x-hopguard-actor']);
    expect(r.ok_response?.headers_to_remove).toEqual(['x-hopguard-txn']);
    expect(md(r)).not.toHaveProperty('txn');
  });

  const unusable: Array<[string, Audit, string[], string[]]> = [
    ['empty audit', {}, [], ALL3],
    ['empty sub', { ...FULL_AUDIT, sub: '' }, ['x-hopguard-actor', 'x-hopguard-txn'], ['x-hopguard-sub']],
    ['CR/LF in sub (header injection)', { ...FULL_AUDIT, sub: 'a\r\nx-admin: 1' }, ['x-hopguard-actor', 'x-hopguard-txn'], ['x-hopguard-sub']],
    ['NUL in txn', { ...FULL_AUDIT, txn: 'a\u0000b' }, ['x-hopguard-sub', 'x-hopguard-actor'], ['x-hopguard-txn']],
    ['no actors', { ...FULL_AUDIT, actors: [] }, ['x-hopguard-sub', 'x-hopguard-txn'], ['x-hopguard-actor']],
  ];
  it.each(unusable)('granted with %s: unusable values are removed, not set', (_n, audit, set, removed) => {
    const r = toCheckResponse(outcome(allow('granted'), audit), req(), { upstreamHeaders: true });
    expect(setNames(r)).toEqual(set);
    expect(r.ok_response?.headers_to_remove).toEqual(removed);
    for (const h of r.ok_response?.headers ?? []) {
      expect(r.ok_response?.headers_to_remove).not.toContain(h.header.key);
      expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
      expect(h.append).toEqual({ value: false });
    }
  });

  it('a tab inside a value is legal and kept', () => {
    const r = toCheckResponse(outcome(allow('granted'), { ...FULL_AUDIT, txn: 'a\tb' }), req(), { upstreamHeaders: true });
    expect(r.ok_response?.headers).toContainEqual(overwrite('x-hopguard-txn', 'a\tb'));
  });

  it('exempt: vouches for nothing, removes all three even if audit had values', () => {
    const r = toCheckResponse(outcome(allow('exempt'), FULL_AUDIT), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(0);
    expect(r.ok_response).toEqual({ headers: [], headers_to_remove: ALL3 });
    expect(md(r)).toMatchObject({ decision: 'allow', reason: 'exempt', enforced: true });
  });

  it('upstream headers disabled: sets nothing, still strips spoofed copies', () => {
    const r = toCheckResponse(outcome(allow('granted')), req(), { upstreamHeaders: false });
    expect(r.ok_response).toEqual({ headers: [], headers_to_remove: ALL3 });
    expect(md(r)).toMatchObject({ decision: 'allow', reason: 'granted', sub: 'user:alice' });
  });

  it('dry-run allow is a normal allow with enforced: false in metadata', () => {
    const r = toCheckResponse(outcome(allow('granted'), FULL_AUDIT, false), req(), { upstreamHeaders: true });
    expect(setNames(r)).toEqual(ALL3);
    expect(md(r)).toMatchObject({ decision: 'allow', enforced: false });
  });
});

describe('deny', () => {
  const table: Array<[string, number, number, boolean]> = [
    ['missing_token', 401, 16, true],
    ['bad_signature', 401, 16, true],
    ['actor_mismatch', 403, 7, false],
    ['grant_mismatch', 403, 7, false],
    ['keys_unavailable', 503, 14, false],
    ['internal_error', 503, 14, false],
  ];
  it.each(table)('%s → HTTP %i, gRPC %i', (reason, http, grpcCode, wwwAuth) => {
    const d = deny(reason as (typeof DENY_REASONS)[number]);
    const r = toCheckResponse(outcome(d), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(grpcCode);
    expect(r.ok_response).toBeUndefined();
    expect(r.denied_response?.status).toEqual({ code: http });
    const headers = [overwrite('content-type', 'application/json')];
    if (wwwAuth) headers.push(overwrite('www-authenticate', 'Bearer error="invalid_token"'));
    expect(r.denied_response?.headers).toEqual(headers);
    expect(JSON.parse(r.denied_response?.body ?? '')).toEqual({
      error: DENY_MESSAGE[reason as (typeof DENY_REASONS)[number]],
      reason,
      request_id: 'rid-1',
    });
    expect(md(r)).toMatchObject({ decision: 'deny', reason, enforced: true });
  });

  it.each(DENY_REASONS.map((r) => [r]))('every deny reason maps: %s', (reason) => {
    const r = toCheckResponse(outcome(deny(reason), {}), req(), { upstreamHeaders: true });
    const expected = { 401: 16, 403: 7, 503: 14 }[DENY_STATUS[reason]];
    expect(r.status.code).toBe(expected);
    expect(r.denied_response?.status.code).toBe(DENY_STATUS[reason]);
    expect(JSON.parse(r.denied_response?.body ?? '').reason).toBe(reason);
  });

  it('body escapes a hostile request id (valid JSON, value round-trips)', () => {
    const rid = 'a"b\\c\n</script>\u0000\u2028';
    const r = toCheckResponse(outcome(deny('expired')), req(rid), { upstreamHeaders: true });
    const body = r.denied_response?.body ?? '';
    expect(JSON.parse(body)).toEqual({ error: DENY_MESSAGE.expired, reason: 'expired', request_id: rid });
    expect(body).not.toContain('\n');
    expect(Object.keys(JSON.parse(body))).toEqual(['error', 'reason', 'request_id']);
  });

  it('deny metadata carries only known audit facts', () => {
    const r = toCheckResponse(outcome(deny('grant_mismatch'), { sub: 's', actors: [CALLER] }), req(), { upstreamHeaders: true });
    expect(md(r)).toEqual({ decision: 'deny', reason: 'grant_mismatch', enforced: true, sub: 's', actor: CALLER });
  });

  it('dry-run deny: answered OK, nothing vouched, all three removed, real reason in metadata', () => {
    const r = toCheckResponse(outcome(deny('grant_mismatch'), FULL_AUDIT, false), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(0);
    expect(r.denied_response).toBeUndefined();
    expect(r.ok_response).toEqual({ headers: [], headers_to_remove: ALL3 });
    expect(md(r)).toMatchObject({ decision: 'deny', reason: 'grant_mismatch', enforced: false, sub: 'user:alice' });
  });

  it('an enforced deny with a status outside the table fails closed as internal_error', () => {
    const odd: Decision = { allow: false, reason: 'grant_mismatch', status: 500 };
    const r = toCheckResponse(outcome(odd), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(14);
    expect(r.denied_response?.status.code).toBe(503);
    expect(JSON.parse(r.denied_response?.body ?? '').reason).toBe('internal_error');
  });

  it('an enforced deny carrying an allow reason fails closed as internal_error', () => {
    const odd: Decision = { allow: false, reason: 'granted', status: 403 };
    const r = toCheckResponse(outcome(odd), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(14);
    expect(JSON.parse(r.denied_response?.body ?? '').reason).toBe('internal_error');
  });

  it('a truthy non-boolean allow is not an allow', () => {
    const odd = { allow: 'yes', reason: 'granted', status: 200 } as unknown as Decision;
    const r = toCheckResponse(outcome(odd), req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(14);
    expect(r.ok_response).toBeUndefined();
  });

  it('enforced missing (malformed outcome) is treated as enforced', () => {
    const o = { decision: deny('expired'), audit: {} } as unknown as Outcome;
    const r = toCheckResponse(o, req(), { upstreamHeaders: true });
    expect(r.status.code).toBe(16);
    expect(md(r)).toMatchObject({ decision: 'deny', enforced: true });
  });
});

describe('internalErrorResponse', () => {
  it('is a 503 internal_error deny with the request id', () => {
    const r = internalErrorResponse('rid-9');
    expect(r.status.code).toBe(14);
    expect(r.denied_response?.status.code).toBe(503);
    expect(r.denied_response?.headers).toEqual([overwrite('content-type', 'application/json')]);
    expect(JSON.parse(r.denied_response?.body ?? '')).toEqual({
      error: DENY_MESSAGE.internal_error,
      reason: 'internal_error',
      request_id: 'rid-9',
    });
    expect(md(r)).toEqual({ decision: 'deny', reason: 'internal_error', enforced: true });
  });

  it('never throws on a non-string request id', () => {
    const r = internalErrorResponse(undefined as unknown as string);
    expect(JSON.parse(r.denied_response?.body ?? '').request_id).toBe('');
  });
});

describe('shared allow answers (a cached token\'s derived slot)', () => {
  const deepFrozen = (a: Audit): Audit => Object.freeze({ ...a, ...(a.actors ? { actors: Object.freeze([...a.actors]) } : {}) });
  /** An outcome of a cached token from its second Check on: frozen audit facts and the token's slot. */
  const cached = (d: Decision, a: Audit, slot: SharedAnswers, enforced = true): Outcome => ({ decision: d, enforced, audit: a, derived: slot });
  // Every allow-shaped variant: granted/exempt × enforced or dry-run deny × upstream headers on/off,
  // for audits with and without each fact (and a control character that must not be vouched).
  const audits: Audit[] = [FULL_AUDIT, {}, { sub: 'user:bob' }, { ...FULL_AUDIT, txn: 'bad\nvalue' }, { ...FULL_AUDIT, actors: [] }];
  const variants: Array<[Decision, boolean]> = [
    [allow('granted'), true],
    [allow('granted'), false],
    [allow('exempt'), true],
    [deny('actor_mismatch'), false],
  ];

  it('equal to the answer built afresh, whatever the variant order', () => {
    for (const a of audits) {
      const frozen = deepFrozen(a);
      const slot: SharedAnswers = {};
      for (const round of [0, 1]) {
        const order = round === 0 ? variants : [...variants].reverse();
        for (const [d, enforced] of order) {
          for (const upstreamHeaders of [true, false]) {
            const fresh = toCheckResponse(outcome(d, { ...a }, enforced), req(), { upstreamHeaders });
            for (let i = 0; i < 2; i++) {
              const shared = toCheckResponse(cached(d, frozen, slot, enforced), req(), { upstreamHeaders });
              expect(shared).toEqual(fresh);
            }
            const shared = toCheckResponse(cached(d, frozen, slot, enforced), req(), { upstreamHeaders });
            expect(Object.isFrozen(shared) && Object.isFrozen(shared.ok_response) && Object.isFrozen(shared.dynamic_metadata)).toBe(true);
          }
        }
      }
    }
  });

  it('a token seen once gets its own answer; from its second Check on, one shared frozen answer', () => {
    const a = deepFrozen(FULL_AUDIT);
    const slot: SharedAnswers = {};
    // First Check: the verifier hands out no slot yet (src/token/verifier.ts).
    const r0 = toCheckResponse(outcome(allow('granted'), a), req('r0'), { upstreamHeaders: true });
    expect(Object.isFrozen(r0)).toBe(false); // distinct tokens, each seen once, are never frozen
    const r1 = toCheckResponse(cached(allow('granted'), a, slot), req('r1'), { upstreamHeaders: true });
    const r2 = toCheckResponse(cached(allow('granted'), a, slot), req('r2'), { upstreamHeaders: true });
    expect(Object.isFrozen(r1)).toBe(true);
    expect(r2).toBe(r1);
    expect(r1).toEqual(r0);
    expect(toCheckResponse(cached(allow('granted'), a, slot, false), req(), { upstreamHeaders: true })).not.toBe(r1);
    expect(toCheckResponse(cached(allow('granted'), a, slot), req(), { upstreamHeaders: false })).not.toBe(r1);
    // Another token (another cache entry, another slot) gets its own answer.
    expect(toCheckResponse(cached(allow('granted'), deepFrozen(FULL_AUDIT), {}), req(), { upstreamHeaders: true })).not.toBe(r1);
    // The answers live in the token's slot, and go with it.
    expect(slot.answers).toHaveLength(3);
  });

  it('an outcome without a slot always gets a fresh answer (frozen audit facts or not)', () => {
    for (const a of [{ ...FULL_AUDIT }, deepFrozen(FULL_AUDIT)]) {
      const r1 = toCheckResponse(outcome(allow('granted'), a), req(), { upstreamHeaders: true });
      const r2 = toCheckResponse(outcome(allow('granted'), a), req(), { upstreamHeaders: true });
      expect(r2).not.toBe(r1);
      expect(r2).toEqual(r1);
    }
  });

  it('denies are never shared: the body carries each request id', () => {
    const a = deepFrozen(FULL_AUDIT);
    const slot: SharedAnswers = {};
    const d1 = toCheckResponse(cached(deny('actor_mismatch'), a, slot), req('one'), { upstreamHeaders: true });
    const d2 = toCheckResponse(cached(deny('actor_mismatch'), a, slot), req('two'), { upstreamHeaders: true });
    expect(JSON.parse(d1.denied_response!.body).request_id).toBe('one');
    expect(JSON.parse(d2.denied_response!.body).request_id).toBe('two');
    expect(slot.answers).toBeUndefined();
  });
});
