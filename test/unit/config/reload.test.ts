/** Config reload helpers and the discovery / max_stale schema rules. */
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  diffIssuers,
  keySourceLocation,
  restartRequiredChanges,
  sameConfig,
} from '../../../src/config/reload.js';
import type { HopguardConfig } from '../../../src/config/types.js';
import { keysOf, parse, patched } from '../../helpers/config.js';

function config(patch: (c: any) => void = () => {}): HopguardConfig {
  const r = parse(patched(patch));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

describe('restartRequiredChanges', () => {
  it.each([
    ['nothing', () => {}, []],
    ['a new issuer', (c: any) => c.issuers.push({ issuer: 'https://b', jwks_uri: 'https://b/jwks' }), []],
    ['mode and log level', (c: any) => ((c.mode = 'dry-run'), (c.log = { level: 'debug' })), []],
    ['listen.grpc', (c: any) => (c.listen = { grpc: '127.0.0.1:1' }), ['listen.grpc']],
    ['listen.admin', (c: any) => (c.listen = { admin: '0.0.0.0:9464' }), ['listen.admin']],
    ['events', (c: any) => (c.events = { sample_allow: 0.5 }), ['events']],
    ['replay.max_entries', (c: any) => (c.replay = { max_entries: 5 }), ['replay.max_entries']],
    ['replay.enabled only', (c: any) => (c.replay = { enabled: true }), []],
    ['replay.store memory → redis', (c: any) => (c.replay = { store: 'redis', redis: { url: 'redis://r' } }), ['replay.store', 'replay.redis.url']],
    ['replay.redis.* while the store is memory', (c: any) => (c.replay = { redis: { url: 'redis://r', key_prefix: 'x:' } }), []],
    ['audit.signing_key_file', (c: any) => (c.audit = { signing_key_file: '/etc/hopguard/k2.jwk' }), ['audit.signing_key_file']],
    ['audit timings (applied live)', (c: any) => (c.audit = { checkpoint_interval: '1m', sync_timeout: '2s' }), []],
  ])('%s', (_n, patch, want) => {
    expect(restartRequiredChanges(config(), config(patch))).toEqual(want);
  });

  const REDIS = (redis: object = {}) => (c: any) => (c.replay = { store: 'redis', redis: { url: 'rediss://:a@r:6380/0', ...redis } });
  it.each([
    ['the per-command timeout applies in place', { timeout: '20ms' }, []],
    ['another url (another store, or new credentials)', { url: 'rediss://:b@r:6380/0' }, ['replay.redis.url']],
    ['key_prefix (another key space)', { key_prefix: 'y:' }, ['replay.redis.key_prefix']],
    ['TLS files', { ca_file: '/ca.pem', cert_file: '/c.pem', key_file: '/k.pem' }, ['replay.redis.ca_file', 'replay.redis.cert_file', 'replay.redis.key_file']],
  ])('redis store: %s', (_n, redis, want) => {
    expect(restartRequiredChanges(config(REDIS()), config(REDIS(redis)))).toEqual(want);
  });

  it('redis → memory needs a restart too', () => {
    expect(restartRequiredChanges(config(REDIS()), config())).toEqual(['replay.store', 'replay.redis.url']);
  });
});

describe('keySourceLocation / diffIssuers', () => {
  it('tuning does not change the location; uri, file, discovery and allow_insecure_http do', () => {
    const base = config().issuers[0]!;
    const tuned = config((c) => Object.assign(c.issuers[0], { cooldown: '1s', refresh_interval: '1m', max_stale: '2h', fetch_timeout: '1s', max_jwks_bytes: 10, algorithms: ['ES256'] })).issuers[0]!;
    expect(keySourceLocation(tuned)).toBe(keySourceLocation(base));
    const moved = config((c) => (c.issuers[0].jwks_uri = 'https://sts.prod.example.org/v2/jwks.json')).issuers[0]!;
    expect(keySourceLocation(moved)).not.toBe(keySourceLocation(base));
    const disc = config((c) => (c.issuers[0] = { issuer: 'https://sts.prod.example.org', discovery: true })).issuers[0]!;
    expect(keySourceLocation(disc)).not.toBe(keySourceLocation(base));
  });

  it('classifies issuers as added, removed, kept, replaced', () => {
    const old = config((c) =>
      c.issuers.push({ issuer: 'https://b', jwks_uri: 'https://b/jwks' }, { issuer: 'https://c', jwks_uri: 'https://c/jwks' }),
    );
    const next = config((c) => {
      c.issuers[0].cooldown = '5s';
      c.issuers.push({ issuer: 'https://c', jwks_uri: 'https://c/other' }, { issuer: 'https://d', jwks_file: '/d.json' });
    });
    expect(diffIssuers(old.issuers, next.issuers)).toEqual({
      added: ['https://d'],
      removed: ['https://b'],
      kept: ['https://sts.prod.example.org'],
      replaced: ['https://c'],
    });
  });
});

describe('sameConfig / canonicalJson', () => {
  it('ignores key order and undefined members', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: undefined, c: 'x' }] })).toBe('{"a":[1,{"c":"x"}],"b":1}');
    expect(sameConfig(config(), config())).toBe(true);
    expect(sameConfig(config(), config((c) => (c.mode = 'dry-run')))).toBe(false);
  });
});

