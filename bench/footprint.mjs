// The sidecar's cost at ordinary rates, for `npm run bench` (bench/run.mjs): what a pod pays
// with hopguard in it, side by side with base-ok, the simplest grpc-js + proto-loader Check
// server, in the same run.
//
//   footprint — fresh processes every round: start-up (spawn → hopguard ready with a file
//               JWKS; spawn → base-ok listening), RSS 8 s after spawn before any request,
//               then 10 s at 100 req/s and 10 s at 1000 req/s and the RSS right after.
//               Once per allocator: glibc's malloc (`node dist/main.js`) and jemalloc as the
//               Docker image preloads it (both servers on the same allocator).
//   rate      — h2load --rps (4 connections): 100 and 1000 req/s, p50/p99/p99.9 of each run,
//               hopguard and base-ok alternating within each round.
//
// hopguard runs a real config with three issuers, each with its own jwks_file, and is sent
// the Envoy-shaped hot-token Check of the other cases; its decision events go to /dev/null
// (built and written, as in production). Every load run is bracketed by a real gRPC Check
// asserting the decision (h2load cannot see gRPC status).
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { generateSigningKey } from '../dist/token/mint.js';
import { ISSUER, WORKLOAD } from './claims.mjs';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The three-issuer config: ISSUER signs the bench tokens (its key is `signerJwk`); two more
 * issuers with keys of their own, as a sidecar trusting a few STSs would run.
 */
