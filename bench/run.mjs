// `npm run bench`: hopguard against baselines measured in the same run, on this machine.
// Prints ratios, never asserts timings (CI does not run this). See bench/RESULTS.md.
//
// Servers (each its own process; CPU and RSS read from /proc):
//   hopguard   — `node dist/main.js serve` with a real config and a real JWKS over loopback HTTP
//   base-ok    — bench/baseline-server.mjs ok   (grpc-js ceiling: answers OK, reads nothing)
//   base-jose  — bench/baseline-server.mjs jose (one jose ES256 verify per request)
// Load: h2load (Debian nghttp2-client) for fixed bodies; bench/driver.mjs for unique tokens.
// h2load cannot see gRPC status, so every run is bracketed by a real gRPC Check of the same
// request asserting the expected decision.
//
//   redis      — Debian's redis-server on loopback (replay case: the shared replay store)
// Footprint and fixed-rate latency (bench/footprint.mjs): hopguard with a three-issuer
// file-JWKS config against base-ok; start-up, idle RSS, RSS after load, h2load --rps.
//
// Options: --only=hot,latency,deny,unique,replay,memory,exchange,footprint,rate  --rounds=3
//          --n=30000  --n-latency=4000  --n-unique=20000  --n-memory=100000  --settle=60 (s of
//          idle watched after the memory load)  --cpu-prof=DIR (hopguard under node
//          --cpu-prof; then node bench/profile.mjs DIR)
//          footprint/rate: --rate-seconds=10 (measured per rate run)  --load-seconds=10 (per
//          rate in the footprint case)  --allocators=glibc,jemalloc (footprint)
//          --compare=OTHER/dist/main.js[::NODE_OPTIONS][,…] (more hopguard builds alongside,
//          e.g. main's; `::--max-semi-space-size=2` runs one with those Node/V8 flags)
//          --node-options="…" (NODE_OPTIONS for the hopguard servers only, e.g. the image's)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { authorizationServiceDefinition } from '../dist/envoy/proto.js';
import { generateSigningKey, mintToken } from '../dist/token/mint.js';
import { x5tS256 } from '../dist/core/cert.js';
import { benchClaims, CALLER, ISSUER, WORKLOAD } from './claims.mjs';
import { drive } from './driver.mjs';
import { footprintCase, formatFootprint, formatRate, rateCase, stopServer, writeThreeIssuerConfig } from './footprint.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// --key=value (the value may hold '=' itself: --node-options=--max-semi-space-size=2).
const args = new Map(process.argv.slice(2).map((a) => /^(?:--)?([^=]*)(?:=(.*))?$/s.exec(a).slice(1)));
const ROUNDS = Number(args.get('rounds') ?? 3);
const N_HOT = Number(args.get('n') ?? 30000);
const N_LAT = Number(args.get('n-latency') ?? 4000);
const N_UNIQUE = Number(args.get('n-unique') ?? 20000);
const N_MEMORY = Number(args.get('n-memory') ?? 100000);
const ONLY = args.get('only')?.split(',');
// --cpu-prof=DIR: hopguard runs under `node --cpu-prof`; summarize with bench/profile.mjs DIR.
const CPU_PROF = args.get('cpu-prof');
const SETTLE_S = Number(args.get('settle') ?? 60);
// --node-options="…": NODE_OPTIONS for every hopguard server (not the baselines, not h2load).
const HG_NODE_OPTIONS = args.get('node-options');
const hgNodeEnv = HG_NODE_OPTIONS !== undefined ? { NODE_OPTIONS: HG_NODE_OPTIONS } : {};
// The machine's load when the run starts (the figures are only as quiet as the machine).
const LOADAVG = loadavg().map((x) => x.toFixed(2)).join(' ');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

// The token exchange (hopguard sts) is its own script: HTTPS, no h2load.
if (ONLY?.length === 1 && ONLY[0] === 'exchange') {
  await import('./exchange.mjs');
  process.exit(0);
}

const CERT = readFileSync(path.join(ROOT, 'test/fixtures/core-caller-cert.pem'), 'utf8');

/** Child processes to end if the bench dies half-way (servers, redis-server). */
const children = new Set();
function die(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}
try {
  execFileSync('h2load', ['--version'], { stdio: 'ignore' });
} catch {
  die('h2load not found: apt-get install -y nghttp2-client');
}