describe('schema: discovery and max_stale', () => {
  it('accepts discovery: true instead of jwks_uri / jwks_file', () => {
    const r = parse(patched((c) => (c.issuers[0] = { issuer: 'https://sts.prod.example.org', discovery: true })));
    const i = r.ok ? r.config.issuers[0] : undefined;
    expect(i?.discovery).toBe(true);
    expect([i?.jwks_uri, i?.jwks_file]).toEqual([undefined, undefined]);
  });

  it('leaves discovery absent when not given, and discovery: false with a jwks_uri is fine', () => {
    const r = parse(patched(() => {}));
    expect(r.ok && 'discovery' in r.config.issuers[0]!).toBe(false);
    expect(parse(patched((c) => (c.issuers[0].discovery = false))).ok).toBe(true);
  });

  it.each([
    ['discovery with jwks_uri', (c: any) => (c.issuers[0].discovery = true), ['issuers[0]'], /exactly one of jwks_uri, jwks_file or discovery: true/],
    ['discovery: false alone', (c: any) => (c.issuers[0] = { issuer: 'https://a', discovery: false }), ['issuers[0]'], /one of jwks_uri, jwks_file or discovery: true is required/],
    ['discovery for a non-URL issuer', (c: any) => (c.issuers[0] = { issuer: 'sts', discovery: true }), ['issuers[0].issuer'], /must be an https URL/],
    ['discovery for an http issuer', (c: any) => (c.issuers[0] = { issuer: 'http://sts', discovery: true }), ['issuers[0].issuer'], /must be https/],
    ['discovery for an issuer with a query', (c: any) => (c.issuers[0] = { issuer: 'https://sts/?a=1', discovery: true }), ['issuers[0].issuer'], /query/],
    ['discovery not a boolean', (c: any) => (c.issuers[0].discovery = 'yes'), ['issuers[0].discovery'], /true or false/],
    ['max_stale below refresh_interval', (c: any) => Object.assign(c.issuers[0], { refresh_interval: '10m', max_stale: '5m' }), ['issuers[0].max_stale'], /at least refresh_interval/],
  ])('rejects %s', (_n, patch, keys, message) => {
    const r = parse(patched(patch));
    expect(keysOf(r)).toEqual(keys);
    expect(!r.ok && r.errors[0]?.message).toMatch(message);
  });

  it('accepts an http discovery issuer with allow_insecure_http, and max_stale below refresh_interval for a jwks_file', () => {
    expect(parse(patched((c) => (c.issuers[0] = { issuer: 'http://127.0.0.1:8080', discovery: true, allow_insecure_http: true }))).ok).toBe(true);
    expect(
      parse(patched((c) => (c.issuers[0] = { issuer: 'i', jwks_file: '/k.json', refresh_interval: '10m', max_stale: '1m' }))).ok,
    ).toBe(true);
    expect(parse(patched((c) => Object.assign(c.issuers[0], { refresh_interval: '10m', max_stale: '10m' }))).ok).toBe(true);
  });
});
