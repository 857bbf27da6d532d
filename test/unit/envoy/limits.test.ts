import { describe, expect, it } from 'vitest';
import type { CheckRequestMsg } from '../../../src/envoy/proto.js';
import { headerCount } from '../../../src/envoy/request.js';

const msg = (http: unknown): CheckRequestMsg => ({ attributes: { request: { http: http as never } } });
const headers = (n: number) => Object.fromEntries(Array.from({ length: n }, (_v, i) => [`h${i}`, 'v']));
const entries = (n: number) => ({ headers: Array.from({ length: n }, (_v, i) => ({ key: `h${i}`, raw_value: Buffer.from('v') })) });

describe('headerCount (limits.max_headers)', () => {
  it.each([
    ['no http', msg(undefined), 0],
    ['headers only', msg({ headers: headers(7) }), 7],
    ['header_map only', msg({ header_map: entries(5) }), 5],
    ['both add up', msg({ headers: headers(3), header_map: entries(4) }), 7],
    ['odd shapes count as zero', msg({ headers: 'x', header_map: { headers: 'y' } }), 0],
    ['null message', null as unknown as CheckRequestMsg, 0],
  ])('%s', (_name, m, n) => {
    expect(headerCount(m, 1000)).toBe(n);
  });

  it('stops counting a huge headers map just past the limit', () => {
    expect(headerCount(msg({ headers: headers(50_000) }), 10)).toBe(11);
  });

  it('ignores inherited keys', () => {
    const h = Object.create({ inherited: 'x' }) as Record<string, string>;
    h['own'] = 'v';
    expect(headerCount(msg({ headers: h }), 10)).toBe(1);
  });
});