// ---- fixtures ------------------------------------------------------------------------
const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-bench-'));
const signer = await generateSigningKey('ES256', 'bench-1');
const jwksDoc = JSON.stringify({ keys: [signer.publicJwk] });
const jwksFile = path.join(dir, 'jwks.json');
writeFileSync(jwksFile, jwksDoc);
let jwksHits = 0;
const jwksServer = http.createServer((_q, r) => {
  jwksHits++;
  r.writeHead(200, { 'content-type': 'application/json' }).end(jwksDoc);
});
await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
const jwksUri = `http://127.0.0.1:${jwksServer.address().port}/jwks.json`;

function hopguardConfig(cacheEntries, extra = '') {
  return `${extra}listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
token: { cache_max_entries: ${cacheEntries} }
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwksUri}
    allow_insecure_http: true
    algorithms: [ES256]
    max_lifetime: 3600s
delegation: { trusted_domains: [bench.example.org] }
exempt: [{ method: GET, path: /healthz }]
shutdown: { drain: 0s }
`;
}

const nowS = Math.floor(Date.now() / 1000);
const thumb = x5tS256(encodeURIComponent(CERT));
let jti = 0;
const mint = () =>
  mintToken({ key: signer.privateKey, alg: 'ES256', kid: signer.kid, claims: benchClaims({ nowS, jti: `bench-${jti++}`, thumb }) });

/** A CheckRequest as Envoy fills it: ~15 headers, raw path with query, principal, URL-encoded PEM. */
function checkRequest(token) {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '10.0.3.7', port_value: 41234 } },
        principal: CALLER,
        certificate: encodeURIComponent(CERT),
      },
      destination: { principal: WORKLOAD },
      request: {
        time: { seconds: String(nowS), nanos: 0 },
        http: {
          id: '7265918235432467845',
          method: 'POST',
          path: '/v1/ledger/entries?idempotency=8c1f',
          host: 'ledger.payments.svc.cluster.local',
          scheme: 'https',
          protocol: 'HTTP/2',
          headers: {
            ':authority': 'ledger.payments.svc.cluster.local',
            ':method': 'POST',
            ':path': '/v1/ledger/entries?idempotency=8c1f',
            ':scheme': 'https',
            'content-type': 'application/json',
            'content-length': '128',
            'user-agent': 'orders/1.14.2 grpc-go/1.66',
            accept: 'application/json',
            'accept-encoding': 'gzip',
            'x-request-id': '3f0a3c52-7b6e-4b8e-9a2c-2f3d1c0b9e11',
            traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
            'x-forwarded-proto': 'https',
            'x-forwarded-for': '10.0.3.7',
            'x-forwarded-client-cert': 'By=spiffe://bench.example.org/ns/payments/sa/ledger;Hash=abc;URI=' + CALLER,
            'x-envoy-expected-rq-timeout-ms': '1000',
            'delegation-token': token,
          },
        },
      },
      context_extensions: {},
    },
  };
}

const serialize = authorizationServiceDefinition.Check.requestSerialize;
function frame(token) {
  const msg = serialize(checkRequest(token));
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  msg.copy(f, 5);
  return f;
}

// ---- processes -----------------------------------------------------------------------
function stat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  return { cpuUs: (ticks * 1e6) / CLK_TCK, rss };
}

/** Debian's libjemalloc2, found as the Dockerfile finds it (the image preloads it). */
function debianJemalloc() {
  try {
    const files = execFileSync('dpkg', ['-L', 'libjemalloc2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return files.split('\n').find((f) => /\/libjemalloc\.so\.2$/.test(f));
  } catch {
    return undefined;
  }
}
const JEMALLOC = debianJemalloc();

async function startHopguard(cacheEntries = 10000, env = {}, extra = '', name = 'hopguard') {
  const cfg = path.join(dir, `${name}-${cacheEntries}.yaml`);
  writeFileSync(cfg, hopguardConfig(cacheEntries, extra));
  // Decision events go to /dev/null: still built and written, as in production.
  const nodeArgs = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF)}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist/main.js'), 'serve', '--config', cfg], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...hgNodeEnv, ...env },
  });
  children.add(child);
  const ports = await new Promise((resolve, reject) => {
    let buf = '';
    child.stderr.on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        try {
          const j = JSON.parse(line);
          if (j.msg === 'serving') resolve({ grpc: j.grpc, admin: j.admin });
        } catch {
          // not a JSON log line
        }
      }
    });
    child.once('exit', (c) => reject(new Error(`hopguard exited ${c}: ${buf}`)));
  });
  return { name, child, port: ports.grpc, admin: ports.admin };
}

