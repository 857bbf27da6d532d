import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadStsConfigFile, parseStsConfig } from '../../../src/config/load.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/sts.yaml', import.meta.url));

const BASE = `
listen: { https: 127.0.0.1:8443 }
issuer: https://sts.example.org
tls: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.crt }
signing: { keys_dir: keys }
delegation: { trusted_domains: [prod.example.org] }
`;
const IDP = `
subject_issuers:
  - issuer: https://idp.example.org
    jwks_uri: https://idp.example.org/jwks
    audience: https://api.example.org
    actors: [spiffe://prod.example.org/ns/edge/sa/gateway]
    grants:
      - when: { scope: orders:write }
        grant: { type: hop, locations: [spiffe://prod.example.org/ns/shop/sa/orders], actions: [POST], paths: [/v1/orders] }
`;

function parse(yaml: string) {
  return parseStsConfig(yaml, { env: {}, baseDir: '/etc/sts' });
}
function errors(yaml: string): Array<[string, string]> {
  const r = parse(yaml);
  if (r.ok) throw new Error('expected errors');
  return r.errors.map((e) => [e.key, e.message]);
}

describe('sts config', () => {
  it('examples/sts.yaml is valid and says what SPEC §7 says', async () => {
    const r = await loadStsConfigFile(EXAMPLE, {});
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const c = r.config;
    expect(c.listen).toEqual({ https: '0.0.0.0:8443', admin: '0.0.0.0:9465' });
    expect(c.signing).toEqual({ keys_dir: '/etc/hopguard-sts/keys', publish_ahead: 600_000 });
    expect(c.token).toEqual({ lifetime: 60_000, bind_certificate: true, clock_skew: 10_000, max_bytes: 8192 });
    expect(c.subject_issuers[0]).toMatchObject({
      discovery: true,
      algorithms: ['RS256', 'ES256'],
      typ: ['at+jwt', 'JWT'],
      audience: 'https://api.example.org',
      max_lifetime: 3_600_000,
    });
    expect(c.subject_issuers[0]?.grants[0]?.when).toEqual({ scope: ['orders:write'] });
  });

  it('defaults; relative files resolve against the config directory', () => {
    const r = parse(BASE + IDP);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.listen.admin).toBe('127.0.0.1:9465');
    expect(r.config.tls).toEqual({ cert_file: '/etc/sts/tls.crt', key_file: '/etc/sts/tls.key', client_ca_file: '/etc/sts/ca.crt' });
    expect(r.config.signing).toEqual({ keys_dir: '/etc/sts/keys', publish_ahead: 600_000 });
    expect(r.config.trust_forwarded_client_cert).toBe(false);
    expect(r.config.delegation).toEqual({ trusted_domains: ['prod.example.org'], max_chain_depth: 4, grant_type: 'hop' });
    expect(r.config.events.sinks).toEqual(['stdout']);
  });

  it('listen.http on loopback with trust_forwarded_client_cert', () => {
    const r = parse(`listen: { http: 127.0.0.1:8080 }
issuer: https://sts.example.org
trust_forwarded_client_cert: true
signing: { keys_dir: /k }
delegation: { trusted_domains: [prod.example.org] }`);
    expect(r.ok).toBe(true);
  });

  const bad: Array<[string, string, string, RegExp]> = [
    ['a typo names the key and suggests', BASE + 'tokn: {}', 'tokn', /unknown key \(did you mean token\?\)/],
    ['issuer over http', BASE.replace('https://sts.example.org', 'http://sts.example.org'), 'issuer', /https/],
    ['no listener', BASE.replace('listen: { https: 127.0.0.1:8443 }', ''), 'listen', /listen.https/],
    ['https without tls', BASE.replace(/tls: .*\n/, ''), 'tls', /required with listen.https/],
    [
      'http on a non-loopback address',
      `listen: { http: 0.0.0.0:8080 }\nissuer: https://s.example\ntrust_forwarded_client_cert: true\nsigning: { keys_dir: /k }\ndelegation: { trusted_domains: [a.b] }`,
      'listen.http',
      /loopback/,
    ],
    [
      'http without trust_forwarded_client_cert',
      `listen: { http: 127.0.0.1:8080 }\nissuer: https://s.example\nsigning: { keys_dir: /k }\ndelegation: { trusted_domains: [a.b] }`,
      'listen.http',
      /trust_forwarded_client_cert/,
    ],
    ['XFCC trusted on the TLS listener', BASE + 'trust_forwarded_client_cert: true', 'trust_forwarded_client_cert', /listen.http/],
    ['lifetime in fractions of a second', BASE + 'token: { lifetime: 1500ms }', 'token.lifetime', /whole seconds/],
    ['lifetime too long', BASE + 'token: { lifetime: 2h }', 'token.lifetime', /at most 3600s/],
    ['no keys_dir', BASE.replace('signing: { keys_dir: keys }', 'signing: {}'), 'signing.keys_dir', /required/],
    ['subject issuer is the STS', BASE + IDP.replace('https://idp.example.org\n', 'https://sts.example.org\n'), 'subject_issuers[0].issuer', /STS itself/],
    ['subject issuer without audience', BASE + IDP.replace('    audience: https://api.example.org\n', ''), 'subject_issuers[0].audience', /required/],
    ['subject issuer without keys', BASE + IDP.replace('    jwks_uri: https://idp.example.org/jwks\n', ''), 'subject_issuers[0]', /jwks_uri, jwks_file or discovery/],
    ['actor not a SPIFFE ID', BASE + IDP.replace('[spiffe://prod.example.org/ns/edge/sa/gateway]', '[gateway]'), 'subject_issuers[0].actors[0]', /SPIFFE ID/],
    ['actor outside trusted_domains', BASE + IDP.replace('[spiffe://prod.example.org/ns/edge/sa/gateway]', '[spiffe://other.org/gw]'), 'subject_issuers[0].actors[0]', /trusted_domains/],
    ['grant of another type', BASE + IDP.replace('type: hop', 'type: admin'), 'subject_issuers[0].grants[0].grant.type', /grant_type/],
    ['grant path not canonical', BASE + IDP.replace('[/v1/orders]', '[/v1/../admin]'), 'subject_issuers[0].grants[0].grant.paths[0]', /canonical/],
    ['grant path not a pattern', BASE + IDP.replace('[/v1/orders]', '[/v1/**/x]'), 'subject_issuers[0].grants[0].grant.paths[0]', /pattern/],
    ['unknown when key', BASE + IDP.replace('{ scope: orders:write }', '{ scopes: orders:write }'), 'subject_issuers[0].grants[0].when.scopes', /did you mean scope/],
    ['ca_file with jwks_file', BASE + IDP.replace('jwks_uri: https://idp.example.org/jwks', 'jwks_file: j.json\n    ca_file: ca.pem'), 'subject_issuers[0].ca_file', /fetched keys/],
  ];
  it.each(bad)('%s', (_name, yaml, key, message) => {
    const errs = errors(yaml);
    expect(errs.some(([k, m]) => k === key && message.test(m)), JSON.stringify(errs)).toBe(true);
  });
});
