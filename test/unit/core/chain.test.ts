import { describe, expect, it } from 'vitest';
import { isSpiffeId, parseChain, trustDomainOf } from '../../../src/core/chain.js';
import { actors, CALLER, chainOf, POLICY, policy, PRIOR } from '../../helpers/core.js';

describe('isSpiffeId / trustDomainOf', () => {
  it.each([
    ['spiffe://prod.example.org/ns/orders/sa/orders', 'prod.example.org'],
    ['spiffe://prod.example.org', 'prod.example.org'],
    ['spiffe://td/a', 'td'],
    ['spiffe://my-td_1.example/A.b-c_D/9', 'my-td_1.example'],
    ['spiffe://td/...', 'td'], // three dots is a plain segment name
    [`spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`, 'td'], // exactly 2048
  ])('%j is a SPIFFE ID in %j', (id, td) => {
    expect(isSpiffeId(id)).toBe(true);
    expect(trustDomainOf(id)).toBe(td);
  });

  it.each([
    ['', 'empty'],
    ['prod.example.org/ns/x', 'no scheme'],
    ['SPIFFE://prod.example.org/ns/x', 'upper-case scheme'],
    ['https://prod.example.org/ns/x', 'other scheme'],
    ['spiffe:/prod.example.org/ns/x', 'one slash'],
    ['spiffe://', 'no trust domain'],
    ['spiffe:///ns/x', 'empty trust domain'],
    ['spiffe://PROD.example.org/ns/x', 'upper-case trust domain'],
    ['spiffe://prod.example.org:443/ns/x', 'port'],
    ['spiffe://user@prod.example.org/ns/x', 'userinfo'],
    ['spiffe://prod.example.org/ns/x?q=1', 'query'],
    ['spiffe://prod.example.org/ns/x#f', 'fragment'],
    ['spiffe://prod.example.org/ns/%78', 'percent-encoding'],
    ['spiffe://prod.example.org/', 'trailing slash on trust domain'],
    ['spiffe://prod.example.org/ns/x/', 'trailing slash'],
    ['spiffe://prod.example.org//ns', 'empty segment'],
    ['spiffe://prod.example.org/ns/./x', '. segment'],
    ['spiffe://prod.example.org/ns/../x', '.. segment'],
    ['spiffe://prod.example.org/ns/..', 'trailing .. segment'],
    ['spiffe://prod.example.org/ns/a b', 'space'],
    ['spiffe://prod.example.org/ns/a:b', 'colon in path'],
    ['spiffe://prod.example.org/ns/a\\b', 'backslash'],
    ['spiffe://prod.ex\u0430mple.org/ns/x', 'Cyrillic a in trust domain'],
    ['spiffe://prod.example.org/ns/\u0430', 'Cyrillic a in path'],
    ['spiffe://prod.example.org\uff0fns/x', 'fullwidth slash'],
    [`spiffe://${'a'.repeat(256)}/x`, 'trust domain over 255'],
    [`spiffe://td/${'a'.repeat(2049 - 'spiffe://td/'.length)}`, 'over 2048'],
  ])('%j is not a SPIFFE ID (%s)', (id) => {
    expect(isSpiffeId(id)).toBe(false);
    expect(trustDomainOf(id)).toBeUndefined();
  });

  it('rejects non-strings', () => {
    for (const v of [undefined, null, 1, {}, ['spiffe://td/a']]) expect(isSpiffeId(v)).toBe(false);
  });
});

