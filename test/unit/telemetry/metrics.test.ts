import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ALL_REASONS } from '../../../src/core/reasons.js';
import {
  CHECK_DURATION_BUCKETS,
  DROPPED_DEFAULT_METRICS,
  DurationHistogram,
  Metrics,
} from '../../../src/telemetry/metrics.js';
import { REFRESH_RESULTS } from '../../../src/token/key-source-results.js';

const ISS = 'https://sts.prod.example.org';
const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};

function m(issuers: string[] = [ISS]): Metrics {
  return new Metrics({ version: '9.9.9', issuers, defaultMetrics: false });
}

/** `name{labels} value` lines of one metric family, as a map. */
async function series(metrics: Metrics, name: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.metrics()).split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    if (key === name || key.startsWith(`${name}{`)) out.set(key, Number(line.slice(sp + 1)));
  }
  return out;
}

describe('Metrics: names exactly as SPEC §6', () => {
  it('exposes every SPEC metric family', async () => {
    const text = await m().metrics();
    for (const name of [
      'hopguard_decisions_total',
      'hopguard_check_duration_seconds',
      'hopguard_token_cache_lookups_total',
      'hopguard_jwks_refreshes_total',
      'hopguard_config_reloads_total',
      'hopguard_build_info',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('hopguard_build_info{version="9.9.9"} 1');
  });

  it('events_dropped_total{sink} appears per configured sink, at 0', async () => {
    const x = m();
    x.eventSinkConfigured('stdout');
    x.eventSinkConfigured('http', () => 7);
    const s = await series(x, 'hopguard_events_dropped_total');
    expect(s.get('hopguard_events_dropped_total{sink="stdout"}')).toBe(0);
    expect(s.get('hopguard_events_dropped_total{sink="http"}')).toBe(0);
    x.eventsDropped('http', 3);
    x.eventsDropped('http', 0);
    expect((await series(x, 'hopguard_events_dropped_total')).get('hopguard_events_dropped_total{sink="http"}')).toBe(3);
    expect((await series(x, 'hopguard_events_buffered')).get('hopguard_events_buffered{sink="http"}')).toBe(7);
  });

  it('includes Node process metrics with standard names, event-loop lag included', async () => {
    const text = await new Metrics({ version: '1', issuers: [] }).metrics();
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
    expect(text).toContain('# TYPE nodejs_eventloop_lag_p99_seconds gauge');
    expect(text).toContain('# TYPE process_cpu_seconds_total counter');
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge');
  });

  it('drops the default gauges named *_total (promtool: only counters end in _total), keeps their labelled siblings', async () => {
    const text = await new Metrics({ version: '1', issuers: [] }).metrics();
    expect(DROPPED_DEFAULT_METRICS).toEqual(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']);
    for (const name of DROPPED_DEFAULT_METRICS) expect(text).not.toMatch(new RegExp(`^(# (TYPE|HELP) )?${name}\\b`, 'm'));
    expect(text).toContain('# TYPE nodejs_active_handles gauge');
    // No gauge of ours or of the defaults ends in _total.
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+_total) (\w+)$/gm)].filter((m) => m[2] !== 'counter').map((m) => m[1]);
    expect(gaugesNamedTotal).toEqual([]);
  });

  it('event-loop delay gauges report the delay beyond the 10 ms sampling interval, per scrape', async () => {
    const x = new Metrics({ version: '1', issuers: [] });
    const read = async () => {
      const text = await x.metrics();
      const v = (n: string) => Number(new RegExp(`^${n} (\\S+)$`, 'm').exec(text)?.[1]);
      return { mean: v('hopguard_eventloop_delay_mean_seconds'), p99: v('hopguard_eventloop_delay_p99_seconds'), max: v('hopguard_eventloop_delay_max_seconds'), lagP50: v('nodejs_eventloop_lag_p50_seconds') };
    };
    await read(); // starts an interval
    // Block the loop for 600 ms: one tick of the monitor comes at least that late. (Only
    // lower bounds on delays are asserted: a loaded machine adds delay, never removes it.)
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 600;
    while (performance.now() < until) {
      /* busy */
    }
    await new Promise((r) => setTimeout(r, 30));
    const blocked = await read();
    expect(blocked.max).toBeGreaterThanOrEqual(0.58);
    expect(blocked.max).toBeLessThan(60); // seconds, not nanoseconds
    expect(blocked.p99).toBeLessThanOrEqual(blocked.max);
    expect(blocked.mean).toBeLessThanOrEqual(blocked.max);
    expect(blocked.mean).toBeGreaterThan(0);
    // prom-client's percentiles include the 10 ms interval itself: never below ~10 ms.
    expect(blocked.lagP50).toBeGreaterThanOrEqual(0.009);
  });

  it('owns its registry: two instances do not share counts', async () => {
    const a = m();
    const b = m();
    a.configReload('applied');
    expect((await series(a, 'hopguard_config_reloads_total')).get('hopguard_config_reloads_total{result="applied"}')).toBe(1);
    expect((await series(b, 'hopguard_config_reloads_total')).get('hopguard_config_reloads_total{result="applied"}')).toBe(0);
  });
});