async function startBaseline(mode) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench/baseline-server.mjs'), mode, jwksFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  return { name: `base-${mode}`, child, port };
}

const Client = grpc.makeGenericClientConstructor(authorizationServiceDefinition, 'Authorization');
async function probe(port, token) {
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    return await new Promise((res, rej) =>
      c.Check(checkRequest(token), { deadline: Date.now() + 5000 }, (e, r) => (e ? rej(e) : res(r))),
    );
  } finally {
    c.close();
  }
}
async function expectDecision(server, token, allow) {
  const r = await probe(server.port, token);
  const ok = (r.status?.code ?? 0) === 0;
  if (ok !== allow) die(`${server.name}: expected ${allow ? 'allow' : 'deny'}, got ${JSON.stringify(r)}`);
}

// ---- load ----------------------------------------------------------------------------
function h2load(port, frameFile, { c, m, n }) {
  const log = path.join(dir, 'h2load.log');
  writeFileSync(log, '');
  const out = execFileSync(
    'h2load',
    ['-n', String(n), '-c', String(c), '-m', String(m), '-d', frameFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--log-file', log, `http://127.0.0.1:${port}/envoy.service.auth.v3.Authorization/Check`],
    { maxBuffer: 1 << 24 },
  ).toString();
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
  const succeeded = Number(/(\d+) succeeded/.exec(out)?.[1]);
  if (succeeded !== n) die(`h2load: ${succeeded}/${n} succeeded\n${out}`);
  const lat = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]))
    .sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
  return { n, rps, p50: pct(50), p99: pct(99) };
}

async function measure(server, run) {
  const before = stat(server.child.pid);
  const r = await run();
  const after = stat(server.child.pid);
  return { ...r, cpuUsPerReq: (after.cpuUs - before.cpuUs) / r.n, rssMb: after.rss / 2 ** 20 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function summarize(runs) {
  const keys = ['rps', 'p50', 'p99', 'cpuUsPerReq', 'rssMb'];
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k]))]));
}

