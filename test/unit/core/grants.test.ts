import { describe, expect, it } from 'vitest';
import { validateClaims, type DelegationClaims } from '../../../src/core/claims.js';
import { explainGrants, matchGrant } from '../../../src/core/grants.js';
import type { HopRequestInit } from '../../../src/core/request.js';
import type { Policy } from '../../../src/core/types.js';
import { GRANT, payload, POLICY, request, WORKLOAD } from '../../helpers/core.js';

function claimsWith(details: unknown[], policy: Policy = POLICY): DelegationClaims {
  const r = validateClaims(payload({ authorization_details: details }), policy);
  if (!('claims' in r)) throw new Error(`fixture invalid: ${r.reason}`);
  return r.claims;
}

const ACTION_GRANT = { type: 'hop', locations: [WORKLOAD], actions: ['ledger.write'], paths: [] };

describe('matchGrant', () => {
  // [case, grants, request overrides, expected reason, grantIndex]
  const table: Array<[string, unknown[], Partial<HopRequestInit>, string, number?]> = [
    ['exact path', [GRANT], {}, 'granted', 0],
    ['* segment', [GRANT], { path: '/v1/accounts/acc-9/balance' }, 'granted', 0],
    ['/** prefix itself', [GRANT], { path: '/v1/reports' }, 'granted', 0],
    ['/** below', [GRANT], { path: '/v1/reports/2024/q1' }, 'granted', 0],
    ['query ignored', [GRANT], { path: '/v1/ledger/entries?next=/admin' }, 'granted', 0],
    ['index counts non-grant entries', [{ type: 'other' }, GRANT], {}, 'granted', 1],
    ['first covering grant wins', [{ ...GRANT, actions: ['GET'] }, GRANT, GRANT], {}, 'granted', 1],
    ['no entries', [], {}, 'grant_missing'],
    ['only other types', [{ type: 'payment_initiation' }, { type: 'Hop' }], {}, 'grant_missing'],
    ['location missing', [{ ...GRANT, locations: ['spiffe://prod.example.org/ns/x/sa/y'] }], {}, 'grant_mismatch'],
    ['locations absent', [{ type: 'hop', actions: ['POST'], paths: ['/**'] }], {}, 'grant_mismatch'],
    ['location with Cyrillic look-alike', [{ ...GRANT, locations: [WORKLOAD.replace('ledger', 'l\u0435dger')] }], {}, 'grant_mismatch'],
    ['location with fullwidth slash', [{ ...GRANT, locations: [WORKLOAD.replace('/sa/', '/sa\uff0f')] }], {}, 'grant_mismatch'],
    ['location prefix only', [{ ...GRANT, locations: ['spiffe://prod.example.org/ns/payments'] }], {}, 'grant_mismatch'],
    ['location with trailing slash', [{ ...GRANT, locations: [`${WORKLOAD}/`] }], {}, 'grant_mismatch'],
    ['method not in actions', [GRANT], { method: 'DELETE' }, 'grant_mismatch'],
    ['method case differs (request)', [GRANT], { method: 'post' }, 'grant_mismatch'],
    ['method case differs (grant)', [{ ...GRANT, actions: ['post'] }], {}, 'grant_mismatch'],
    ['actions absent', [{ type: 'hop', locations: [WORKLOAD], paths: ['/**'] }], {}, 'grant_mismatch'],
    ['path not covered', [GRANT], { path: '/v1/ledger/accounts' }, 'grant_mismatch'],
    ['path near miss', [GRANT], { path: '/v1/reportsX' }, 'grant_mismatch'],
    ['* does not span segments', [GRANT], { path: '/v1/accounts/a/b/balance' }, 'grant_mismatch'],
    ['paths absent', [{ type: 'hop', locations: [WORKLOAD], actions: ['POST'] }], {}, 'grant_mismatch'],
    ['invalid pattern never matches', [{ ...GRANT, paths: ['/v1/**/entries', '/v1/led*/entries'] }], {}, 'grant_mismatch'],
    ['one valid pattern among invalid ones', [{ ...GRANT, paths: ['/v1/**/x', '/v1/ledger/**'] }], {}, 'granted', 0],
    ['matched grants across entries', [{ ...GRANT, paths: ['/x'] }, { ...GRANT, locations: [] }], {}, 'grant_mismatch'],
    // context_extensions.action
    ['route action in actions, paths not consulted', [ACTION_GRANT], { contextExtensions: { action: 'ledger.write' } }, 'granted', 0],
    ['route action, path outside paths still fine', [{ ...GRANT, actions: ['ledger.write'] }], { path: '/elsewhere', contextExtensions: { action: 'ledger.write' } }, 'granted', 0],
    ['route action not in actions', [ACTION_GRANT], { contextExtensions: { action: 'ledger.read' } }, 'grant_mismatch'],
    ['route action replaces the method', [GRANT], { contextExtensions: { action: 'ledger.write' } }, 'grant_mismatch'],
    ['route action case differs', [ACTION_GRANT], { contextExtensions: { action: 'Ledger.Write' } }, 'grant_mismatch'],
    ['route action still needs the location', [{ ...ACTION_GRANT, locations: [] }], { contextExtensions: { action: 'ledger.write' } }, 'grant_mismatch'],
    ['empty route action falls back to method + path', [GRANT], { contextExtensions: { action: '' } }, 'granted', 0],
    ['other context extensions are ignored', [GRANT], { contextExtensions: { verb: 'x' } }, 'granted', 0],
    // defence in depth: matchGrant itself refuses non-canonical paths
    ['non-canonical path', [{ ...GRANT, paths: ['/**'] }], { path: '/v1/../admin' }, 'path_not_canonical'],
    ['non-canonical path with route action', [ACTION_GRANT], { path: '/a//b', contextExtensions: { action: 'ledger.write' } }, 'path_not_canonical'],
  ];
  it.each(table)('%s -> %s', (_, grants, over, reason, index) => {
    const d = matchGrant(claimsWith(grants), request(over), POLICY);
    expect(d.reason).toBe(reason);
    expect(d.allow).toBe(reason === 'granted');
    expect(d.status).toBe(reason === 'granted' ? 200 : 403);
    expect(d.grantIndex).toBe(index);
  });

  it('honours a non-default grant_type', () => {
    const mesh: Policy = { ...POLICY, grantType: 'mesh-hop' };
    const c = claimsWith([GRANT, { ...GRANT, type: 'mesh-hop' }], mesh);
    expect(matchGrant(c, request(), mesh)).toMatchObject({ reason: 'granted', grantIndex: 1 });
    expect(matchGrant(claimsWith([GRANT], mesh), request(), mesh)).toMatchObject({ reason: 'grant_missing' });
  });
});