describe('parseChain', () => {
  it('returns the actors, current first', () => {
    expect(parseChain(chainOf([CALLER, PRIOR]), POLICY)).toEqual({ actors: [CALLER, PRIOR] });
    expect(parseChain({ sub: CALLER }, POLICY)).toEqual({ actors: [CALLER] });
  });

  it.each([1, 2, 4, 7])('allows exactly max_chain_depth=%i actors and denies one more', (max) => {
    const p = policy({ maxChainDepth: max });
    expect(parseChain(chainOf(actors(max)), p)).toEqual({ actors: actors(max) });
    expect(parseChain(chainOf(actors(max + 1)), p)).toMatchObject({ allow: false, reason: 'chain_too_deep', status: 403 });
  });

  it('counts prior actors in the depth', () => {
    expect(parseChain(chainOf(actors(5)), POLICY)).toMatchObject({ reason: 'chain_too_deep' });
  });

  const invalid: Array<[string, unknown]> = [
    ['top-level not an object', 'spiffe://prod.example.org/a'],
    ['nested act a string', { sub: CALLER, act: PRIOR }],
    ['nested act null', { sub: CALLER, act: null }],
    ['nested act an array', { sub: CALLER, act: [{ sub: PRIOR }] }],
    ['nested act a number', { sub: CALLER, act: 1 }],
    ['nested act an array carrying a sub property', { sub: CALLER, act: Object.assign([], { sub: PRIOR }) }],
    ['nested act without sub', { sub: CALLER, act: {} }],
    ['nested act with empty sub', { sub: CALLER, act: { sub: '' } }],
    ['nested act with numeric sub', { sub: CALLER, act: { sub: 7 } }],
    ['nested act with sub array', { sub: CALLER, act: { sub: [PRIOR] } }],
    ['current actor not a SPIFFE ID', { sub: 'orders' }],
    ['prior actor not a SPIFFE ID', chainOf([CALLER, 'user:alice'])],
    ['foreign trust domain', chainOf([CALLER, 'spiffe://staging.example.org/ns/web/sa/frontend'])],
    ['suffix-extended trust domain', chainOf([CALLER, 'spiffe://prod.example.org.evil.com/ns/web/sa/x'])],
    ['sub-domain of the trusted domain', chainOf(['spiffe://evil.prod.example.org/ns/web/sa/x'])],
    ['upper-case trust domain', chainOf([CALLER, 'spiffe://PROD.EXAMPLE.ORG/ns/web/sa/frontend'])],
    ['Cyrillic look-alike trust domain', chainOf(['spiffe://prod.ex\u0430mple.org/ns/orders/sa/orders'])],
    ['cycle of two', chainOf([CALLER, CALLER])],
    ['cycle via a prior actor', chainOf([CALLER, PRIOR, CALLER])],
    ['cycle among prior actors', chainOf([CALLER, PRIOR, 'spiffe://prod.example.org/x', PRIOR])],
    // chain_invalid is reported before chain_too_deep
    ['bad actor beyond max depth', chainOf([...actors(6), 'spiffe://evil.com/x'])],
    ['cycle beyond max depth', chainOf([...actors(6), actors(1)[0]])],
    ['bad actor at level 60', chainOf([...actors(59), 'nope'])],
  ];
  it.each(invalid)('%s -> chain_invalid', (_, act) => {
    expect(parseChain(act, POLICY)).toMatchObject({ allow: false, reason: 'chain_invalid', status: 403 });
  });

  it('requires an exact trust domain match among several', () => {
    const p = policy({ trustedDomains: ['prod.example.org', 'partner.example.com'] });
    expect(parseChain(chainOf([CALLER, 'spiffe://partner.example.com/x']), p)).toEqual({
      actors: [CALLER, 'spiffe://partner.example.com/x'],
    });
    expect(parseChain(chainOf([CALLER, 'spiffe://example.com/x']), p)).toMatchObject({ reason: 'chain_invalid' });
  });

  it('stops walking at a hard cap: a very long chain is too deep without being walked to the end', () => {
    // Level 100 is bad, but beyond the walk cap: the chain is already certainly too deep.
    expect(parseChain(chainOf([...actors(99), 'nope']), POLICY)).toMatchObject({ reason: 'chain_too_deep' });
    expect(parseChain(chainOf(actors(10_000)), POLICY)).toMatchObject({ reason: 'chain_too_deep' });
  });

  it('judges a configured depth above the hard cap exactly', () => {
    const p = policy({ maxChainDepth: 100 });
    expect(parseChain(chainOf(actors(100)), p)).toEqual({ actors: actors(100) });
    expect(parseChain(chainOf(actors(101)), p)).toMatchObject({ reason: 'chain_too_deep' });
  });

  it('ignores inherited properties', () => {
    const inherited = Object.create({ sub: CALLER }) as object;
    expect(parseChain(inherited, POLICY)).toMatchObject({ reason: 'chain_invalid' });
  });
});