describe('decisions', () => {
  it('counts the real decision with an enforced label (dry-run is enforced="false")', async () => {
    const x = m();
    x.decision(true, 'granted', true, 0.0001);
    x.decision(false, 'actor_mismatch', true, 0.0002);
    x.decision(false, 'actor_mismatch', false, 0.0002);
    x.decision(false, 'actor_mismatch', false, 0.0002);
    const s = await series(x, 'hopguard_decisions_total');
    expect(s.get('hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(1);
    expect(s.get('hopguard_decisions_total{decision="deny",reason="actor_mismatch",enforced="true"}')).toBe(1);
    expect(s.get('hopguard_decisions_total{decision="deny",reason="actor_mismatch",enforced="false"}')).toBe(2);
    const h = await series(x, 'hopguard_check_duration_seconds_count');
    expect(h.get('hopguard_check_duration_seconds_count')).toBe(4);
  });

  it('starts every reason at 0, enforced and dry-run (enforced="false"), so increase() sees the first count', async () => {
    const x = m();
    const s = await series(x, 'hopguard_decisions_total');
    for (const r of ALL_REASONS) {
      const d = r === 'granted' || r === 'exempt' ? 'allow' : 'deny';
      for (const e of ['true', 'false']) expect(s.get(`hopguard_decisions_total{decision="${d}",reason="${r}",enforced="${e}"}`), `${r} ${e}`).toBe(0);
    }
    expect(s.size).toBe(2 * ALL_REASONS.length);
    // A dry-run count lands on its series: incremented, not created.
    x.decision(false, 'internal_error', false, 0.001);
    const after = await series(x, 'hopguard_decisions_total');
    expect(after.size).toBe(2 * ALL_REASONS.length);
    expect(after.get('hopguard_decisions_total{decision="deny",reason="internal_error",enforced="false"}')).toBe(1);
  });

  it('never mints a series from a value outside the closed sets', async () => {
    const x = m();
    x.decision(false, 'made_up_reason', true, 0.001);
    x.decision(true, 'bad_signature', true, 0.001); // inconsistent: counted as the deny it names
    const s = await series(x, 'hopguard_decisions_total');
    expect(s.size).toBe(2 * ALL_REASONS.length);
    expect(s.get('hopguard_decisions_total{decision="deny",reason="internal_error",enforced="true"}')).toBe(1);
    expect(s.get('hopguard_decisions_total{decision="deny",reason="bad_signature",enforced="true"}')).toBe(1);
  });

  it('latency buckets resolve 50 µs … 250 ms', async () => {
    expect(CHECK_DURATION_BUCKETS[0]).toBe(0.00005);
    expect(CHECK_DURATION_BUCKETS.at(-1)).toBe(0.25);
    const x = m();
    x.decision(true, 'granted', true, 0.00004); // under 50 µs
    x.decision(true, 'granted', true, 0.0003);
    x.decision(true, 'granted', true, 0.3); // over 250 ms
    x.decision(true, 'granted', true, Number.NaN); // ignored, never throws
    const b = await series(x, 'hopguard_check_duration_seconds_bucket');
    expect(b.get('hopguard_check_duration_seconds_bucket{le="0.00005"}')).toBe(1);
    expect(b.get('hopguard_check_duration_seconds_bucket{le="0.0005"}')).toBe(2);
    expect(b.get('hopguard_check_duration_seconds_bucket{le="0.25"}')).toBe(2);
    expect(b.get('hopguard_check_duration_seconds_bucket{le="+Inf"}')).toBe(3);
  });
});

describe('keys, cache, reloads', () => {
  it('jwks metrics are labelled by configured issuer; anything else is "other"', async () => {
    const x = m();
    x.jwksRefresh(ISS, 'ok');
    x.jwksRefresh(ISS, 'timeout');
    x.jwksKeys(ISS, 3);
    x.jwksRejectedKeys(ISS, 2);
    x.jwksSuccess(ISS, 1_800_000_000.5);
    for (let i = 0; i < 1000; i++) x.jwksRefresh(`https://evil-${i}.example`, 'ok');
    const r = await series(x, 'hopguard_jwks_refreshes_total');
    expect(r.get(`hopguard_jwks_refreshes_total{issuer="${ISS}",result="ok"}`)).toBe(1);
    expect(r.get(`hopguard_jwks_refreshes_total{issuer="${ISS}",result="timeout"}`)).toBe(1);
    expect(r.get('hopguard_jwks_refreshes_total{issuer="other",result="ok"}')).toBe(1000);
    // The configured issuer has every result at 0 from the start; `other` only what happened.
    expect(r.size).toBe(REFRESH_RESULTS.length + 1);
    expect(r.get(`hopguard_jwks_refreshes_total{issuer="${ISS}",result="http_status"}`)).toBe(0);
    expect((await series(x, 'hopguard_jwks_keys')).get(`hopguard_jwks_keys{issuer="${ISS}"}`)).toBe(3);
    expect((await series(x, 'hopguard_jwks_rejected_keys')).get(`hopguard_jwks_rejected_keys{issuer="${ISS}"}`)).toBe(2);
    expect(
      (await series(x, 'hopguard_jwks_last_success_timestamp_seconds')).get(
        `hopguard_jwks_last_success_timestamp_seconds{issuer="${ISS}"}`,
      ),
    ).toBe(1_800_000_000.5);
  });

  it('refresh results outside REFRESH_RESULTS become "other"', async () => {
    const x = m();
    x.jwksRefresh(ISS, 'boom' as (typeof REFRESH_RESULTS)[number]);
    expect((await series(x, 'hopguard_jwks_refreshes_total')).get(`hopguard_jwks_refreshes_total{issuer="${ISS}",result="other"}`)).toBe(1);
  });

  it('setIssuers (config reload) adds new issuers and removes the series of dropped ones', async () => {
    const x = m([ISS]);
    x.jwksKeys(ISS, 2);
    x.jwksRejectedKeys(ISS, 1);
    x.jwksRefresh(ISS, 'network');
    x.setIssuers(['https://sts.new.example']);
    x.jwksKeys('https://sts.new.example', 1);
    x.jwksKeys(ISS, 5); // no longer configured: other
    const text = await x.metrics();
    expect(text).not.toContain(`issuer="${ISS}"`);
    expect(text).toContain('hopguard_jwks_keys{issuer="https://sts.new.example"} 1');
    expect(text).toContain('hopguard_jwks_keys{issuer="other"} 5');
    expect(text).toContain('hopguard_jwks_refreshes_total{issuer="https://sts.new.example",result="ok"} 0');
  });

  it('token cache and config reloads', async () => {
    const x = m();
    x.tokenCacheLookup('hit');
    x.tokenCacheLookup('hit');
    x.tokenCacheLookup('miss');
    x.configReload('applied');
    x.configReload('rejected');
    x.configReload('rejected');
    const c = await series(x, 'hopguard_token_cache_lookups_total');
    expect(c.get('hopguard_token_cache_lookups_total{result="hit"}')).toBe(2);
    expect(c.get('hopguard_token_cache_lookups_total{result="miss"}')).toBe(1);
    const r = await series(x, 'hopguard_config_reloads_total');
    expect(r.get('hopguard_config_reloads_total{result="applied"}')).toBe(1);
    expect(r.get('hopguard_config_reloads_total{result="rejected"}')).toBe(2);
  });

  it('config reload state: successful at start, 0 after a rejected reload (until one applies), success time', async () => {
    let now = 1_800_000_000_000;
    const x = new Metrics({ version: '1', issuers: [], defaultMetrics: false, nowMs: () => now });
    const state = async () => ({
      ok: (await series(x, 'hopguard_config_last_reload_successful')).get('hopguard_config_last_reload_successful'),
      at: (await series(x, 'hopguard_config_last_reload_success_timestamp_seconds')).get('hopguard_config_last_reload_success_timestamp_seconds'),
    });
    expect(await state()).toEqual({ ok: 1, at: 1_800_000_000 });
    now += 60_000;
    x.configReload('rejected');
    expect(await state()).toEqual({ ok: 0, at: 1_800_000_000 });
    now += 3_600_000;
    x.configReload('rejected');
    expect(await state()).toEqual({ ok: 0, at: 1_800_000_000 }); // still 0 an hour later: the state, not the event
    x.configReload('applied');
    expect(await state()).toEqual({ ok: 1, at: 1_800_003_660 });
  });

  it('max_stale is exported for issuers whose keys are fetched, not for jwks_file ones, and follows reloads', async () => {
    const x = m([]);
    const F = 'https://file.example';
    x.applyConfig({
      issuers: [
        { issuer: ISS, max_stale: 3_600_000 },
        { issuer: F, jwks_file: '/etc/hopguard/jwks.json', max_stale: 3_600_000 },
      ],
    });
    let s = await series(x, 'hopguard_jwks_max_stale_seconds');
    expect([...s]).toEqual([[`hopguard_jwks_max_stale_seconds{issuer="${ISS}"}`, 3600]]);
    expect((await series(x, 'hopguard_jwks_refreshes_total')).get(`hopguard_jwks_refreshes_total{issuer="${F}",result="read_failed"}`)).toBe(0);
    x.applyConfig({ issuers: [{ issuer: F, max_stale: 600_000 }] });
    s = await series(x, 'hopguard_jwks_max_stale_seconds');
    expect([...s]).toEqual([[`hopguard_jwks_max_stale_seconds{issuer="${F}"}`, 600]]);
  });

  it('sampled-out events are counted apart from drops', async () => {
    const x = m();
    x.eventsSampled(4);
    expect((await series(x, 'hopguard_events_sampled_out_total')).get('hopguard_events_sampled_out_total')).toBe(4);
  });
});

describe('replay store (SPEC §9)', () => {
  it('counts operations by result, every result at 0 from the start, and their duration', async () => {
    const x = m();
    const zero = await series(x, 'hopguard_replay_store_operations_total');
    expect([...zero]).toEqual(['first', 'replayed', 'error', 'timeout'].map((r) => [`hopguard_replay_store_operations_total{result="${r}"}`, 0]));
    x.replayStoreOperation('first', 0.0004);
    x.replayStoreOperation('first', 0.0006);
    x.replayStoreOperation('replayed', 0.0003);
    x.replayStoreOperation('error', 0);
    x.replayStoreOperation('timeout', 0.05);
    const c = await series(x, 'hopguard_replay_store_operations_total');
    expect(c.get('hopguard_replay_store_operations_total{result="first"}')).toBe(2);
    expect(c.get('hopguard_replay_store_operations_total{result="replayed"}')).toBe(1);
    expect(c.get('hopguard_replay_store_operations_total{result="error"}')).toBe(1);
    expect(c.get('hopguard_replay_store_operations_total{result="timeout"}')).toBe(1);
    expect((await series(x, 'hopguard_replay_store_duration_seconds_count')).get('hopguard_replay_store_duration_seconds_count')).toBe(5);
    const b = await series(x, 'hopguard_replay_store_duration_seconds_bucket');
    expect(b.get('hopguard_replay_store_duration_seconds_bucket{le="0.0005"}')).toBe(3);
    expect(b.get('hopguard_replay_store_duration_seconds_bucket{le="0.05"}')).toBe(5);
    expect(b.get('hopguard_replay_store_duration_seconds_bucket{le="0.025"}')).toBe(4);
  });
});

describe('audit trail (SPEC §8)', () => {
  it('every audit series exists at 0 from start-up, on closed label sets', async () => {
    const x = m();
    expect([...(await series(x, 'hopguard_audit_sync_total'))]).toEqual([
      ['hopguard_audit_sync_total{result="confirmed"}', 0],
      ['hopguard_audit_sync_total{result="timeout"}', 0],
      ['hopguard_audit_sync_total{result="rejected"}', 0],
      ['hopguard_audit_sync_total{result="no_sink"}', 0],
    ]);
    expect((await series(x, 'hopguard_audit_checkpoints_total')).get('hopguard_audit_checkpoints_total')).toBe(0);
    expect((await series(x, 'hopguard_audit_sync_duration_seconds_count')).get('hopguard_audit_sync_duration_seconds_count')).toBe(0);
    expect([...(await series(x, 'hopguard_audit_signing_key_reloads_total'))].map(([k]) => k)).toEqual([
      'hopguard_audit_signing_key_reloads_total{result="applied"}',
      'hopguard_audit_signing_key_reloads_total{result="rejected"}',
    ]);
  });

  it('counts sync waits by result with their duration, checkpoints and key reloads', async () => {
    const x = m();
    x.auditSync('confirmed', 0.004);
    x.auditSync('timeout', 1);
    x.auditSync('no_sink', 0);
    x.auditSync('bogus' as 'timeout', 0.1); // a bug never mints a series
    x.auditCheckpoint();
    x.auditKeyReload('rejected');
    const sync = await series(x, 'hopguard_audit_sync_total');
    expect(sync.get('hopguard_audit_sync_total{result="confirmed"}')).toBe(1);
    expect(sync.get('hopguard_audit_sync_total{result="timeout"}')).toBe(2);
    expect(sync.get('hopguard_audit_sync_total{result="no_sink"}')).toBe(1);
    expect(sync.size).toBe(4);
    const d = await series(x, 'hopguard_audit_sync_duration_seconds_bucket');
    expect(d.get('hopguard_audit_sync_duration_seconds_bucket{le="0.005"}')).toBe(2);
    expect(d.get('hopguard_audit_sync_duration_seconds_bucket{le="1"}')).toBe(4);
    expect((await series(x, 'hopguard_audit_checkpoints_total')).get('hopguard_audit_checkpoints_total')).toBe(1);
    expect((await series(x, 'hopguard_audit_signing_key_reloads_total')).get('hopguard_audit_signing_key_reloads_total{result="rejected"}')).toBe(1);
  });
});

describe('hot-path counting (pending counts, DurationHistogram)', () => {
  /** The exposition of a prom-client Histogram and of ours, fed the same values in order. */
  async function both(values: readonly number[]): Promise<[string, string]> {
    const theirs = new Registry();
    const h = new Histogram({ name: 'x_seconds', help: 'h', buckets: [...CHECK_DURATION_BUCKETS], registers: [theirs] });
    const ours = new Registry();
    const d = new DurationHistogram('x_seconds', 'h', CHECK_DURATION_BUCKETS);
    ours.registerMetric(d as unknown as Parameters<Registry['registerMetric']>[0]);
    for (const v of values) {
      h.observe(v);
      d.observe(v);
    }
    return [await theirs.metrics(), await ours.metrics()];
  }

  it('DurationHistogram exposes exactly what a prom-client Histogram would (bounds, zero, huge)', async () => {
    const edges = [0, ...CHECK_DURATION_BUCKETS, ...CHECK_DURATION_BUCKETS.map((b) => b * 1.0000001), 1e9, 0.1 + 0.2];
    const [theirs, ours] = await both(edges);
    expect(ours).toBe(theirs);
    expect(ours).toContain('x_seconds_bucket{le="0.00005"} 2'); // 0 and the bound itself
    expect(ours).toContain(`x_seconds_count ${edges.length}`);
  });

  it('property: any sequence of latencies gives the same exposition (sum order included)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { maxLength: 200 }), async (vs) => {
        const [theirs, ours] = await both(vs);
        expect(ours).toBe(theirs);
      }),
      { numRuns: 200, ...SEED },
    );
  });

  it('DurationHistogram: JSON output and registry reset work as for built-in metrics', async () => {
    const r = new Registry();
    const d = new DurationHistogram('y_seconds', 'h', [0.1, 1]);
    r.registerMetric(d as unknown as Parameters<Registry['registerMetric']>[0]);
    d.observe(0.05);
    d.observe(5);
    const [json] = await r.getMetricsAsJSON();
    expect(json?.type).toBe('histogram');
    expect(json?.values.find((v) => (v as { metricName?: string }).metricName === 'y_seconds_count')?.value).toBe(2);
    r.resetMetrics();
    expect(await r.metrics()).toContain('y_seconds_count 0');
  });

  it('counts made between reads are all there at the next read, and only once', async () => {
    const x = m();
    const key = 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}';
    for (let i = 0; i < 5; i++) x.decision(true, 'granted', true, 0.0001);
    x.tokenCacheLookup('hit');
    expect((await series(x, 'hopguard_decisions_total')).get(key)).toBe(5);
    expect((await series(x, 'hopguard_decisions_total')).get(key)).toBe(5); // a second read adds nothing
    x.decision(true, 'granted', true, 0.0001);
    x.tokenCacheLookup('hit');
    x.tokenCacheLookup('miss');
    expect((await series(x, 'hopguard_decisions_total')).get(key)).toBe(6);
    const c = await series(x, 'hopguard_token_cache_lookups_total');
    expect(c.get('hopguard_token_cache_lookups_total{result="hit"}')).toBe(2);
    expect(c.get('hopguard_token_cache_lookups_total{result="miss"}')).toBe(1);
    // getMetricsAsJSON flushes too (it is how other tooling reads a registry).
    x.decision(false, 'bad_signature', false, 0.0001);
    const [fam] = (await x.registry.getMetricsAsJSON()).filter((f) => f.name === 'hopguard_decisions_total');
    const v = fam?.values.find((e) => e.labels['reason'] === 'bad_signature' && e.labels['enforced'] === 'false');
    expect(v?.value).toBe(1);
  });
});