/** Alternating A/B rounds; each run bracketed by decision probes; median of each metric. */
async function abCase(name, pairs, load) {
  const results = Object.fromEntries(pairs.map((p) => [p.server.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of pairs) {
      await p.before?.();
      await load(p, true); // warm-up, not measured
      results[p.server.name].push(await measure(p.server, () => load(p, false)));
      await p.after?.();
    }
  }
  // Ratios per round (the two runs of a round are adjacent in time, so machine drift
  // cancels out), then the median: steadier than a ratio of medians on a noisy VM.
  const base = results[pairs[0].server.name];
  const perRound = (name, k) => median(results[name].map((r, i) => r[k] / base[i][k]));
  return {
    name,
    pairs: pairs.map((p) => ({
      server: p.server.name,
      ...summarize(results[p.server.name]),
      rpsRatio: perRound(p.server.name, 'rps'),
      p99Ratio: perRound(p.server.name, 'p99'),
      rpsRatios: results[p.server.name].map((r, i) => r.rps / base[i].rps),
      rpsList: results[p.server.name].map((r) => r.rps),
      cpuList: results[p.server.name].map((r) => r.cpuUsPerReq),
    })),
  };
}

// ---- cases ---------------------------------------------------------------------------
const hot = await mint();
const garbage = 'eyJhbGciOiJFUzI1NiJ9.' + Buffer.from(crypto.getRandomValues(new Uint8Array(300))).toString('base64url') + '.AAAA';
const hotFile = path.join(dir, 'hot.bin');
writeFileSync(hotFile, frame(hot));
const garbageFile = path.join(dir, 'garbage.bin');
writeFileSync(garbageFile, frame(garbage));

const cases = [];
const want = (name) => !ONLY || ONLY.includes(name);
// The throughput cases share one hopguard (JWKS over HTTP) and the two baselines.
const saturation = ['hot', 'latency', 'deny', 'unique'].some(want);
const hg = saturation ? await startHopguard() : undefined;
const ok = saturation ? await startBaseline('ok') : undefined;
const jose = saturation ? await startBaseline('jose') : undefined;
const bracket = (server, token, allow) => ({
  server,
  before: () => expectDecision(server, token, allow),
  after: () => expectDecision(server, token, allow),
});

if (want('hot')) {
  cases.push(
    await abCase('hot token, c=4 m=10', [bracket(ok, hot, true), bracket(hg, hot, true)], (p, warm) =>
      h2load(p.server.port, hotFile, { c: 4, m: 10, n: warm ? 3000 : N_HOT }),
    ),
  );
}
if (want('latency')) {
  cases.push(
    await abCase('hot token, c=1 m=1 (latency)', [bracket(ok, hot, true), bracket(hg, hot, true)], (p, warm) =>
      h2load(p.server.port, hotFile, { c: 1, m: 1, n: warm ? 500 : N_LAT }),
    ),
  );
}
if (want('deny')) {
  cases.push(
    await abCase('deny path (garbage token), c=4 m=10', [bracket(ok, garbage, true), bracket(hg, garbage, false)], (p, warm) =>
      h2load(p.server.port, garbageFile, { c: 4, m: 10, n: warm ? 3000 : N_HOT }),
    ),
  );
}
if (want('unique')) {
  process.stderr.write(`bench: minting ${N_UNIQUE * ROUNDS * 2 + 4000} unique tokens…\n`);
  const fresh = async (k) => Promise.all(Array.from({ length: k }, async () => frame(await mint())));
  const pairs = [
    { ...bracket(jose, hot, true), frames: [] },
    { ...bracket(hg, hot, true), frames: [] },
  ];
  const load = async (p, warm) => {
    const frames = await fresh(warm ? 2000 : N_UNIQUE); // never reused: every request is a cache miss
    const r = await drive({ port: p.server.port, frames, c: 4, m: 10, n: frames.length });
    if (r.checkStatus['0'] !== frames.length) {
      die(`${p.server.name}: not all unique tokens allowed: grpc ${JSON.stringify(r.grpcStatus)}, decisions ${JSON.stringify(r.checkStatus)}`);
    }
    return r;
  };
  cases.push(await abCase('unique tokens (every request a new valid token), c=4 m=10, driver', pairs, load));
}

/** SIGTERM and wait for the exit (a --cpu-prof profile is written on the way out). */
const stop = stopServer;
// Replay protection on every Check, unique tokens (each one a first use, so each one a
// store write): the shared Redis store on loopback against the in-memory store, same run.
// The Redis server is Debian's redis-server, started here on a free port.
let redisServer;
if (want('replay')) {
  redisServer = await startRedis();
  const replayYaml = (store) =>
    // timeout 1s, not the 50ms default: this measures what the store costs, and a bench
    // machine busy with the load generator must not turn a slow reply into a failed run.
    // max_entries: every round spends N_UNIQUE fresh tokens that stay live for their
    // lifetime, so the default 100k would fill up (fail closed: internal_error) by round 5.
    `replay: { enabled: true, max_entries: 1000000, store: ${store}${store === 'redis' ? `, redis: { url: "redis://127.0.0.1:${redisServer.port}/0", timeout: 1s }` : ''} }\n`;
  const mem = await startHopguard(10000, {}, replayYaml('memory'), 'replay-memory');
  const red = await startHopguard(10000, {}, replayYaml('redis'), 'replay-redis');
  // A fresh token per probe: with replay on, a probe token is spent by its first Check.
  const probeFresh = (server) => ({
    server,
    before: async () => expectDecision(server, await mint(), true),
    after: async () => expectDecision(server, await mint(), true),
  });
  process.stderr.write(`bench: minting ${N_UNIQUE * ROUNDS * 2 + 4000} unique tokens for the replay case…\n`);
  const fresh = async (k) => Promise.all(Array.from({ length: k }, async () => frame(await mint())));
  const redisCpu = [];
  const load = async (p, warm) => {
    const frames = await fresh(warm ? 2000 : N_UNIQUE);
    const before = p.server === red && !warm ? stat(redisServer.child.pid).cpuUs : undefined;
    const r = await drive({ port: p.server.port, frames, c: 4, m: 10, n: frames.length });
    if (before !== undefined) redisCpu.push((stat(redisServer.child.pid).cpuUs - before) / r.n);
    if (r.checkStatus['0'] !== frames.length) {
      die(`${p.server.name}: not every first use allowed: grpc ${JSON.stringify(r.grpcStatus)}, decisions ${JSON.stringify(r.checkStatus)}`);
    }
    return r;
  };
  const c = await abCase('replay on, unique tokens: redis store (loopback) vs memory store, c=4 m=10, driver', [probeFresh(mem), probeFresh(red)], load);
  c.redisCpuUsPerReq = median(redisCpu);
  cases.push(c);
  await Promise.all([mem, red].map(stop));
}

/** Debian's redis-server on a free loopback port, no persistence (the replay case). */
async function startRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    die('redis-server not found: apt-get install -y redis-server');
  }
  const port = await new Promise((resolve) => {
    const srv = http.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  return { name: 'redis', child, port };
}

await Promise.all([hg, ok, jose, redisServer].filter((s) => s !== undefined).map(stop));

// Footprint and fixed-rate latency: their own fresh servers (bench/footprint.mjs).
const footprints = [];
let rate;
if (want('footprint') || want('rate')) {
  const fctx = {
    root: ROOT,
    dir,
    die,
    children,
    stat,
    expectDecision,
    hotToken: hot,
    hotFile,
    jemalloc: JEMALLOC,
    footprintConfig: await writeThreeIssuerConfig(dir, signer.publicJwk),
  };
  const servers = [{ name: 'base-ok', kind: 'base-ok' }, { name: 'hopguard', kind: 'hopguard', nodeOptions: HG_NODE_OPTIONS }];
  // --compare=A/dist/main.js,B/dist/main.js: more hopguard builds, each named by its directory.
  if (args.has('compare')) {
    for (const item of args.get('compare').split(',')) {
      const [main, nodeOptions] = item.split('::');
      const name = `hopguard@${path.basename(path.resolve(main, '../..'))}${nodeOptions ? ` ${nodeOptions}` : ''}`;
      servers.push({ name, kind: 'hopguard', main: path.resolve(main), nodeOptions });
    }
  }
  if (want('footprint')) {
    const allocators = (args.get('allocators') ?? (JEMALLOC ? 'glibc,jemalloc' : 'glibc')).split(',');
    for (const allocator of allocators) {
      if (allocator === 'jemalloc' && JEMALLOC === undefined) die('libjemalloc2 not installed (apt-get install -y libjemalloc2)');
      footprints.push(await footprintCase(fctx, { allocator, rounds: ROUNDS, loadS: Number(args.get('load-seconds') ?? 10), servers }));
    }
  }
  if (want('rate')) rate = await rateCase(fctx, { rounds: ROUNDS, seconds: Number(args.get('rate-seconds') ?? 10), servers });
}

// The memory case runs once per allocator: glibc's malloc (plain `node dist/main.js`) and,
// when Debian's libjemalloc2 is installed, jemalloc as the Docker image preloads it.
const memory = [];
async function memoryCase(allocator, frames) {
  // As the Dockerfile sets them: the library, and its background purging thread.
  const env = allocator === 'jemalloc' ? { LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'background_thread:true' } : {};
  const big = await startHopguard(N_MEMORY, env);
  const idle = stat(big.child.pid).rss / 2 ** 20;
  const r = await drive({ port: big.port, frames, c: 4, m: 10, n: frames.length });
  if (r.checkStatus['0'] !== frames.length) {
    die(`memory case (${allocator}): not all allowed: grpc ${JSON.stringify(r.grpcStatus)}, decisions ${JSON.stringify(r.checkStatus)}`);
  }
  await new Promise((res) => setTimeout(res, 2000));
  const afterLoadRss = stat(big.child.pid).rss / 2 ** 20;
  // V8 shrinks its heap only when allocation stops (the memory reducer, seconds later):
  // RSS right after the load still holds the load's garbage. Watch an idle window and
  // keep the lowest reading as the settled figure.
  let settledRss = afterLoadRss;
  for (let t = 0; t < SETTLE_S; t += 5) {
    await new Promise((res) => setTimeout(res, 5000));
    settledRss = Math.min(settledRss, stat(big.child.pid).rss / 2 ** 20);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${big.admin}/metrics`).catch(() => null))?.text?.();
  const misses = Number(/hopguard_token_cache_lookups_total\{result="miss"\} (\d+)/.exec(metrics ?? '')?.[1] ?? NaN);
  const gauge = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, 'm').exec(metrics ?? '')?.[1] ?? NaN) / 2 ** 20;
  memory.push({
    allocator,
    tokens: N_MEMORY,
    idleRssMb: idle,
    rssMb: afterLoadRss,
    settledRssMb: settledRss,
    cacheMisses: misses,
    heapUsedMb: gauge('nodejs_heap_size_used_bytes'),
    heapTotalMb: gauge('nodejs_heap_size_total_bytes'),
    externalMb: gauge('nodejs_external_memory_bytes'),
  });
  await stop(big);
}
if (want('memory')) {
  process.stderr.write(`bench: minting ${N_MEMORY} tokens for the memory case…\n`);
  const frames = [];
  for (let i = 0; i < N_MEMORY; i += 5000) {
    frames.push(...(await Promise.all(Array.from({ length: Math.min(5000, N_MEMORY - i) }, async () => frame(await mint())))));
  }
  // The same distinct tokens for both allocators: each server starts with an empty cache.
  await memoryCase('glibc', frames);
  if (JEMALLOC !== undefined) await memoryCase('jemalloc', frames);
  else process.stderr.write('bench: libjemalloc2 not installed (apt-get install -y libjemalloc2): memory case on glibc only\n');
}
jwksServer.close();

// ---- report --------------------------------------------------------------------------
const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
const lines = [];
lines.push(`machine: ${cpus().length}× ${cpus()[0]?.model ?? '?'}, node ${process.version}, ${new Date().toISOString()}`);
lines.push(`rounds: ${ROUNDS} alternating A/B (median), JWKS fetches during the run: ${jwksHits}, load average at the start: ${LOADAVG}`);
if (cases.length > 0) {
  lines.push('');
  lines.push('Ratios are medians of per-round ratios (each round runs the baseline and hopguard back to back).');
  lines.push('');
  lines.push('| case | server | req/s | p50 µs | p99 µs | CPU µs/req | RSS MB | req/s ratio | p99 ratio |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of cases) {
    for (const p of c.pairs) {
      lines.push(
        `| ${c.name} | ${p.server} | ${fmt(p.rps)} | ${fmt(p.p50)} | ${fmt(p.p99)} | ${fmt(p.cpuUsPerReq, 1)} | ${fmt(p.rssMb)} | ${fmt(p.rpsRatio, 2)} | ${fmt(p.p99Ratio, 2)} |`,
      );
    }
  }
  lines.push('');
  for (const c of cases) {
    const hg = c.pairs[c.pairs.length - 1];
    lines.push(`per-round req/s ratios, ${c.name}: ${hg.rpsRatios.map((r) => fmt(r, 2)).join(' ')}`);
    if (process.env.BENCH_VERBOSE) for (const p of c.pairs) lines.push(`  ${p.server} req/s: ${p.rpsList.map((r) => fmt(r)).join(' ')}; CPU us/req: ${p.cpuList.map((r) => fmt(r)).join(' ')}`);
  }
}
for (const c of cases) {
  if (c.redisCpuUsPerReq === undefined) continue;
  const [m, r] = c.pairs;
  lines.push('');
  lines.push(
    `replay store: redis on loopback adds ${fmt(r.p50 - m.p50)} µs at p50 and ${fmt(r.p99 - m.p99)} µs at p99 per Check over the memory store ` +
      `(req/s ratio ${fmt(r.rpsRatio, 2)}); hopguard CPU ${fmt(r.cpuUsPerReq, 1)} vs ${fmt(m.cpuUsPerReq, 1)} µs/req, plus redis-server ${fmt(c.redisCpuUsPerReq, 1)} µs/req`,
  );
}
for (const f of footprints) lines.push('', ...formatFootprint(f));
if (rate !== undefined) lines.push('', ...formatRate(rate));
for (const m of memory) {
  lines.push('');
  lines.push(
    `memory (${m.allocator === 'jemalloc' ? 'jemalloc, as the image runs' : "glibc malloc"}): ${m.tokens} distinct cached tokens → RSS ${fmt(m.rssMb)} MB right after the load, ` +
      `${fmt(m.settledRssMb)} MB lowest in the ${SETTLE_S} s idle window after (idle before the load ${fmt(m.idleRssMb)} MB; ` +
      `V8 heap used ${fmt(m.heapUsedMb)} of ${fmt(m.heapTotalMb)} MB, external ${fmt(m.externalMb)} MB; cache misses counted: ${m.cacheMisses})`,
  );
}
const report = lines.join('\n');
process.stdout.write(report + '\n');
writeFileSync(path.join(ROOT, 'bench/last-run.md'), report + '\n');

// The token exchange last (its own servers; see bench/exchange.mjs), when asked for or in a full run.
if (want('exchange')) await import('./exchange.mjs');