describe('explainGrants', () => {
  it('says why each grant does or does not match', () => {
    const c = claimsWith([
      { type: 'other' },
      { ...GRANT, locations: ['spiffe://prod.example.org/ns/x'] },
      { ...GRANT, actions: ['GET'] },
      { ...GRANT, paths: ['/x', '/v1/**/bad'] },
      { type: 'hop', locations: [WORKLOAD], actions: ['POST'] },
      GRANT,
    ]);
    expect(explainGrants(c, request(), POLICY)).toEqual([
      `grant #1: locations do not include "${WORKLOAD}"`,
      'grant #2: actions do not include method "POST"',
      'grant #3: no path pattern matches "/v1/ledger/entries"; invalid pattern(s): "/v1/**/bad"',
      'grant #4: paths is empty or absent',
      'grant #5: matches (method "POST", path "/v1/ledger/entries")',
    ]);
  });

  it('explains route actions', () => {
    const c = claimsWith([GRANT, ACTION_GRANT]);
    expect(explainGrants(c, request({ contextExtensions: { action: 'ledger.write' } }), POLICY)).toEqual([
      'grant #0: actions do not include "ledger.write" (context_extensions.action)',
      'grant #1: matches (action "ledger.write" from context_extensions.action; paths not consulted)',
    ]);
  });

  it('explains grant_missing and non-canonical paths', () => {
    expect(explainGrants(claimsWith([]), request(), POLICY)).toEqual(['no grant of type "hop" (grant_missing)']);
    const lines = explainGrants(claimsWith([GRANT]), request({ path: '/v1/%2e%2e/x' }), POLICY);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/not canonical.*path_not_canonical/);
  });

  it('escapes control characters from the token', () => {
    const c = claimsWith([{ ...GRANT, paths: ['/x'], actions: ['\u001b[31mPOST'] }]);
    const [line] = explainGrants(c, request({ method: '\u001b[31mPOST' }), POLICY);
    expect(line).not.toContain('\u001b');
  });
});
