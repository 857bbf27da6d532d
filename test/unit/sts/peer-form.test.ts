import { describe, expect, it } from 'vitest';
import { isFormContentType, parseForm } from '../../../src/sts/form.js';
import { callerFromCertificate, callerFromXfcc, parseXfcc, sanEntries } from '../../../src/sts/peer.js';
import { X509Certificate } from 'node:crypto';
import { createPki } from '../../../src/lib/dev-pki.js';

const TD = ['prod.example.org'];
const ORDERS = 'spiffe://prod.example.org/ns/shop/sa/orders';
const HASH = '0f'.repeat(32);

describe('parseForm', () => {
  it.each([
    ['a=1&b=2', { a: '1', b: '2' }],
    ['', {}],
    ['a=1&&b=', { a: '1', b: '' }],
    ['a', { a: '' }],
    ['a+b=c+d%20e', { 'a b': 'c d e' }],
    ['t=caf%C3%A9', { t: 'café' }],
    ['x=%3D%26', { x: '=&' }],
  ])('%j', (body, want) => {
    const r = parseForm(body);
    expect(r.ok && Object.fromEntries(r.params)).toEqual(want);
  });

  it.each([
    ['a=1&a=2', 'appears more than once'],
    ['a=1&b=2&a=', 'appears more than once'],
    ['a%3D=1&a%3d=2', 'appears more than once'], // the same name, escaped differently
    ['a=%zz', 'percent-escape'],
    ['a=%4', 'percent-escape'],
    ['a=%C3', 'UTF-8'],
    ['a=%C0%AE', 'UTF-8'],
    ['a=\u00e9', 'UTF-8'],
  ])('%j is refused', (body, problem) => {
    const r = parseForm(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toContain(problem);
  });

  it.each([
    ['application/x-www-form-urlencoded', true],
    ['Application/X-WWW-Form-Urlencoded; charset=UTF-8', true],
    ['application/x-www-form-urlencoded;charset="utf-8"', true],
    ['application/x-www-form-urlencoded; charset=iso-8859-1', false],
    ['application/json', false],
    ['multipart/form-data; boundary=x', false],
    [undefined, false],
  ])('content type %j: %s', (ct, ok) => {
    expect(isFormContentType(ct)).toBe(ok);
  });
});

describe('sanEntries (Node subjectAltName text)', () => {
  it('plain and quoted entries; a quoted value never splits into two', () => {
    expect(sanEntries('URI:spiffe://a/b, DNS:x.example')).toEqual([
      { type: 'URI', value: 'spiffe://a/b' },
      { type: 'DNS', value: 'x.example' },
    ]);
    expect(sanEntries('URI:"spiffe://a/b, URI:spiffe://evil/x"')).toEqual([{ type: 'URI', value: 'spiffe://a/b, URI:spiffe://evil/x' }]);
    expect(sanEntries('')).toEqual([]);
    expect(sanEntries('garbage')).toBeUndefined();
  });
});

describe('callerFromCertificate', () => {
  const pki = createPki('unit', { shareLeafKey: true });
  const der = (pem: string) => new Uint8Array(new X509Certificate(pem).raw);
  it('the single URI SAN, with the certificate thumbprint', () => {
    const c = pki.issue({ uris: [ORDERS], dns: ['orders.svc'] });
    const r = callerFromCertificate(der(c.certPem), TD);
    expect(r).toMatchObject({ ok: true, caller: { id: ORDERS } });
    expect(r.ok && r.caller.x5t).toMatch(/^[\w-]{43}$/);
  });
  it.each([
    ['no URI SAN', { dns: ['x'] }, 'no URI SAN'],
    ['two URI SANs', { uris: [ORDERS, 'spiffe://prod.example.org/x'] }, 'more than one'],
    ['not a SPIFFE ID', { uris: ['https://orders.example'] }, 'not a SPIFFE ID'],
    ['a foreign trust domain', { uris: ['spiffe://other.org/x'] }, 'trust domain'],
  ])('%s', (_n, req, problem) => {
    const r = callerFromCertificate(der(pki.issue(req).certPem), TD);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toContain(problem);
  });
  it('nothing or garbage', () => {
    expect(callerFromCertificate(undefined, TD).ok).toBe(false);
    expect(callerFromCertificate(new Uint8Array([1, 2, 3]), TD).ok).toBe(false);
  });
});

describe('x-forwarded-client-cert', () => {
  it('parses elements, pairs and quoted values', () => {
    expect(parseXfcc(`By=spiffe://a/b;Hash=${HASH};Subject="CN=x,O=y";URI=${ORDERS}`)).toEqual([
      [
        ['by', 'spiffe://a/b'],
        ['hash', HASH],
        ['subject', 'CN=x,O=y'],
        ['uri', ORDERS],
      ],
    ]);
    expect(parseXfcc('URI=a,URI=b')).toHaveLength(2);
    expect(parseXfcc('URI="unterminated')).toBeUndefined();
    expect(parseXfcc('novalue')).toBeUndefined();
  });

  it('the caller from one element: URI= and Hash= (as x5t#S256)', () => {
    const r = callerFromXfcc(`Hash=${HASH};URI=${ORDERS}`, TD, true);
    expect(r).toEqual({ ok: true, caller: { id: ORDERS, x5t: Buffer.from(HASH, 'hex').toString('base64url') } });
    expect(callerFromXfcc(`uri=${ORDERS}`, TD, false)).toEqual({ ok: true, caller: { id: ORDERS } });
  });

  it.each([
    [undefined, 'no x-forwarded-client-cert'],
    ['', 'no x-forwarded-client-cert'],
    [`Hash=${HASH};URI=${ORDERS},Hash=${HASH};URI=${ORDERS}`, 'exactly one element'],
    [`Hash=${HASH}`, 'no URI SAN'],
    [`Hash=${HASH};URI=${ORDERS};URI=${ORDERS}`, 'more than one URI'],
    [`URI=${ORDERS}`, 'no Hash'],
    [`Hash=${HASH};Hash=${HASH};URI=${ORDERS}`, 'more than one Hash'],
    [`Hash=xyz;URI=${ORDERS}`, 'not a hex SHA-256'],
    [`Hash=${HASH};URI="${ORDERS},URI=x"`, 'not a SPIFFE ID'],
    [`Hash=${HASH};URI=spiffe://evil.org/x`, 'trust domain'],
  ])('%j is refused', (h, problem) => {
    const r = callerFromXfcc(h, TD, true);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toContain(problem);
  });
});