export async function writeThreeIssuerConfig(dir, signerJwk) {
  const issuers = [{ iss: ISSUER, jwk: signerJwk }];
  for (const n of [2, 3]) {
    const k = await generateSigningKey('ES256', `other-${n}`);
    issuers.push({ iss: `https://sts-${n}.bench.example.org`, jwk: k.publicJwk });
  }
  const entries = issuers.map(({ iss, jwk }, i) => {
    const file = path.join(dir, `footprint-jwks-${i + 1}.json`);
    writeFileSync(file, JSON.stringify({ keys: [jwk] }));
    return `  - issuer: ${iss}\n    jwks_file: ${file}\n    algorithms: [ES256]\n    max_lifetime: 3600s\n`;
  });
  const cfg = path.join(dir, 'footprint.yaml');
  writeFileSync(
    cfg,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
${entries.join('')}delegation: { trusted_domains: [bench.example.org] }
exempt: [{ method: GET, path: /healthz }]
shutdown: { drain: 0s, grace: 2s }
`,
  );
  return cfg;
}

/**
 * Spawns a server and resolves once it is ready: hopguard when its `serving` log line says
 * ready (else when /readyz answers 200), base-ok when it prints its port.
 */
export async function spawnTimed(ctx, kind, { env = {}, main, nodeOptions } = {}) {
  const t0 = performance.now();
  const isHopguard = kind !== 'base-ok';
  const args = isHopguard
    ? [main ?? path.join(ctx.root, 'dist/main.js'), 'serve', '--config', ctx.footprintConfig]
    : [path.join(ctx.root, 'bench/baseline-server.mjs'), 'ok'];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', isHopguard ? 'ignore' : 'pipe', isHopguard ? 'pipe' : 'inherit'],
    // nodeOptions: V8/Node flags for this hopguard (as the image's NODE_OPTIONS sets them).
    env: { ...process.env, ...env, ...(nodeOptions !== undefined ? { NODE_OPTIONS: nodeOptions } : {}) },
  });
  ctx.children.add(child);
  const ready = await new Promise((resolve, reject) => {
    let buf = '';
    const stream = isHopguard ? child.stderr : child.stdout;
    stream.on('data', (d) => {
      buf += d;
      if (!isHopguard) {
        if (/^\d+\n/.test(buf)) resolve({ port: Number(buf.trim()), at: performance.now() });
        return;
      }
      for (const line of buf.split('\n')) {
        if (!line.includes('"serving"')) continue;
        const j = JSON.parse(line);
        resolve({ port: j.grpc, admin: j.admin, ready: j.ready === true, at: performance.now() });
      }
    });
    child.once('exit', (c) => reject(new Error(`${kind} exited ${c}: ${buf}`)));
  });
  let readyAt = ready.at;
  if (isHopguard && !ready.ready) {
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${ready.admin}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      await sleep(5);
    }
    readyAt = performance.now();
  }
  return { name: kind, child, port: ready.port, admin: ready.admin, t0, startupMs: readyAt - t0 };
}

export function stopServer(s) {
  return new Promise((resolve) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
    s.child.once('exit', resolve);
    s.child.kill('SIGTERM');
  });
}

/**
 * h2load at a fixed rate: `c` connections, each at rps/c requests per second, for `seconds`
 * after `warmup` seconds that are not logged. Up to 64 streams per connection, so a slow
 * answer never holds back the next request (the schedule stays fixed). Latency percentiles
 * from h2load's per-request log.
 */
export async function h2loadRate(ctx, port, frameFile, { c = 4, rps, seconds, warmup }) {
  const log = path.join(ctx.dir, `h2load-rate-${port}.log`);
  writeFileSync(log, '');
  const argv = [
    '-c', String(c), '-m', '64', '--rps', String(rps / c), '-D', String(seconds), '--warm-up-time', String(warmup),
    '-d', frameFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--log-file', log,
    `http://127.0.0.1:${port}${CHECK_PATH}`,
  ];
  const out = await new Promise((resolve, reject) =>
    execFile('h2load', argv, { maxBuffer: 1 << 24 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const m = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (!m || m[4] !== '0' || m[5] !== '0' || m[6] !== '0' || m[2] !== m[3]) ctx.die(`h2load --rps: not every request succeeded\n${out}`);
  const lat = (await readFile(log, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]))
    .sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
  return { n: lat.length, achievedRps: lat.length / seconds, p50: pct(50), p99: pct(99), p999: pct(99.9) };
}

/** One fixed-rate run with its CPU cost read from /proc, bracketed by decision probes. */
async function rateRun(ctx, server, rps, seconds, warmup) {
  await ctx.expectDecision(server, ctx.hotToken, true);
  const before = ctx.stat(server.child.pid);
  const r = await h2loadRate(ctx, server.port, ctx.hotFile, { rps, seconds, warmup });
  const after = ctx.stat(server.child.pid);
  await ctx.expectDecision(server, ctx.hotToken, true);
  // CPU over the whole run (warm-up included), per request sent.
  return { ...r, cpuUsPerReq: (after.cpuUs - before.cpuUs) / (r.n * (1 + warmup / seconds)) };
}

/** Scrapes /metrics once, as Prometheus does (hopguard only). */
async function scrape(server) {
  if (server.admin === undefined) return;
  await (await fetch(`http://127.0.0.1:${server.admin}/metrics`)).text();
}

const MB = 2 ** 20;

/**
 * The footprint case for one allocator. Per round, fresh processes; which server starts
 * first alternates. Start-up is timed alone (the other server idles meanwhile); idle RSS is
 * read 8 s after each server's spawn; then each takes the fixed-rate load in turn.
 */
export async function footprintCase(ctx, { allocator, rounds, idleS = 8, loadS = 10, servers }) {
  const env = allocator === 'jemalloc' ? { LD_PRELOAD: ctx.jemalloc, MALLOC_CONF: 'background_thread:true' } : {};
  const results = Object.fromEntries(servers.map((s) => [s.name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    const running = [];
    for (const s of order) {
      running.push({ spec: s, server: await spawnTimed(ctx, s.kind, { env, main: s.main, nodeOptions: s.nodeOptions }) });
    }
    const rows = new Map();
    for (const { spec, server } of running) {
      await sleep(Math.max(0, server.t0 + idleS * 1000 - performance.now()));
      rows.set(spec.name, { startupMs: server.startupMs, idleRssMb: ctx.stat(server.child.pid).rss / MB });
    }
    for (const { spec, server } of running) {
      const row = rows.get(spec.name);
      const r100 = await rateRun(ctx, server, 100, loadS, 0);
      await scrape(server);
      const r1000 = await rateRun(ctx, server, 1000, loadS, 0);
      await scrape(server);
      row.loadRssMb = ctx.stat(server.child.pid).rss / MB;
      row.cpu100 = r100.cpuUsPerReq;
      row.cpu1000 = r1000.cpuUsPerReq;
      results[spec.name].push(row);
    }
    await Promise.all(running.map(({ server }) => stopServer(server)));
  }
  return { allocator, results, base: servers[0].name, rounds };
}

/**
 * The rate case: the servers started once; per round each takes 100 then 1000 req/s (a
 * warm-up of `warmup` s, unlogged, then `seconds` measured), the order alternating.
 */
export async function rateCase(ctx, { rounds, seconds = 10, warmup = 2, servers }) {
  const started = [];
  for (const s of servers) started.push({ spec: s, server: await spawnTimed(ctx, s.kind, { main: s.main, nodeOptions: s.nodeOptions }) });
  const rates = [100, 1000];
  const results = Object.fromEntries(rates.map((r) => [r, Object.fromEntries(servers.map((s) => [s.name, []]))]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? started : [...started].reverse();
    for (const rps of rates) {
      for (const { spec, server } of order) results[rps][spec.name].push(await rateRun(ctx, server, rps, seconds, warmup));
    }
  }
  await Promise.all(started.map(({ server }) => stopServer(server)));
  return { results, base: servers[0].name, rounds, seconds };
}

// ---- report ----------------------------------------------------------------------------
const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
/** Median of the per-round ratios to the base, and their range. */
function ratio(rows, baseRows, k) {
  const rs = rows.map((r, i) => r[k] / baseRows[i][k]);
  return { med: median(rs), min: Math.min(...rs), max: Math.max(...rs), all: rs };
}
const span = (r) => `${fmt(r.med, 2)} (${fmt(r.min, 2)}–${fmt(r.max, 2)})`;

export function formatFootprint(c) {
  const lines = [];
  const label = c.allocator === 'jemalloc' ? 'jemalloc (as the image runs)' : 'glibc malloc';
  lines.push(`footprint, ${label}: ${c.rounds} rounds, fresh processes each; ratios are medians of per-round ratios (range)`);
  lines.push('');
  lines.push('| server | start-up ms | idle RSS MB (8 s) | RSS after load MB | CPU µs/req @100/s | CPU µs/req @1000/s | start-up ratio | idle RSS ratio | after-load ratio |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const base = c.results[c.base];
  for (const [name, rows] of Object.entries(c.results)) {
    const m = (k) => median(rows.map((r) => r[k]));
    lines.push(
      `| ${name} | ${fmt(m('startupMs'))} | ${fmt(m('idleRssMb'), 1)} | ${fmt(m('loadRssMb'), 1)} | ${fmt(m('cpu100'), 1)} | ${fmt(m('cpu1000'), 1)} | ` +
        `${span(ratio(rows, base, 'startupMs'))} | ${span(ratio(rows, base, 'idleRssMb'))} | ${span(ratio(rows, base, 'loadRssMb'))} |`,
    );
  }
  if (process.env.BENCH_VERBOSE) {
    for (const [name, rows] of Object.entries(c.results)) {
      lines.push(`  ${name}: start-up ms ${rows.map((r) => fmt(r.startupMs)).join(' ')}; idle ${rows.map((r) => fmt(r.idleRssMb, 1)).join(' ')}; after load ${rows.map((r) => fmt(r.loadRssMb, 1)).join(' ')}`);
    }
  }
  return lines;
}

export function formatRate(c) {
  const lines = [];
  lines.push(`rate: h2load --rps, 4 connections, ${c.seconds} s measured per run after a warm-up, ${c.rounds} rounds alternating; ratios are medians of per-round ratios (range)`);
  lines.push('');
  lines.push('| rate | server | p50 µs | p99 µs | p99.9 µs | CPU µs/req | p50 ratio | p99 ratio | p99.9 ratio |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const [rps, byServer] of Object.entries(c.results)) {
    const base = byServer[c.base];
    for (const [name, rows] of Object.entries(byServer)) {
      const m = (k) => median(rows.map((r) => r[k]));
      lines.push(
        `| ${rps}/s | ${name} | ${fmt(m('p50'))} | ${fmt(m('p99'))} | ${fmt(m('p999'))} | ${fmt(m('cpuUsPerReq'), 1)} | ` +
          `${span(ratio(rows, base, 'p50'))} | ${span(ratio(rows, base, 'p99'))} | ${span(ratio(rows, base, 'p999'))} |`,
      );
    }
  }
  if (process.env.BENCH_VERBOSE) {
    for (const [rps, byServer] of Object.entries(c.results)) {
      for (const [name, rows] of Object.entries(byServer)) {
        lines.push(`  ${rps}/s ${name}: p50 ${rows.map((r) => fmt(r.p50)).join(' ')}; p99 ${rows.map((r) => fmt(r.p99)).join(' ')}; p99.9 ${rows.map((r) => fmt(r.p999)).join(' ')}`);
      }
    }
  }
  return lines;
}
