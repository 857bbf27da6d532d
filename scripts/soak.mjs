#!/usr/bin/env node
/**
 * Soak test: drives N mixed Checks (allow, every deny reason, unique and repeated tokens,
 * replay-protected routes) over real gRPC at the REAL server — `node dist/main.js serve`
 * in a child process, events on its stdout — and records the server's RSS over time, the
 * number of decision events (none may be lost), answer correctness, and latency drift.
 *
 *   npm run build && node scripts/soak.mjs [--checks 1000000] [--concurrency 64]
 *        [--max-seconds 3600] [--sample-seconds 5] [--out soak-result.json] [--dist dist]
 *
 * Bounded in count and in time; everything binds to 127.0.0.1 only. Exit status 0 when
 * every check passed (no wrong answer, no lost event, RSS growth after warm-up < 10%).
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    checks: { type: 'string', default: '1000000' },
    concurrency: { type: 'string', default: '64' },
    'max-seconds': { type: 'string', default: '3600' },
    'sample-seconds': { type: 'string', default: '5' },
    out: { type: 'string', default: '' },
    dist: { type: 'string', default: path.join(ROOT, 'dist') },
  },
});
const N = Number(opt.checks);
const C = Number(opt.concurrency);
const MAX_MS = Number(opt['max-seconds']) * 1000;
const SAMPLE_MS = Number(opt['sample-seconds']) * 1000;

// ---------------------------------------------------------------------------------------
// Keys, tokens, config.

const ISSUER = 'https://sts.soak.example.org';
const DOWN_ISSUER = 'https://sts.down.example.org';
const WORKLOAD = 'spiffe://soak.example.org/ns/payments/sa/ledger';
const CALLER = 'spiffe://soak.example.org/ns/orders/sa/orders';
const TYP = 'delegation+jwt';

function key(kind, kid) {
  const pair = kind === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { kid, alg: kind, priv: pair.privateKey, jwk: { ...pair.publicKey.export({ format: 'jwk' }), kid, alg: kind, use: 'sig' } };
}
const ES = key('ES256', 'es-1');
const ED = key('EdDSA', 'ed-1');
const STRANGER = key('ES256', 'es-1');

const b64 = (s) => Buffer.from(s).toString('base64url');
function jws(header, payload, k = ES, alg = k.alg) {
  const input = `${b64(typeof header === 'string' ? header : JSON.stringify(header))}.${b64(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  const data = Buffer.from(input);
  const sig = alg === 'EdDSA' ? nodeSign(null, data, k.priv) : nodeSign('sha256', data, { key: k.priv, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}
const NOW = Math.floor(Date.now() / 1000);
const LIFETIME = 6 * 3600; // tokens stay valid for the whole run (wall clock)
function claims(over = {}) {
  const c = {
    iss: ISSUER,
    aud: WORKLOAD,
    sub: 'user:alice@example.org',
    iat: NOW - 5,
    exp: NOW + LIFETIME,
    jti: randomUUID(),
    act: { sub: CALLER },
    authorization_details: [{ type: 'hop', locations: [WORKLOAD], actions: ['POST'], paths: ['/v1/ledger/entries', '/v1/reports/**'] }],
    txn: 'txn-soak',
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return c;
}
const H = (k = ES) => ({ alg: k.alg, typ: TYP, kid: k.kid });
const token = (over = {}, k = ES) => jws(H(k), claims(over), k);

const dir = mkdtempSync(path.join(os.tmpdir(), 'hopguard-soak-'));
writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [ES.jwk, ED.jwk] }));
const port = await new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const REPLAY_MAX = 20_000;
writeFileSync(
  path.join(dir, 'hopguard.yaml'),
  `
listen: { grpc: "127.0.0.1:${port}", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_file: ${path.join(dir, 'jwks.json')}
    max_lifetime: 24h
  - issuer: ${DOWN_ISSUER}
    jwks_file: ${path.join(dir, 'missing-jwks.json')}
delegation:
  trusted_domains: [soak.example.org]
exempt:
  - { method: GET, path: /healthz }
replay:
  enabled: false
  max_entries: ${REPLAY_MAX}
log: { level: error }
`,
);

// ---------------------------------------------------------------------------------------
// The mix: each template yields a request and the reasons it may get.

const BASE = { method: 'POST', path: '/v1/ledger/entries?page=1', principal: CALLER };
function request({ method, path: p, principal, headers = {}, ext = {} }) {
  const http = {
    id: '1',
    method,
    path: p,
    headers: { ':method': method, ':path': p, 'x-request-id': randomUUID(), ...headers },
    protocol: 'HTTP/2',
  };
  const source = principal === undefined ? {} : { principal };
  return { attributes: { source, request: { http }, context_extensions: ext } };
}
const withToken = (t, over = {}) => request({ ...BASE, ...over, headers: { 'delegation-token': t, ...(over.headers ?? {}) } });

const POOL = 100_000; // unique allow tokens, each used once before the pool wraps
console.error(`soak: minting ${POOL} unique tokens ...`);
const pool = Array.from({ length: POOL }, () => token());
const repeated = Array.from({ length: 16 }, () => token());
const replayPool = Array.from({ length: 50_000 }, () => token());
const chain5 = { sub: CALLER, act: { sub: 'spiffe://soak.example.org/a', act: { sub: 'spiffe://soak.example.org/b', act: { sub: 'spiffe://soak.example.org/c', act: { sub: 'spiffe://soak.example.org/d' } } } } };

/** [name, weight, (n) => [request, allowedReasons]]; n counts this template's uses. */
const fixed = (reason, req) => [reason, 2, () => [req, [reason]]];
const TEMPLATES = [
  // Each pool token is first used once (unique), then again only after the pool wraps.
  ['granted (unique token)', 20, (n) => [withToken(pool[n % POOL]), ['granted']]],
  ['granted (repeated token)', 20, (n) => [withToken(repeated[n % repeated.length]), ['granted']]],
  // Replay-protected route: each token sent twice (granted, then replayed: with 64 calls in
  // flight either copy may come first); the store holds REPLAY_MAX live entries (tokens
  // live for hours), after which new tokens fail closed (internal_error).
  ['replay route', 4, (n) => [withToken(replayPool[(n >> 1) % replayPool.length], { ext: { replay: 'on' } }), ['granted', 'replayed', 'internal_error']]],
  ['exempt', 2, () => [request({ method: 'GET', path: '/healthz', principal: undefined }), ['exempt']]],
  fixed('missing_token', request(BASE)),
  fixed('multiple_tokens', withToken(`${repeated[0]},${repeated[1]}`)),
  fixed('token_too_large', withToken(token({ pad: 'x'.repeat(9000) }))),
  fixed('malformed_token', withToken('not.a.jwt!')),
  fixed('forbidden_header', withToken(jws({ ...H(), jku: 'https://evil' }, claims()))),
  fixed('untrusted_issuer', withToken(token({ iss: 'https://evil.example.org' }))),
  fixed('alg_not_allowed', withToken(`${b64(JSON.stringify({ alg: 'none', typ: TYP, kid: 'es-1' }))}.${b64(JSON.stringify(claims()))}.`)),
  fixed('bad_typ', withToken(jws({ ...H(), typ: 'JWT' }, claims()))),
  fixed('unknown_key', withToken(jws({ ...H(), kid: 'nope' }, claims()))),
  fixed('bad_signature', withToken(token({}, STRANGER))),
  fixed('keys_unavailable', withToken(token({ iss: DOWN_ISSUER }))),
  fixed('missing_claim', withToken(token({ jti: undefined }))),
  fixed('bad_claim', withToken(token({ exp: NOW + 60.5 }))),
  fixed('expired', withToken(token({ iat: NOW - 7200, exp: NOW - 3600 }))),
  fixed('not_yet_valid', withToken(token({ nbf: NOW + 3600 }))),
  fixed('issued_in_future', withToken(token({ iat: NOW + 3600, exp: NOW + 7200 }))),
  fixed('lifetime_too_long', withToken(token({ exp: NOW + 25 * 3600 }))),
  fixed('audience_mismatch', withToken(token({ aud: [WORKLOAD] }))),
  fixed('peer_unauthenticated', withToken(repeated[2], { principal: undefined })),
  fixed('actor_mismatch', withToken(repeated[3], { principal: 'spiffe://soak.example.org/ns/web/sa/web' })),
  fixed('cnf_mismatch', withToken(token({ cnf: { 'x5t#S256': 'AAAA' } }))),
  fixed('chain_invalid', withToken(token({ act: { sub: CALLER, act: { sub: 'spiffe://evil.example.org/x' } } }))),
  fixed('chain_too_deep', withToken(token({ act: chain5 }))),
  fixed('path_not_canonical', withToken(repeated[4], { path: '/v1/reports/%2e%2e/admin' })),
  fixed('grant_missing', withToken(token({ authorization_details: [] }))),
  fixed('grant_mismatch', withToken(repeated[5], { method: 'DELETE' })),
];
const totalWeight = TEMPLATES.reduce((s, t) => s + t[1], 0);
const schedule = []; // one template index per weight unit, cycled
TEMPLATES.forEach((t, idx) => {
  for (let w = 0; w < t[1]; w++) schedule.push(idx);
});
// Interleave deterministically so every window of the run sees the whole mix.
for (let i = schedule.length - 1; i > 0; i--) {
  const j = (i * 7919) % (i + 1);
  [schedule[i], schedule[j]] = [schedule[j], schedule[i]];
}

