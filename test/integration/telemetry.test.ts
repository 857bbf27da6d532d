/**
 * Telemetry end to end, in process: the real server (src/runtime/serve.ts) with its REAL
 * configured `http` sink posting to a loopback collector, its admin server scraped over
 * HTTP, and Checks from a client built from Envoy's official protos.
 *
 *   N Checks (mixed) → exactly N events at the collector, reasons matching each answer,
 *   and /metrics counting the same; sampling counted apart; no secret in any output;
 *   /readyz and gRPC health agreeing through key loading and draining.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { parseConfig } from '../../src/config/load.js';
import { Logger } from '../../src/telemetry/log.js';
import { Collector, until } from '../helpers/collector.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { startJwksServer, type JwksServer } from '../helpers/server.js';
import { CALLER, ISSUER, jwksOf, NOW_MS, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const INTRUDER = 'spiffe://prod.example.org/ns/web/sa/web';
const AUTHZ = 'Bearer top-secret-bearer-value';
const COOKIE = 'session=very-secret-session-cookie';

let es: TestKey;
beforeAll(async () => {
  es = await testKey('ES256', 'es-tel');
});

interface Harness {
  running: RunningServer;
  client: EnvoyLikeClient;
  logs: string[];
  collector: Collector;
  jwks: JwksServer;
}
const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    h.client.close();
    await h.running.stop(1000);
    await h.collector.stop();
    await h.jwks.close();
  }
});

async function harness(opts: { extra?: string; events?: string; jwksStatus?: number } = {}): Promise<Harness> {
  const { extra = '', events = '', jwksStatus = 200 } = opts;
  const jwks = await startJwksServer(jwksOf(es));
  if (jwksStatus !== 200) jwks.setBody('{"error":"down"}', jwksStatus);
  const collector = await new Collector().start();
  const yaml = `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwks.url}
    allow_insecure_http: true
    cooldown: 0s
delegation: { trusted_domains: [prod.example.org] }
exempt: [{ method: GET, path: /healthz }]
events:
  sinks: [http]
  http: { url: "${collector.url}", batch_size: 7, flush_interval: 20ms }
  ${events}
${extra}`;
  const parsed = parseConfig(yaml, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const logs: string[] = [];
  const running = await startServer(parsed.config, {
    clock: { now: () => NOW_MS },
    logger: new Logger('debug', { write: (l) => void logs.push(l) }),
  });
  const client = officialClient(`127.0.0.1:${running.grpcPort}`);
  const h = { running, client, logs, collector, jwks };
  open.push(h);
  return h;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}
async function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
function value(text: string, key: string): number {
  const line = text.split('\n').find((l) => l.startsWith(key + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(key.length + 1));
}
function meta(res: OfficialCheckResponse, name: string): unknown {
  const v = res.dynamic_metadata?.fields?.[name];
  return v?.stringValue ?? v?.boolValue;
}

type Kind = 'granted' | 'missing_token' | 'malformed_token' | 'actor_mismatch' | 'exempt' | 'untrusted_issuer';
const KINDS: Kind[] = ['granted', 'missing_token', 'malformed_token', 'actor_mismatch', 'exempt', 'untrusted_issuer'];

/** One Check of a kind, with secrets in authorization and cookie; returns its answer and the token sent. */
async function checkOf(h: Harness, kind: Kind, i: number): Promise<{ res: OfficialCheckResponse; token?: string; rid: string }> {
  const rid = `rid-${kind}-${i}`;
  let token: string | undefined;
  let principal = CALLER;
  let method = 'POST';
  let path = '/v1/ledger/entries?page=2';
  switch (kind) {
    case 'granted':
      token = await signToken(es, { jti: `jti-${i}` });
      break;
    case 'malformed_token':
      token = `not.a.jwt-${i}`;
      break;
    case 'actor_mismatch':
      token = await signToken(es, { jti: `jti-${i}` });
      principal = INTRUDER;
      break;
    case 'exempt':
      method = 'GET';
      path = '/healthz';
      break;
    case 'untrusted_issuer':
      token = await signToken(es, { iss: 'https://evil.example', jti: `jti-${i}` });
      break;
    default:
      break;
  }
  const res = await h.client.check(
    envoyCheckRequest({
      method,
      path,
      principal,
      headers: {
        ...(token === undefined ? {} : { 'delegation-token': token }),
        authorization: AUTHZ,
        cookie: COOKIE,
        'x-request-id': rid,
      },
    }),
  );
  return { res, token, rid };
}

