/**
 * The Grafana dashboard and the PrometheusRule query only metrics hopguard really exports:
 * a real server (startServer, loopback, port 0) and a real token exchange (startSts) are
 * started and their /metrics scraped, and every metric name and label value the queries use
 * is checked against those expositions.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { startSts, type RunningSts } from '../../src/runtime/sts.js';
import { makeMeshPki, parseSts, stsYaml, writeSigningKey } from '../helpers/sts.js';
import { parseConfig } from '../../src/config/load.js';
import { Logger } from '../../src/telemetry/log.js';
import { startJwksServer, type JwksServer } from '../helpers/server.js';
import { render, ROOT } from '../helpers/deploy/k8s.js';
import { matchers, metricNames, parseExposition, type ScrapedFamily } from '../helpers/deploy/promql.js';

/**
 * Series of other exporters the dashboard and the alerts read on purpose: Prometheus's own
 * `up`, and Envoy's stats as Envoy exports them in Prometheus format for envoy.yaml (ext_authz
 * filter stats under the HCM prefix, tag-extracted; hopguard cluster stats). No Envoy runs
 * here: these names follow Envoy's documented stats and default tag extractors, and their
 * label values are checked against envoy.yaml below.
 */
const EXTERNAL_METRICS = new Set([
  'up',
  'envoy_http_ext_authz_ok',
  'envoy_http_ext_authz_denied',
  'envoy_http_ext_authz_error',
  'envoy_http_ext_authz_invalid',
  'envoy_http_ext_authz_failure_mode_allowed',
  'envoy_cluster_upstream_rq_total',
  'envoy_cluster_upstream_rq_timeout',
  'envoy_cluster_membership_healthy',
]);

/** Labels Prometheus attaches to every scraped series (not in hopguard's exposition). */
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance', 'service', 'container', 'endpoint']);
/** Variables Grafana defines itself. */
const GRAFANA_BUILTINS = new Set(['__rate_interval', '__range', '__interval']);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

const dashboardText = readFileSync(path.join(ROOT, 'deploy/grafana-dashboard.json'), 'utf8');
const dashboard = JSON.parse(dashboardText) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => v.definition ?? ''),
];

const rules = render('deploy/base').filter((o) => o.kind === 'PrometheusRule') as unknown as {
  spec: { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
}[];
const ruleList = rules.flatMap((r) => r.spec.groups.flatMap((g) => g.rules));
const ruleExprs = ruleList.map((r) => r.expr);
/** Series the recording rules produce: alerts may read them. */
const recorded = new Set(ruleList.flatMap((r) => (r.record ? [r.record] : [])));

let dir: string;
let remote: JwksServer;
let running: RunningServer;
let sts: RunningSts;
let scraped: Map<string, ScrapedFamily>;
let stsScraped: Map<string, ScrapedFamily>;

/** Both processes' families in one map (label values merged for a family both export). */
function merge(a: Map<string, ScrapedFamily>, b: Map<string, ScrapedFamily>): Map<string, ScrapedFamily> {
  const out = new Map(a);
  for (const [name, fam] of b) {
    const have = out.get(name);
    if (have === undefined) {
      out.set(name, fam);
      continue;
    }
    const labels = new Map([...have.labels].map(([k, v]) => [k, new Set(v)]));
    for (const [k, v] of fam.labels) labels.set(k, new Set([...(labels.get(k) ?? []), ...v]));
    out.set(name, { type: have.type, series: new Set([...have.series, ...fam.series]), labels });
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'hopguard-metrics-'));
  const { publicKey } = await generateKeyPair('ES256');
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  // A file issuer and one whose keys are fetched (its max_stale is exported).
  remote = await startJwksServer(JSON.parse(readFileSync(path.join(dir, 'jwks.json'), 'utf8')));
  const yaml = `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
workload: { id: spiffe://prod.example.org/ns/payments/sa/ledger }
issuers:
  - { issuer: https://sts.prod.example.org, jwks_file: ${JSON.stringify(path.join(dir, 'jwks.json'))}, algorithms: [ES256] }
  - { issuer: https://remote.example.org, jwks_uri: "${remote.url}", allow_insecure_http: true, algorithms: [ES256] }
delegation: { trusted_domains: [prod.example.org] }
events: { sinks: [stdout] }
`;
  const parsed = parseConfig(yaml, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  running = await startServer(parsed.config, { logger: new Logger('error', { write: () => {} }) });
  const res = await fetch(`http://127.0.0.1:${running.adminPort}/metrics`);
  expect(res.status).toBe(200);
  const serveScraped = parseExposition(await res.text());

  const pki = makeMeshPki();
  const keysDir = path.join(pki.dir, 'keys');
  await writeSigningKey(keysDir, 'k1');
  sts = await startSts(parseSts(stsYaml(pki, keysDir)), { logger: new Logger('error', { write: () => {} }) });
  const stsRes = await fetch(`http://127.0.0.1:${sts.adminPort}/metrics`);
  expect(stsRes.status).toBe(200);
  stsScraped = parseExposition(await stsRes.text());
  scraped = merge(serveScraped, stsScraped);
});

