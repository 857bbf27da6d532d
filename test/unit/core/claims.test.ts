import { describe, expect, it } from 'vitest';
import { validateClaims } from '../../../src/core/claims.js';
import { CALLER, GRANT, ISSUER, NOW_S, payload, POLICY, PRIOR, USER, WORKLOAD, without } from '../../helpers/core.js';

function reasonOf(p: Record<string, unknown>): string {
  const r = validateClaims(p, POLICY);
  return 'claims' in r ? 'ok' : r.reason;
}

describe('validateClaims', () => {
  it('returns typed claims for a valid payload', () => {
    const r = validateClaims(payload({ nbf: NOW_S - 60, cnf: { 'x5t#S256': 'abc' } }), POLICY);
    expect(r).toEqual({
      claims: {
        iss: ISSUER.issuer,
        aud: WORKLOAD,
        sub: USER,
        iat: NOW_S - 60,
        exp: NOW_S + 120,
        nbf: NOW_S - 60,
        jti: 'jti-1',
        act: { sub: CALLER, act: { sub: PRIOR } },
        authorization_details: [GRANT],
        txn: 'txn-1',
        cnf: { 'x5t#S256': 'abc' },
      },
    });
  });

  it.each(['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'act', 'authorization_details'])(
    'absent %s -> missing_claim naming it',
    (name) => {
      const r = validateClaims(without(name), POLICY);
      expect(r).toMatchObject({ allow: false, reason: 'missing_claim', status: 401 });
      expect((r as { detail: string }).detail).toContain(name);
    },
  );

  it.each(['nbf', 'txn', 'cnf'])('absent optional %s is fine', (name) => {
    expect(reasonOf(without(name))).toBe('ok');
  });

  it('checks every presence before any type', () => {
    // aud has the wrong type, but a later claim is missing: presence wins.
    expect(reasonOf(without('authorization_details', { aud: 7 }))).toBe('missing_claim');
    expect(reasonOf(without('jti', { iat: 'now' }))).toBe('missing_claim');
  });

  it('reports the first missing claim in SPEC order', () => {
    const p = without('aud');
    delete p['act'];
    expect((validateClaims(p, POLICY) as { detail: string }).detail).toContain('aud');
  });

  it('does not read claims from the prototype chain', () => {
    const p = Object.create(payload()) as Record<string, unknown>;
    expect(reasonOf(p)).toBe('missing_claim');
  });

  // [case, payload overrides, expected]
  const table: Array<[string, Record<string, unknown>, string]> = [
    // iss
    ['iss null', { iss: null }, 'bad_claim'],
    ['iss number', { iss: 1 }, 'bad_claim'],
    ['iss empty', { iss: '' }, 'bad_claim'],
    // aud
    ['aud array of strings', { aud: [WORKLOAD, 'x'] }, 'ok'],
    ['aud empty array', { aud: [] }, 'ok'],
    ['aud empty string', { aud: '' }, 'ok'], // type-correct; a mismatch later
    ['aud number', { aud: 1 }, 'bad_claim'],
    ['aud null', { aud: null }, 'bad_claim'],
    ['aud object', { aud: { 0: WORKLOAD } }, 'bad_claim'],
    ['aud array with a number', { aud: [WORKLOAD, 2] }, 'bad_claim'],
    ['aud nested array', { aud: [[WORKLOAD]] }, 'bad_claim'],
    // sub / jti
    ['sub empty', { sub: '' }, 'bad_claim'],
    ['sub number', { sub: 42 }, 'bad_claim'],
    ['sub object', { sub: { id: USER } }, 'bad_claim'],
    ['jti empty', { jti: '' }, 'bad_claim'],
    ['jti number', { jti: 1 }, 'bad_claim'],
    ['jti null', { jti: null }, 'bad_claim'],
    // numbers
    ['iat fractional', { iat: NOW_S - 0.5 }, 'bad_claim'],
    ['exp fractional', { exp: NOW_S + 0.5 }, 'bad_claim'],
    ['nbf fractional', { nbf: NOW_S + 0.5 }, 'bad_claim'],
    ['exp 1e400 (JSON gives Infinity)', { exp: JSON.parse('1e400') as number }, 'bad_claim'],
    ['iat -1e400 (JSON gives -Infinity)', { iat: JSON.parse('-1e400') as number }, 'bad_claim'],
    ['exp NaN', { exp: Number.NaN }, 'bad_claim'],
    ['exp 2^53', { exp: 2 ** 53 }, 'bad_claim'],
    ['exp 2^53 - 1', { exp: 2 ** 53 - 1 }, 'ok'],
    ['exp 1e20', { exp: 1e20 }, 'bad_claim'],
    ['exp as a string', { exp: String(NOW_S + 120) }, 'bad_claim'],
    ['iat as a string', { iat: String(NOW_S) }, 'bad_claim'],
    ['nbf as a string', { nbf: String(NOW_S) }, 'bad_claim'],
    ['nbf null', { nbf: null }, 'bad_claim'],
    ['exp boolean', { exp: true }, 'bad_claim'],
    ['exp array', { exp: [NOW_S] }, 'bad_claim'],
    ['negative iat is type-correct', { iat: -1 }, 'ok'],
    ['zero nbf is type-correct', { nbf: 0 }, 'ok'],
    ['exp 1.0 (an integer)', { exp: 1.0 }, 'ok'],
    // act (top level: bad_claim)
    ['act string', { act: CALLER }, 'bad_claim'],
    ['act null', { act: null }, 'bad_claim'],
    ['act array', { act: [{ sub: CALLER }] }, 'bad_claim'],
    ['act without sub', { act: {} }, 'bad_claim'],
    ['act with empty sub', { act: { sub: '' } }, 'bad_claim'],
    ['act with numeric sub', { act: { sub: 1 } }, 'bad_claim'],
    ['act an array carrying a sub property', { act: Object.assign([], { sub: CALLER }) }, 'bad_claim'],
    ['act with nested non-object (a chain matter, later)', { act: { sub: CALLER, act: 'x' } }, 'ok'],
    // authorization_details
    ['authorization_details empty', { authorization_details: [] }, 'ok'],
    ['authorization_details object', { authorization_details: GRANT }, 'bad_claim'],
    ['authorization_details string', { authorization_details: 'hop' }, 'bad_claim'],
    ['authorization_details null', { authorization_details: null }, 'bad_claim'],
    ['entry a number', { authorization_details: [1] }, 'bad_claim'],
    ['entry an array', { authorization_details: [[GRANT]] }, 'bad_claim'],
    ['entry null', { authorization_details: [GRANT, null] }, 'bad_claim'],
    ['entry without type', { authorization_details: [{ locations: [WORKLOAD] }] }, 'bad_claim'],
    ['entry with numeric type', { authorization_details: [{ type: 1 }] }, 'bad_claim'],
    ['grant locations a string', { authorization_details: [{ ...GRANT, locations: WORKLOAD }] }, 'bad_claim'],
    ['grant actions with a number', { authorization_details: [{ ...GRANT, actions: ['POST', 1] }] }, 'bad_claim'],
    ['grant paths an object', { authorization_details: [{ ...GRANT, paths: { 0: '/x' } }] }, 'bad_claim'],
    ['grant paths null', { authorization_details: [{ ...GRANT, paths: null }] }, 'bad_claim'],
    ['grant with absent fields', { authorization_details: [{ type: 'hop' }] }, 'ok'],
    ['other type with odd fields (not ours)', { authorization_details: [{ type: 'x', locations: 1 }, GRANT] }, 'ok'],
    // txn / cnf
    ['txn number', { txn: 1 }, 'bad_claim'],
    ['txn null', { txn: null }, 'bad_claim'],
    ['txn empty string', { txn: '' }, 'ok'],
    ['cnf array', { cnf: [] }, 'bad_claim'],
    ['cnf string', { cnf: 'abc' }, 'bad_claim'],
    ['cnf null', { cnf: null }, 'bad_claim'],
    ['cnf x5t#S256 number', { cnf: { 'x5t#S256': 1 } }, 'bad_claim'],
    ['cnf empty object', { cnf: {} }, 'ok'],
    ['cnf an array carrying x5t#S256', { cnf: Object.assign([], { 'x5t#S256': 'abc' }) }, 'bad_claim'],
    ['entry an array carrying a type', { authorization_details: [Object.assign([], { type: 'hop' })] }, 'bad_claim'],
  ];
  it.each(table)('%s -> %s', (_, over, want) => {
    const r = validateClaims(payload(over), POLICY);
    if (want === 'ok') {
      expect(r).toHaveProperty('claims');
    } else {
      expect(r).toMatchObject({ allow: false, reason: want, status: 401 });
    }
  });

  it('types only entries of the configured grant type', () => {
    const r = validateClaims(payload({ authorization_details: [{ type: 'x', locations: ['a'] }, GRANT] }), POLICY);
    expect(r).toHaveProperty('claims');
    if (!('claims' in r)) throw new Error(r.reason);
    expect(r.claims.authorization_details).toEqual([{ type: 'x' }, GRANT]);
  });
});
