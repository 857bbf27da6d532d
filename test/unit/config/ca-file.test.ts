import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { keySourceLocation } from '../../../src/config/reload.js';

const yaml = (issuer: string) => `
workload: { id: spiffe://prod.example.org/ns/a/sa/b }
issuers:
${issuer}
delegation: { trusted_domains: [prod.example.org] }
`;

describe('issuers[].ca_file', () => {
  it('resolves against the config directory; is part of the key location', () => {
    const r = parseConfig(yaml('  - { issuer: https://sts.example.org, discovery: true, ca_file: mesh-ca.pem }'), { env: {}, baseDir: '/etc/hopguard' });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const i = r.config.issuers[0];
    expect(i?.ca_file).toBe('/etc/hopguard/mesh-ca.pem');
    expect(keySourceLocation(i as never)).not.toBe(keySourceLocation({ ...(i as object), ca_file: undefined } as never));
  });

  it('with jwks_file: an error naming the key', () => {
    const r = parseConfig(yaml('  - { issuer: https://sts.example.org, jwks_file: j.json, ca_file: ca.pem }'), { env: {} });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toContainEqual({ key: 'issuers[0].ca_file', message: expect.stringContaining('jwks_uri or discovery') });
  });

  it('empty: an error naming the key', () => {
    const r = parseConfig(yaml('  - { issuer: https://sts.example.org, jwks_uri: https://sts.example.org/jwks.json, ca_file: "" }'), { env: {} });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.key)).toContain('issuers[0].ca_file');
  });
});
