/**
 * EngineHost: atomic config swaps, in-flight Checks finishing on the engine they started
 * with, key sources reused (not refetched) across reloads and closed only once drained,
 * rejected versions, settings that need a restart, and latched key readiness.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { buildEngine } from '../../../src/runtime/engine.js';
import { EngineHost, type ReloadOutcome } from '../../../src/runtime/engine-host.js';
import type { HopguardConfig, IssuerConfig } from '../../../src/config/types.js';
import { parseConfig } from '../../../src/config/load.js';
import type { HopRequest } from '../../../src/core/types.js';
import { Logger } from '../../../src/telemetry/log.js';
import type { RefreshResult, SourceTuning } from '../../../src/token/key-source-results.js';
import { StaticKeySource } from '../../../src/token/sources.js';
import type { KeyLookup, KeySource } from '../../../src/token/types.js';
import { CALLER, ISSUER, jwksOf, NOW_MS, signToken, testKey, WORKLOAD, type TestKey } from '../../helpers/tokens.js';
import { hopRequest } from '../../../src/core/request.js';

const ISSUER_B = 'https://sts.b.example.org';

let kA: TestKey;
let kB: TestKey;
beforeAll(async () => {
  kA = await testKey('ES256', 'a-1');
  kB = await testKey('ES256', 'b-1');
});

class FakeSource implements KeySource {
  starts = 0;
  closed = false;
  loaded: boolean;
  readonly tunings: SourceTuning[] = [];
  gate: Promise<void> | undefined;
  private readonly inner: StaticKeySource;
  constructor(
    readonly issuer: string,
    key: TestKey,
    loaded: boolean,
    readonly onRefresh: (r: RefreshResult) => void,
  ) {
    this.inner = new StaticKeySource(jwksOf(key));
    this.loaded = loaded;
  }
  async lookup(kid: string, alg: string): Promise<KeyLookup> {
    if (this.gate) await this.gate;
    return this.loaded ? this.inner.lookup(kid, alg) : { status: 'unavailable' };
  }
  ready(): boolean {
    return this.loaded;
  }
  async start(): Promise<void> {
    this.starts++;
  }
  close(): void {
    this.closed = true;
  }
  reconfigure(t: SourceTuning): void {
    this.tunings.push(t);
  }
  succeed(): void {
    this.loaded = true;
    this.onRefresh({ ok: true, result: 'ok', trigger: 'retry', at: 0, keyCount: 1, lastSuccessAt: 0, changed: true, kids: ['x'], rejected: [] });
  }
}

function yaml(opts: { issuers?: string; mode?: string; extra?: string } = {}): string {
  return `
listen: { grpc: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
mode: ${opts.mode ?? 'enforce'}
issuers:
${opts.issuers ?? `  - { issuer: "${ISSUER}", jwks_uri: "https://a.example.org/jwks" }`}
delegation: { trusted_domains: [prod.example.org] }
${opts.extra ?? ''}`;
}
const BOTH = `  - { issuer: "${ISSUER}", jwks_uri: "https://a.example.org/jwks" }
  - { issuer: "${ISSUER_B}", jwks_uri: "https://b.example.org/jwks" }`;

function cfg(text: string): HopguardConfig {
  const r = parseConfig(text, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

function req(token: string): HopRequest {
  return hopRequest({
    method: 'POST',
    path: '/v1/ledger/entries',
    tokenFromHeaders: [token],
    tokenFromHeaderMap: [],
    caller: CALLER,
    callerCertificate: undefined,
    contextExtensions: {},
    requestId: 'r',
    traceId: '',
  });
}

function host(config: HopguardConfig, opts: { loaded?: (i: IssuerConfig) => boolean; build?: typeof buildEngine } = {}) {
  const clock = { now: () => NOW_MS };
  const created: FakeSource[] = [];
  const logs: Record<string, unknown>[] = [];
  const reloads: string[] = [];
  const refreshes: string[] = [];
  const applied: HopguardConfig[] = [];
  const logger = new Logger('info', { write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  const build = opts.build ?? buildEngine;
  const h = new EngineHost({
    config,
    logger,
    build: (c, keys, reuse) => build(c, clock, keys, reuse),
    createSource: (i, onRefresh) => {
      const s = new FakeSource(i.issuer, i.issuer === ISSUER ? kA : kB, opts.loaded?.(i) ?? true, onRefresh);
      created.push(s);
      return s;
    },
    onJwksRefresh: (issuer, r) => refreshes.push(`${issuer}:${r.result}`),
    onReload: (r) => reloads.push(r),
    onApplied: (c) => applied.push(c),
    source: 'config.yaml',
  });
  return { h, created, logs, reloads, refreshes, applied, logger };
}

describe('EngineHost: swapping configs', () => {
  it('a new issuer is accepted after a reload; its source is created and started before the swap', async () => {
    const { h, created, reloads, applied } = host(cfg(yaml()));
    await h.start();
    const tokenB = await signToken(kB, { iss: ISSUER_B });
    expect((await h.authorize(req(tokenB))).decision.reason).toBe('untrusted_issuer');

    const out = await h.applyConfig(cfg(yaml({ issuers: BOTH })));
    expect(out).toMatchObject({ result: 'applied', issuers: { added: [ISSUER_B], kept: [ISSUER], removed: [], replaced: [] } });
    expect(created.map((s) => [s.issuer, s.starts])).toEqual([
      [ISSUER, 1],
      [ISSUER_B, 1],
    ]);
    expect((await h.authorize(req(tokenB))).decision).toMatchObject({ allow: true, reason: 'granted' });
    expect((await h.authorize(req(await signToken(kA)))).decision.reason).toBe('granted');
    expect(reloads).toEqual(['applied']);
    expect(applied).toHaveLength(1);
    expect(h.engine.issuers.find((i) => i.policy.issuer === ISSUER)?.keys).toBe(created[0]); // reused, not rebuilt
  });

  it('in-flight Checks finish on the old engine; new Checks use the new one', async () => {
    const { h, created } = host(cfg(yaml({ mode: 'enforce' })));
    await h.start();
    const src = created[0] as FakeSource;
    let open!: () => void;
    src.gate = new Promise((r) => (open = r));
    const token = await signToken(kA, { aud: 'spiffe://prod.example.org/ns/other/sa/x' });
    const inflight = Array.from({ length: 20 }, () => h.authorize(req(token)));
    const out = await h.applyConfig(cfg(yaml({ mode: 'dry-run' })));
    expect(out.result).toBe('applied');
    const after = h.authorize(req(token));
    src.gate = undefined;
    open();
    for (const o of await Promise.all(inflight.map((r) => Promise.resolve(r)))) {
      expect(o.decision.reason).toBe('audience_mismatch');
      expect(o.enforced).toBe(true); // the old config: enforce
    }
    expect((await after).enforced).toBe(false); // the new config: dry-run
    expect(src.closed).toBe(false); // still used by the new engine
  });

  it('a removed issuer\'s source is closed only after the Checks using it have finished', async () => {
    const { h, created } = host(cfg(yaml({ issuers: BOTH })));
    await h.start();
    const srcB = created[1] as FakeSource;
    let open!: () => void;
    srcB.gate = new Promise((r) => (open = r));
    const pending = h.authorize(req(await signToken(kB, { iss: ISSUER_B })));
    const out = await h.applyConfig(cfg(yaml()));
    expect(out).toMatchObject({ result: 'applied', issuers: { removed: [ISSUER_B] } });
    expect(srcB.closed).toBe(false);
    open();
    expect((await pending).decision.reason).toBe('granted');
    expect(srcB.closed).toBe(true);
    expect(created[0]?.closed).toBe(false);
  });

  it('changed tuning is applied in place; a changed key location gets a new source and closes the old', async () => {
    const { h, created } = host(cfg(yaml()));
    await h.start();
    await h.applyConfig(cfg(yaml({ issuers: `  - { issuer: "${ISSUER}", jwks_uri: "https://a.example.org/jwks", cooldown: 5s }` })));
    expect(created).toHaveLength(1);
    expect(created[0]?.tunings).toEqual([expect.objectContaining({ cooldownMs: 5000 })]);
    await h.applyConfig(cfg(yaml({ issuers: `  - { issuer: "${ISSUER}", jwks_uri: "https://a.example.org/v2/jwks", cooldown: 5s }` })));
    expect(created).toHaveLength(2);
    expect(created[0]?.closed).toBe(true);
    expect(created[1]?.starts).toBe(1);
  });

  it('keeps the replay memory across reloads (a token seen before stays replayed)', async () => {
    const { h } = host(cfg(yaml({ extra: 'replay: { enabled: true }' })));
    await h.start();
    const token = await signToken(kA);
    expect((await h.authorize(req(token))).decision.reason).toBe('granted');
    const replay = h.engine.replay;
    await h.applyConfig(cfg(yaml({ extra: 'replay: { enabled: true }\nlog: { level: debug }' })));
    expect(h.engine.replay).toBe(replay);
    expect((await h.authorize(req(token))).decision.reason).toBe('replayed');
  });

  it('an identical version is unchanged: no swap, no count', async () => {
    const { h, reloads } = host(cfg(yaml()));
    const engine = h.engine;
    expect(await h.applyConfig(cfg(yaml()))).toEqual({ result: 'unchanged', restartRequired: [] });
    expect(h.engine).toBe(engine);
    expect(reloads).toEqual([]);
  });

  it('settings that need a restart are reported in a warn log and keep their running values', async () => {
    const { h, logs, reloads } = host(cfg(yaml()));
    const moved = cfg(yaml().replace('127.0.0.1:0', '127.0.0.1:7777'));
    const out = await h.applyConfig(moved);
    expect(out).toEqual({ result: 'unchanged', restartRequired: ['listen.grpc'] });
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', keys: ['listen.grpc'] }));
    expect(h.config.listen.grpc).toBe('127.0.0.1:0');
    const both = await h.applyConfig(cfg(yaml({ mode: 'dry-run' }).replace('127.0.0.1:0', '127.0.0.1:7777')));
    expect(both).toMatchObject({ result: 'applied', restartRequired: ['listen.grpc'] });
    expect(h.config.mode).toBe('dry-run');
    expect(h.config.listen.grpc).toBe('127.0.0.1:0');
    expect(reloads).toEqual(['applied']);
  });

  it('log.level applies live', async () => {
    const { h, logger } = host(cfg(yaml()));
    expect(logger.enabled('debug')).toBe(false);
    await h.applyConfig(cfg(yaml({ extra: 'log: { level: debug }' })));
    expect(logger.enabled('debug')).toBe(true);
  });

  it('reject() logs the key and counts; the running engine is untouched', async () => {
    const { h, logs, reloads } = host(cfg(yaml()));
    const engine = h.engine;
    const out = h.reject([{ key: 'issuers[1].jwks_uri', message: 'must be https' }]);
    expect(out).toEqual({ result: 'rejected', errors: [{ key: 'issuers[1].jwks_uri', message: 'must be https' }] });
    expect(reloads).toEqual(['rejected']);
    const line = logs.find((l) => l.level === 'error');
    expect(line?.msg).toContain('config.yaml: issuers[1].jwks_uri: must be https');
    expect(line?.key).toBe('issuers[1].jwks_uri');
    expect(h.engine).toBe(engine);
  });

  it('a version whose engine cannot be built is rejected; its new sources are closed; the old one serves', async () => {
    let calls = 0;
    const failing: typeof buildEngine = (...args) => {
      if (++calls > 1) throw new Error('boom');
      return buildEngine(...args);
    };
    const { h, created, reloads } = host(cfg(yaml()), { build: failing });
    await h.start();
    const out: ReloadOutcome = await h.applyConfig(cfg(yaml({ issuers: BOTH })));
    expect(out).toMatchObject({ result: 'rejected', errors: [{ key: '(config)', message: expect.stringContaining('boom') }] });
    expect(created[1]?.closed).toBe(true);
    expect(created[1]?.starts).toBe(0);
    expect(reloads).toEqual(['rejected']);
    expect((await h.authorize(req(await signToken(kA)))).decision.reason).toBe('granted');
  });

  it('reloads are applied one at a time, in order', async () => {
    const { h } = host(cfg(yaml()));
    const outs = await Promise.all([
      h.applyConfig(cfg(yaml({ mode: 'dry-run' }))),
      h.applyConfig(cfg(yaml({ mode: 'enforce' }))),
      h.applyConfig(cfg(yaml({ mode: 'dry-run' }))),
    ]);
    expect(outs.map((o) => o.result)).toEqual(['applied', 'applied', 'applied']);
    expect(h.config.mode).toBe('dry-run');
  });
});

describe('EngineHost: readiness from keys', () => {
  it('not ready until every issuer has loaded once; then latched, even across a reload adding an unloaded issuer', async () => {
    const { h, created } = host(cfg(yaml({ issuers: BOTH })), { loaded: (i) => i.issuer === ISSUER });
    const changes: boolean[] = [];
    h.onReadyChange((r) => changes.push(r));
    await h.start();
    expect(h.ready()).toBe(false);
    expect(h.issuersWithoutKeys()).toEqual([ISSUER_B]);
    expect(h.keyReadiness().map((v) => [v.issuer, v.ready()])).toEqual([
      [ISSUER, true],
      [ISSUER_B, false],
    ]);
    (created[1] as FakeSource).succeed();
    expect(changes).toEqual([true]);
    expect(h.ready()).toBe(true);

    const C = 'https://sts.c.example.org';
    await h.applyConfig(cfg(yaml({ issuers: `${BOTH}\n  - { issuer: "${C}", jwks_uri: "https://c.example.org/jwks" }` })));
    // The new issuer's source was built by the factory with loaded=false (not ISSUER).
    expect(h.issuersWithoutKeys()).toEqual([C]);
    expect(h.ready()).toBe(true);
    expect(h.keyReadiness().every((v) => v.ready())).toBe(true);
    expect(changes).toEqual([true]);
  });

  it('refresh reports reach onJwksRefresh only for current sources', async () => {
    const { h, created, refreshes } = host(cfg(yaml({ issuers: BOTH })));
    await h.start();
    (created[1] as FakeSource).succeed();
    await h.applyConfig(cfg(yaml()));
    (created[1] as FakeSource).succeed(); // removed (and closed): ignored
    (created[0] as FakeSource).succeed();
    expect(refreshes).toEqual([`${ISSUER_B}:ok`, `${ISSUER}:ok`]);
  });

  it('close() closes every source', async () => {
    const { h, created } = host(cfg(yaml({ issuers: BOTH })));
    await h.start();
    h.close();
    expect(created.every((s) => s.closed)).toBe(true);
    expect(await h.applyConfig(cfg(yaml()))).toMatchObject({ result: 'unchanged' });
  });
});
