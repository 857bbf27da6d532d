import { stringify } from 'yaml';
import { parseConfig, type ConfigResult } from '../../src/config/load.js';

/** The smallest valid config: everything else comes from defaults. */
export const MINIMAL_YAML = `
workload:
  id: spiffe://prod.example.org/ns/payments/sa/ledger
issuers:
  - issuer: https://sts.prod.example.org
    jwks_uri: https://sts.prod.example.org/jwks.json
delegation:
  trusted_domains: [prod.example.org]
`;

export type Raw = any;

export function minimalObject(): Raw {
  return {
    workload: { id: 'spiffe://prod.example.org/ns/payments/sa/ledger' },
    issuers: [{ issuer: 'https://sts.prod.example.org', jwks_uri: 'https://sts.prod.example.org/jwks.json' }],
    delegation: { trusted_domains: ['prod.example.org'] },
  };
}

/** YAML for the minimal config after `patch` edits a fresh copy of it. */
export function patched(patch: (c: Raw) => void): string {
  const c = minimalObject();
  patch(c);
  return stringify(c);
}

export function parse(text: string, env: Record<string, string | undefined> = {}): ConfigResult {
  return parseConfig(text, { env, source: 'config.yaml' });
}

export function keysOf(r: ConfigResult): string[] {
  return r.ok ? [] : r.errors.map((e) => e.key).sort();
}