describe('N Checks → N events → same counts in /metrics', () => {
  it('sequential and concurrent mixed Checks: every one has exactly one event with its reason, and /metrics agrees', async () => {
    const h = await harness();
    const sent: { kind: Kind; rid: string; res: OfficialCheckResponse; token?: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const kind = KINDS[i % KINDS.length] as Kind;
      sent.push({ kind, ...(await checkOf(h, kind, i)) });
    }
    // A concurrent burst as well: counts must not depend on interleaving.
    const burst = await Promise.all(
      Array.from({ length: 60 }, (_, k) => {
        const kind = KINDS[k % KINDS.length] as Kind;
        return checkOf(h, kind, 100 + k).then((r) => ({ kind, ...r }));
      }),
    );
    sent.push(...burst);
    const N = sent.length;

    // The answers themselves carry decision + reason in dynamic_metadata (Envoy access logs).
    for (const s of sent) {
      expect(meta(s.res, 'reason')).toBe(s.kind);
      expect(meta(s.res, 'decision')).toBe(s.kind === 'granted' || s.kind === 'exempt' ? 'allow' : 'deny');
    }

    await until(() => h.collector.decisions.length >= N, `${N} events at the collector`);
    await new Promise((r) => setTimeout(r, 50)); // nothing extra trickles in
    expect(h.collector.decisions).toHaveLength(N);
    const byRid = new Map(h.collector.decisions.map((e) => [e.request_id as string, e]));
    expect(byRid.size).toBe(N); // one event per Check, none duplicated
    for (const s of sent) {
      const ev = byRid.get(s.rid);
      expect(ev, s.rid).toBeDefined();
      // Joinable with Envoy's access log: same request id, same decision and reason.
      expect(ev).toMatchObject({ event: 'hopguard.decision', v: 1, reason: s.kind, decision: meta(s.res, 'decision'), enforced: true });
    }

    const text = await scrape(h.running.adminPort);
    const counts = new Map<Kind, number>();
    for (const s of sent) counts.set(s.kind, (counts.get(s.kind) ?? 0) + 1);
    for (const [kind, n] of counts) {
      const d = kind === 'granted' || kind === 'exempt' ? 'allow' : 'deny';
      expect(value(text, `hopguard_decisions_total{decision="${d}",reason="${kind}",enforced="true"}`), kind).toBe(n);
    }
    expect(value(text, 'hopguard_check_duration_seconds_count')).toBe(N);
    expect(value(text, 'hopguard_events_dropped_total{sink="http"}')).toBe(0);
    expect(value(text, 'hopguard_events_sampled_out_total')).toBe(0);
    expect(value(text, `hopguard_jwks_refreshes_total{issuer="${ISSUER}",result="ok"}`)).toBeGreaterThanOrEqual(1);
    expect(value(text, `hopguard_jwks_keys{issuer="${ISSUER}"}`)).toBe(1);
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    // The attacker's issuer never becomes a label.
    expect(text).not.toContain('evil.example');

    // No raw token, authorization or cookie value anywhere we write.
    const everything = [...h.collector.bodies, ...h.logs, text].join('\n');
    for (const s of sent) {
      if (s.token !== undefined) {
        expect(everything).not.toContain(s.token);
        expect(everything).not.toContain(s.token.split('.')[2] as string);
      }
    }
    expect(everything).not.toContain('top-secret-bearer-value');
    expect(everything).not.toContain('very-secret-session-cookie');
  });

  it('sample_allow: 0 keeps every deny, leaves out every allow, and counts them apart from losses', async () => {
    const h = await harness({ events: 'sample_allow: 0' });
    const kinds: Kind[] = ['granted', 'exempt', 'missing_token', 'granted', 'actor_mismatch', 'exempt', 'granted'];
    for (const [i, k] of kinds.entries()) await checkOf(h, k, i);
    const denies = kinds.filter((k) => k !== 'granted' && k !== 'exempt').length;
    await until(() => h.collector.decisions.length >= denies, 'the deny events');
    await new Promise((r) => setTimeout(r, 50));
    expect(h.collector.decisions.map((e) => e.reason)).toEqual(['missing_token', 'actor_mismatch']);
    const text = await scrape(h.running.adminPort);
    expect(value(text, 'hopguard_events_sampled_out_total')).toBe(kinds.length - denies);
    expect(value(text, 'hopguard_events_dropped_total{sink="http"}')).toBe(0);
    // Every decision is still counted.
    expect(value(text, 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(3);
    expect(value(text, 'hopguard_decisions_total{decision="allow",reason="exempt",enforced="true"}')).toBe(2);
  });

  it('dry-run: answered allow, but the event and the counter carry the real deny, enforced=false', async () => {
    const h = await harness({ extra: 'mode: dry-run' });
    const { res, rid } = await checkOf(h, 'actor_mismatch', 1);
    expect(res.status?.code ?? 0).toBe(0);
    expect(meta(res, 'decision')).toBe('deny');
    expect(meta(res, 'enforced')).toBe(false);
    await until(() => h.collector.decisions.length === 1, 'the event');
    expect(h.collector.decisions[0]).toMatchObject({ request_id: rid, decision: 'deny', reason: 'actor_mismatch', enforced: false, status: 403 });
    const text = await scrape(h.running.adminPort);
    expect(value(text, 'hopguard_decisions_total{decision="deny",reason="actor_mismatch",enforced="false"}')).toBe(1);
    expect(value(text, 'hopguard_decisions_total{decision="deny",reason="actor_mismatch",enforced="true"}')).toBe(0);
  });
});

describe('readiness: /readyz and gRPC health tell the same story', () => {
  it('not ready until every issuer has keys; ready once they load; not ready while draining, yet still answering', async () => {
    const h = await harness({ jwksStatus: 500 });
    const port = h.running.adminPort;
    let r = await readyz(port);
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ ready: false, reasons: ['keys_not_loaded'], issuers_without_keys: [ISSUER] });
    expect(h.running.health.status('')).toBe('NOT_SERVING');
    expect(h.running.health.status('envoy.service.auth.v3.Authorization')).toBe('NOT_SERVING');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200); // alive all along
    let text = await scrape(port);
    expect(value(text, `hopguard_jwks_refreshes_total{issuer="${ISSUER}",result="http_status"}`)).toBeGreaterThanOrEqual(1);
    expect(h.logs.some((l) => l.includes('issuer keys could not be loaded'))).toBe(true);

    // The issuer recovers; a token for it makes the source refetch (cooldown 0s).
    h.jwks.setBody(JSON.stringify(jwksOf(es)), 200);
    const { res } = await checkOf(h, 'granted', 1);
    expect(meta(res, 'reason')).toBe('granted');
    expect(h.running.health.status('')).toBe('SERVING'); // pushed by the key source's report
    r = await readyz(port);
    expect(r).toEqual({ status: 200, body: { ready: true } });
    text = await scrape(port);
    expect(value(text, `hopguard_jwks_keys{issuer="${ISSUER}"}`)).toBe(1);
    expect(value(text, `hopguard_jwks_last_success_timestamp_seconds{issuer="${ISSUER}"}`)).toBe(NOW_MS / 1000);

    // Drain: readiness false at once on both probes, Checks still answered meanwhile.
    const stopping = h.running.stop(2000, 60_000);
    r = await readyz(port);
    expect(r.status).toBe(503);
    expect(r.body.reasons).toEqual(['draining']);
    expect(h.running.health.status('')).toBe('NOT_SERVING');
    const during = await checkOf(h, 'granted', 2);
    expect(meta(during.res, 'reason')).toBe('granted');
    h.running.endDrain();
    await stopping;
    // Both events were flushed before stop() resolved.
    expect(h.collector.decisions.map((e) => e.reason)).toEqual(['granted', 'granted']);
  });
});
