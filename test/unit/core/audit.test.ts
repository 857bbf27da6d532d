import { describe, expect, it } from 'vitest';
import { auditFromPayload } from '../../../src/core/audit.js';
import { actors, CALLER, chainOf, payload, PRIOR, USER } from '../../helpers/core.js';

describe('auditFromPayload', () => {
  it('extracts sub, actors (current first), jti, txn', () => {
    expect(auditFromPayload(payload())).toEqual({ sub: USER, actors: [CALLER, PRIOR], jti: 'jti-1', txn: 'txn-1' });
  });

  it('keeps only strings', () => {
    expect(auditFromPayload({ sub: 1, jti: null, txn: {}, act: { sub: 2 } })).toEqual({});
    expect(auditFromPayload({ sub: 'a', act: { sub: CALLER, act: { sub: 7, act: { sub: PRIOR } } } })).toEqual({
      sub: 'a',
      actors: [CALLER],
    });
  });

  it('caps the actors it reports', () => {
    expect(auditFromPayload({ act: chainOf(actors(1000)) }).actors).toEqual(actors(16));
  });

  it('survives a self-referential chain', () => {
    const act: Record<string, unknown> = { sub: CALLER };
    act['act'] = act;
    expect(auditFromPayload({ act }).actors).toHaveLength(16);
  });

  it.each([null, undefined, 1, 'x', [], [payload()], { act: [] }, { act: 'x' }, { act: null }])('%j yields no facts', (p) => {
    expect(auditFromPayload(p)).toEqual({});
  });

  it('does not read inherited properties', () => {
    expect(auditFromPayload(Object.create({ sub: USER, jti: 'j' }))).toEqual({});
  });

  it('never throws, even on a throwing proxy', () => {
    const hostile = new Proxy(
      {},
      {
        getOwnPropertyDescriptor() {
          throw new Error('boom');
        },
        get() {
          throw new Error('boom');
        },
      },
    );
    expect(() => auditFromPayload(hostile)).not.toThrow();
    expect(() => auditFromPayload({ sub: 's', act: hostile })).not.toThrow();
    expect(auditFromPayload({ sub: 's', act: hostile })).toEqual({ sub: 's' });
  });
});
