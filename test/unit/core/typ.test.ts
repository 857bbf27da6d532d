/**
 * One normalizeTyp (src/core/typ.ts) for the token's `typ` and the config's expected typ.
 * Before, config used String#toLowerCase (Unicode) and the verifier ASCII-only lower-casing;
 * resolved towards ASCII-only, so no non-ASCII text can fold onto an expected typ.
 */
import { describe, expect, it } from 'vitest';
import { toIssuerPolicy } from '../../../src/config/policy.js';
import { normalizeTyp } from '../../../src/core/typ.js';
import { parse, patched } from '../../helpers/config.js';

describe('normalizeTyp', () => {
  it.each([
    ['delegation+jwt', 'delegation+jwt'],
    ['Delegation+JWT', 'delegation+jwt'],
    ['application/delegation+jwt', 'delegation+jwt'],
    ['APPLICATION/Delegation+JWT', 'delegation+jwt'],
    ['at+jwt', 'at+jwt'],
    ['application/', ''],
    // Not ASCII letters: left as they are (Unicode lower-casing would fold these).
    ['\u212Aid+jwt', '\u212Aid+jwt'], // KELVIN SIGN, which toLowerCase() turns into "k"
    ['DELEGAT\u0130ON+JWT', 'delegat\u0130on+jwt'], // LATIN CAPITAL I WITH DOT ABOVE
    ['\u00C4+JWT', '\u00C4+jwt'],
  ])('%j → %j', (typ, want) => {
    expect(normalizeTyp(typ)).toBe(want);
  });

  it('the config side: the schema only accepts ASCII media types, normalized the same way', () => {
    const bad = parse(patched((c) => (c.issuers[0].typ = 'Application/\u212Aid+JWT')));
    expect(bad.ok).toBe(false);
    const r = parse(patched((c) => (c.issuers[0].typ = 'Application/Delegation+JWT')));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const i = r.config.issuers[0];
    if (i === undefined) throw new Error('no issuer');
    expect(toIssuerPolicy(i).typ).toBe(normalizeTyp('Application/Delegation+JWT'));
  });
});
