import { describe, expect, it } from 'vitest';
import { ALLOWED_HEADER_PARAMS, isParseFailure, parseCompact, type ParsedJws } from '../../../src/token/jws.js';
import { b64url } from '../../helpers/tokens.js';

const H = b64url('{"alg":"ES256","typ":"delegation+jwt","kid":"k1"}');
const P = b64url('{"iss":"https://sts.example.org","n":1}');
const S = b64url(new Uint8Array([1, 2, 3, 4]));

function ok(token: string): ParsedJws {
  const r = parseCompact(token);
  if (isParseFailure(r)) throw new Error(`unexpected failure: ${r.detail}`);
  return r;
}

describe('parseCompact', () => {
  it('splits, decodes and exposes exactly the signed bytes', () => {
    const r = ok(`${H}.${P}.${S}`);
    expect(r.header).toEqual({ alg: 'ES256', typ: 'delegation+jwt', kid: 'k1' });
    expect(r.payload).toEqual({ iss: 'https://sts.example.org', n: 1 });
    expect(Buffer.from(r.signingInput).toString('latin1')).toBe(`${H}.${P}`);
    expect([...r.signature]).toEqual([1, 2, 3, 4]);
  });

  it('allows an empty signature segment (the alg check decides)', () => {
    expect(ok(`${H}.${P}.`).signature).toHaveLength(0);
  });

  it('allows only alg, typ, kid', () => {
    expect([...ALLOWED_HEADER_PARAMS].sort()).toEqual(['alg', 'kid', 'typ']);
  });

  it.each([
    ['one segment', H],
    ['two segments', `${H}.${P}`],
    ['four segments', `${H}.${P}.${S}.${S}`],
    ['five segments', `${H}.${P}.${S}.${S}.${S}`],
    ['empty header', `.${P}.${S}`],
    ['empty payload', `${H}..${S}`],
    ['padded header', `${H}==.${P}.${S}`],
    ['padded signature', `${H}.${P}.${S}=`],
    ['space', `${H}.${P} .${S}`],
    ['header not JSON', `${b64url('alg')}.${P}.${S}`],
    ['header JSON array', `${b64url('[]')}.${P}.${S}`],
    ['header JSON null', `${b64url('null')}.${P}.${S}`],
    ['payload JSON number', `${H}.${b64url('1')}.${S}`],
    ['duplicate header key', `${b64url('{"alg":"ES256","alg":"ES256"}')}.${P}.${S}`],
    ['duplicate payload key', `${H}.${b64url('{"iss":"a","iss":"a"}')}.${S}`],
  ])('malformed: %s', (_name, token) => {
    const r = parseCompact(token);
    expect(isParseFailure(r) && r.reason).toBe('malformed_token');
  });

  it.each(['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit', 'b64', 'cty', 'zip', 'enc', 'epk', 'nonce', 'url', 'ALG', 'Kid', '__proto__', 'constructor', ''])(
    'forbidden_header: %s',
    (name) => {
      const header = `{"alg":"ES256","typ":"delegation+jwt","kid":"k1",${JSON.stringify(name)}:1}`;
      const r = parseCompact(`${b64url(header)}.${P}.${S}`);
      expect(isParseFailure(r) && r.reason).toBe('forbidden_header');
      if (isParseFailure(r)) {
        expect(r.iss).toBe('https://sts.example.org');
        expect(r.kid).toBe('k1');
      }
    },
  );

  it('a header with no members at all parses (the verifier then refuses the alg)', () => {
    expect(ok(`${b64url('{}')}.${P}.${S}`).header).toEqual({});
  });

  it('names registered parameters in detail but never echoes an unknown (attacker-chosen) name', () => {
    const named = parseCompact(`${b64url('{"alg":"ES256","jku":"https://x"}')}.${P}.${S}`);
    expect(isParseFailure(named) && named.detail).toBe('header parameter "jku" is not allowed');
    const header = `{"alg":"ES256",${JSON.stringify('<script>' + 'x'.repeat(5000))}:1}`;
    const r = parseCompact(`${b64url(header)}.${P}.${S}`);
    expect(isParseFailure(r) && r.detail).toBe('an unknown header parameter is not allowed');
  });
});