afterAll(async () => {
  await running?.stop(1000, 0);
  await sts?.stop(1000, 0);
  await remote?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function unknownMetrics(exprs: readonly string[]): string[] {
  return [...new Set(exprs.flatMap(metricNames))].filter((n) => !scraped.has(n) && !EXTERNAL_METRICS.has(n) && !recorded.has(n)).sort();
}

/** `metric{label="value"}` matchers whose label or value the exposition never shows. */
function unknownLabelValues(exprs: readonly string[]): string[] {
  const bad: string[] = [];
  for (const m of exprs.flatMap(matchers)) {
    if (TARGET_LABELS.has(m.label)) continue;
    const fam = scraped.get(m.metric);
    if (!fam) continue; // reported by unknownMetrics
    const seen = fam.labels.get(m.label);
    if (!seen) {
      bad.push(`${m.metric}: no label ${m.label}`);
      continue;
    }
    // `=~"a|b"` of plain alternatives: each must be a value hopguard exports.
    const wanted = m.op === '=' ? [m.value] : m.op === '=~' && /^[\w|]+$/.test(m.value) ? m.value.split('|') : [];
    for (const v of wanted) if (!seen.has(v)) bad.push(`${m.metric}{${m.label}="${v}"}: value never exported (seen: ${[...seen].join(', ')})`);
  }
  return bad;
}

describe('metric names the dashboard and alerts rely on', () => {
  it('the scraped exposition has hopguard and Node process metrics', () => {
    expect(scraped.has('hopguard_decisions_total')).toBe(true);
    expect(scraped.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });

  it('every SPEC §6 metric is exported (the contract the dashboard is written against)', () => {
    const spec = path.join(ROOT, '../shared/SPEC.md');
    if (!existsSync(spec)) return; // the contract lives beside the repository, not in it
    // §6 only: §7's exchange metrics belong to `hopguard sts`, not to `serve`.
    const section = (readFileSync(spec, 'utf8').split('## 6.')[1] ?? '').split('\n## ')[0] ?? '';
    const names = [...new Set([...section.matchAll(/`(hopguard_[a-z_]+)/g)].map((m) => m[1] as string))];
    expect(names.length).toBeGreaterThanOrEqual(7);
    for (const n of names) {
      const fam = scraped.get(n) ?? scraped.get(`${n}_bucket`);
      expect(fam, n).toBeDefined();
    }
  });

  it('every SPEC §7 metric is exported by hopguard sts', () => {
    const spec = path.join(ROOT, '../shared/SPEC.md');
    if (!existsSync(spec)) return;
    const section = (readFileSync(spec, 'utf8').split('## 7.')[1] ?? '').split('\n## ')[0] ?? '';
    const names = [...new Set([...section.matchAll(/`(hopguard_[a-z_]+)/g)].map((m) => m[1] as string))];
    expect(names).toEqual(expect.arrayContaining(['hopguard_exchanges_total', 'hopguard_exchange_duration_seconds', 'hopguard_signing_keys']));
    for (const n of names) expect(stsScraped.get(n) ?? stsScraped.get(`${n}_bucket`), n).toBeDefined();
    expect(stsScraped.get('hopguard_signing_keys')?.labels.get('state')).toEqual(new Set(['active', 'published']));
  });

  it('the dashboard queries only exported metrics', () => {
    expect(dashboardExprs.length).toBeGreaterThan(10);
    expect(unknownMetrics(dashboardExprs)).toEqual([]);
  });

  it('the dashboard filters only on label values hopguard exports', () => {
    expect(unknownLabelValues(dashboardExprs)).toEqual([]);
  });

  it('the PrometheusRules query only exported metrics and label values', () => {
    expect(ruleExprs.length).toBeGreaterThanOrEqual(15);
    expect(unknownMetrics(ruleExprs), 'not in hopguard serve\'s /metrics (another process\'s metrics: scrape it here; another exporter\'s: EXTERNAL_METRICS)').toEqual([]);
    expect(unknownLabelValues(ruleExprs)).toEqual([]);
  });

  it("Envoy's series are selected with the names envoy.yaml gives them (stat prefixes, cluster)", () => {
    const envoy = parse(readFileSync(path.join(ROOT, 'envoy.yaml'), 'utf8')) as unknown;
    const found = { extAuthzPrefix: new Set<string>(), hcmPrefix: new Set<string>(), clusters: new Set<string>() };
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (String(o['@type']).endsWith('ext_authz.v3.ExtAuthz') && typeof o['stat_prefix'] === 'string') found.extAuthzPrefix.add(o['stat_prefix']);
        if (String(o['@type']).endsWith('HttpConnectionManager') && typeof o['stat_prefix'] === 'string') found.hcmPrefix.add(o['stat_prefix']);
        if (o['load_assignment'] && typeof o['name'] === 'string') found.clusters.add(o['name']);
        Object.values(o).forEach(walk);
      }
    };
    walk(envoy);
    const all = [...ruleExprs, ...dashboardExprs].flatMap(matchers).filter((m) => m.metric.startsWith('envoy_'));
    expect(all.length).toBeGreaterThan(5);
    for (const m of all) {
      if (m.label === 'envoy_ext_authz_prefix') expect(found.extAuthzPrefix, m.metric).toContain(m.value);
      if (m.label === 'envoy_http_conn_manager_prefix') expect(found.hcmPrefix, m.metric).toContain(m.value);
      if (m.label === 'envoy_cluster_name') expect(found.clusters, m.metric).toContain(m.value);
    }
    // The ext_authz stats exist only under a stat_prefix: without it the prefix label is absent.
    expect(found.extAuthzPrefix).toEqual(new Set(['hopguard']));
  });

  it('a misspelled metric or label value would be caught', () => {
    expect(unknownMetrics(['sum(rate(hopgaurd_decisions_total{decision="deny"}[5m]))'])).toEqual(['hopgaurd_decisions_total']);
    expect(unknownLabelValues(['sum(rate(hopguard_decisions_total{decision="denied"}[5m]))'])).toHaveLength(1);
    expect(unknownLabelValues(['rate(hopguard_token_cache_lookups_total{outcome="hit"}[5m])'])).toHaveLength(1);
    expect(unknownLabelValues(['rate(hopguard_jwks_refreshes_total{status!="ok"}[5m])'])).toHaveLength(1);
  });
});

describe('deploy/grafana-dashboard.json', () => {
  it('is an importable dashboard: title, uid, unique panel ids, Prometheus data source variable', () => {
    expect(dashboard.title).toBe('hopguard');
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const p of panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it('uses only variables it defines (or Grafana built-ins)', () => {
    const defined = new Set(dashboard.templating.list.map((v) => v.name));
    const used = new Set(dashboardExprs.flatMap((e) => [...e.matchAll(/\$\{?(\w+)/g)].map((m) => m[1] as string)));
    for (const v of used) expect(defined.has(v) || GRAFANA_BUILTINS.has(v), v).toBe(true);
  });

  it('has the panels SREs need', () => {
    const all = dashboardExprs.join('\n');
    expect(all).toMatch(/sum by \(decision, reason\) \(rate\(hopguard_decisions_total/); // decisions/s by decision and reason
    expect(all).toMatch(/hopguard_decisions_total\{decision="deny"[^}]*\}\[\$__rate_interval\]\)\) \/ sum\(rate\(hopguard_decisions_total/); // deny ratio
    expect(all).toContain('histogram_quantile(0.5, sum by (le) (rate(hopguard_check_duration_seconds_bucket');
    expect(all).toContain('histogram_quantile(0.99, sum by (le) (rate(hopguard_check_duration_seconds_bucket');
    expect(all).toMatch(/hopguard_token_cache_lookups_total\{result="hit"/); // token-cache hit ratio
    expect(all).toContain('hopguard_jwks_refreshes_total');
    expect(all).toContain('hopguard_events_dropped_total');
    expect(all).toContain('hopguard_eventloop_delay_p99_seconds');
    // hopguard as the outage: Envoy's ext_authz errors, timeouts, fail-open count; scrape up;
    // keys' time left; Checks refused; the config reload state.
    for (const m of [
      'envoy_http_ext_authz_error',
      'envoy_cluster_upstream_rq_timeout',
      'envoy_http_ext_authz_failure_mode_allowed',
      'up{job=~"hopguard|hopguard-envoy"',
      'hopguard_jwks_max_stale_seconds',
      'hopguard_checks_refused_total',
      'hopguard_config_last_reload_successful',
      // The replay store (SPEC §9): its operations by result, its latency, and the
      // single-use requests refused while it cannot answer.
      'sum by (result) (rate(hopguard_replay_store_operations_total',
      'histogram_quantile(0.99, sum by (le) (rate(hopguard_replay_store_duration_seconds_bucket',
      'hopguard_decisions_total{reason="replay_unavailable"',
    ]) {
      expect(all).toContain(m);
    }
    // hopguard sts
    expect(all).toMatch(/sum by \(kind, result\) \(rate\(hopguard_exchanges_total/);
    expect(all).toMatch(/sum by \(reason\) \(rate\(hopguard_exchanges_total\{result="denied"/);
    expect(all).toContain('histogram_quantile(0.99, sum by (le) (rate(hopguard_exchange_duration_seconds_bucket');
    expect(all).toContain('hopguard_signing_keys');
    expect(all).toContain('time() - max by (pod) (hopguard_signing_key_created_timestamp_seconds');
  });

  it('reads the same at every zoom level: rates, not increase() over $__rate_interval', () => {
    for (const e of dashboardExprs) expect(e, e).not.toMatch(/increase\([^)]*\[\$__rate_interval\]/);
  });

  it('"Top deny reasons" is one instant query over the dashboard range', () => {
    const p = panels.find((x) => x.title.startsWith('Top deny reasons')) as Panel & { targets: { instant?: boolean; range?: boolean; expr: string }[] };
    expect(p.targets[0]).toMatchObject({ instant: true, range: false });
    expect(p.targets[0]?.expr).toContain('[$__range]');
  });

  it('decisions by reason leave out the reasons at 0 (dozens of flat lines otherwise)', () => {
    const p = panels.find((x) => x.title === 'Decisions/s by decision and reason');
    expect(p?.targets?.[0]?.expr).toMatch(/> 0$/);
  });

  it('units: CPU as a share of a core; no unused __inputs', () => {
    const cpu = panels.find((x) => x.title === 'CPU') as Panel & { fieldConfig: { defaults: { unit: string } } };
    expect(cpu.fieldConfig.defaults.unit).toBe('percentunit');
    const inputs = (dashboard as unknown as { __inputs?: { name: string }[] }).__inputs ?? [];
    for (const i of inputs) expect(dashboardText, `__inputs ${i.name} unused`).toContain(`\${${i.name}}`);
  });
});

describe('promql helpers', () => {
  it.each([
    ['sum by (decision, reason) (rate(hopguard_decisions_total{namespace=~"$namespace"}[$__rate_interval]))', ['hopguard_decisions_total']],
    ['histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 0.025', ['x_bucket']],
    ['a > 3 * b offset 5m and on (pod) c unless d', ['a', 'b', 'c', 'd']],
    ['topk(10, sum without (le) (increase(m{a="x,y"}[1h])))', ['m']],
    ['label_values(hopguard_build_info{namespace=~"$namespace"}, pod)', ['hopguard_build_info']],
    ['label_values(namespace)', []],
    ['1e3 * nodejs_heap_size_used_bytes / 0.5', ['nodejs_heap_size_used_bytes']],
  ])('metricNames(%s)', (expr, names) => {
    expect(metricNames(expr).sort()).toEqual([...names].sort());
  });

  it('matchers() reads label matchers per metric', () => {
    expect(matchers('a{x="1", y=~"b|c"} / b{z!="2"}')).toEqual([
      { metric: 'a', label: 'x', op: '=', value: '1' },
      { metric: 'a', label: 'y', op: '=~', value: 'b|c' },
      { metric: 'b', label: 'z', op: '!=', value: '2' },
    ]);
  });
});