// ---------------------------------------------------------------------------------------
// The server under test.

const mainJs = path.join(path.resolve(opt.dist), 'main.js');
const child = spawn(process.execPath, [mainJs, 'serve', '--config', path.join(dir, 'hopguard.yaml')], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let events = 0;
const eventReasons = new Map();
let tail = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  const text = tail + chunk;
  let start = 0;
  for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
    const line = text.slice(start, nl);
    start = nl + 1;
    if (!line.includes('"hopguard.decision"')) continue;
    events++;
    const r = line.indexOf('"reason":"');
    if (r !== -1) {
      const reason = line.slice(r + 10, line.indexOf('"', r + 10));
      eventReasons.set(reason, (eventReasons.get(reason) ?? 0) + 1);
    }
  }
  tail = text.slice(start);
});
let stderrTail = '';
child.stderr.on('data', (d) => (stderrTail = (stderrTail + d).slice(-4000)));
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
// Interrupted: take the server down with us.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

// Official Envoy protos (devDependency @grpc/grpc-js-xds), as Envoy would speak.
const require = createRequire(import.meta.url);
const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const def = protoLoader.loadSync(['envoy/service/auth/v3/external_auth.proto'], {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
});
const Auth = grpc.makeGenericClientConstructor(def['envoy.service.auth.v3.Authorization'], 'Authorization');
const client = new Auth(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const callCheck = (req) =>
  new Promise((resolve, reject) =>
    client.Check(req, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

// Wait for the server to answer.
const readyBy = Date.now() + 30_000;
for (;;) {
  try {
    await callCheck(request({ method: 'GET', path: '/healthz' }));
    break;
  } catch (e) {
    if (Date.now() > readyBy) {
      console.error('server did not start:', e.message, stderrTail);
      child.kill('SIGKILL');
      process.exit(2);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
const warmupEvents = 1; // the readiness probe above

// ---------------------------------------------------------------------------------------
// Drive.

const started = Date.now();
let next = 0;
let done = 0;
let wrong = 0;
let errors = 0;
const wrongExamples = [];
const answers = new Map();
let window = [];
const samples = [];
const latencyByDecile = Array.from({ length: 10 }, () => []);
const uses = TEMPLATES.map(() => 0);

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
function sample() {
  const lat = window.sort((a, b) => a - b);
  samples.push({
    t_s: Math.round((Date.now() - started) / 100) / 10,
    checks: done,
    events: events - warmupEvents,
    rss_mb: Math.round(rssKb(child.pid) / 102.4) / 10,
    p50_us: Math.round(percentile(lat, 0.5)),
    p99_us: Math.round(percentile(lat, 0.99)),
    rps: Math.round(lat.length / (SAMPLE_MS / 1000)),
  });
  window = [];
  const s = samples[samples.length - 1];
  console.error(`t=${s.t_s}s checks=${s.checks} events=${s.events} rss=${s.rss_mb}MB p50=${s.p50_us}us p99=${s.p99_us}us rps=${s.rps}`);
}
const timer = setInterval(sample, SAMPLE_MS);

async function worker() {
  for (;;) {
    const i = next++;
    if (i >= N || Date.now() - started > MAX_MS) return;
    const ti = schedule[i % schedule.length];
    const t = TEMPLATES[ti];
    const [req, ok] = t[2](uses[ti]++);
    const t0 = process.hrtime.bigint();
    try {
      const res = await callCheck(req);
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      window.push(us);
      latencyByDecile[Math.min(9, Math.floor((i / N) * 10))].push(us);
      const reason = res.dynamic_metadata?.fields?.reason?.stringValue;
      const allowed = (res.status?.code ?? 0) === 0;
      answers.set(reason, (answers.get(reason) ?? 0) + 1);
      const consistent = allowed === (reason === 'granted' || reason === 'exempt');
      if (!ok.includes(reason) || !consistent) {
        wrong++;
        if (wrongExamples.length < 10) wrongExamples.push({ template: t[0], got: reason, allowed });
      }
    } catch (e) {
      errors++;
      if (wrongExamples.length < 10) wrongExamples.push({ template: t[0], error: e.message });
    }
    done++;
  }
}
await Promise.all(Array.from({ length: C }, worker));
clearInterval(timer);
sample();
const elapsedS = (Date.now() - started) / 1000;

// Every decided Check must have produced exactly one event.
const expectEvents = done - errors;
const flushBy = Date.now() + 15_000;
while (events - warmupEvents < expectEvents && Date.now() < flushBy) await new Promise((r) => setTimeout(r, 100));
const seenEvents = events - warmupEvents;
client.close();
child.kill('SIGTERM');
const killTimer = setTimeout(() => child.kill('SIGKILL'), 30_000);
const exit = await exited;
clearTimeout(killTimer);
rmSync(dir, { recursive: true, force: true });

// ---------------------------------------------------------------------------------------
// Verdict.

const warm = samples.find((s) => s.checks >= Math.min(N, done) * 0.1) ?? samples[0];
const last = samples[samples.length - 1];
const rssGrowthPct = ((last.rss_mb - warm.rss_mb) / warm.rss_mb) * 100;
const maxRss = Math.max(...samples.map((s) => s.rss_mb).filter(Number.isFinite));
const decile = (k) => {
  const a = latencyByDecile[k].sort((x, y) => x - y);
  return { p50_us: Math.round(percentile(a, 0.5)), p99_us: Math.round(percentile(a, 0.99)) };
};
const firstWarm = decile(1);
const lastDecile = decile(9);
const summary = {
  checks: done,
  elapsed_s: Math.round(elapsedS),
  rps: Math.round(done / elapsedS),
  concurrency: C,
  wrong_answers: wrong,
  grpc_errors: errors,
  events_expected: expectEvents,
  events_seen: seenEvents,
  events_lost: expectEvents - seenEvents,
  rss_mb_after_warmup: warm.rss_mb,
  rss_mb_end: last.rss_mb,
  rss_mb_max: maxRss,
  rss_growth_after_warmup_pct: Math.round(rssGrowthPct * 10) / 10,
  latency_decile_2: firstWarm,
  latency_decile_10: lastDecile,
  answers: Object.fromEntries([...answers.entries()].sort((a, b) => b[1] - a[1])),
  event_reasons: Object.fromEntries([...eventReasons.entries()].sort((a, b) => b[1] - a[1])),
  templates: TEMPLATES.length,
  mix_weight_total: totalWeight,
  server_exit: exit,
  node: process.version,
  cpus: os.cpus().length,
  wrong_examples: wrongExamples,
};
const ok = wrong === 0 && errors === 0 && summary.events_lost === 0 && rssGrowthPct < 10;
console.log(JSON.stringify({ ok, summary }, null, 2));
if (opt.out) writeFileSync(opt.out, JSON.stringify({ ok, summary, samples }, null, 2));
process.exitCode = ok ? 0 : 1;
