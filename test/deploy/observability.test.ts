/**
 * The Grafana dashboard and the PrometheusRule query only metrics hopguard really exports:
 * a real server (startServer, loopback, port 0) is started and its /metrics scraped, and
 * every metric name and label value the queries use is checked against that exposition.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { parseConfig } from '../../src/config/load.js';
import { Logger } from '../../src/telemetry/log.js';
import { render, ROOT } from './k8s.js';
import { matchers, metricNames, parseExposition, type ScrapedFamily } from './promql.js';

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

const rule = render('deploy/base').find((o) => o.kind === 'PrometheusRule') as unknown as {
  spec: { groups: { rules: { alert: string; expr: string }[] }[] };
};
const ruleExprs = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.expr));

let dir: string;
let running: RunningServer;
let scraped: Map<string, ScrapedFamily>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'hopguard-metrics-'));
  const { publicKey } = await generateKeyPair('ES256');
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  const yaml = `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
workload: { id: spiffe://prod.example.org/ns/payments/sa/ledger }
issuers:
  - { issuer: https://sts.prod.example.org, jwks_file: ${JSON.stringify(path.join(dir, 'jwks.json'))}, algorithms: [ES256] }
delegation: { trusted_domains: [prod.example.org] }
events: { sinks: [stdout] }
`;
  const parsed = parseConfig(yaml, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  running = await startServer(parsed.config, { logger: new Logger('error', { write: () => {} }) });
  const res = await fetch(`http://127.0.0.1:${running.adminPort}/metrics`);
  expect(res.status).toBe(200);
  scraped = parseExposition(await res.text());
});

afterAll(async () => {
  await running?.stop(1000, 0);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function unknownMetrics(exprs: readonly string[]): string[] {
  return [...new Set(exprs.flatMap(metricNames))].filter((n) => !scraped.has(n)).sort();
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

  it('the dashboard queries only exported metrics', () => {
    expect(dashboardExprs.length).toBeGreaterThan(10);
    expect(unknownMetrics(dashboardExprs)).toEqual([]);
  });

  it('the dashboard filters only on label values hopguard exports', () => {
    expect(unknownLabelValues(dashboardExprs)).toEqual([]);
  });

  it('the PrometheusRule queries only exported metrics and label values', () => {
    expect(ruleExprs.length).toBeGreaterThanOrEqual(7);
    expect(unknownMetrics(ruleExprs)).toEqual([]);
    expect(unknownLabelValues(ruleExprs)).toEqual([]);
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
    expect(all).toContain('nodejs_eventloop_lag_p99_seconds');
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
