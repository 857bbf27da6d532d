#!/usr/bin/env node
/**
 * Throughput and memory of `hopguard audit verify` on a large single chain (a script, not a
 * test). Generates N decision events (default 1,000,000) through the real audit chain with a
 * checkpoint every 10,000 events and a final one, writes them to a temporary NDJSON file
 * (optionally gzip), then runs the built CLI on it in a child process and prints the
 * throughput and the child's peak RSS.
 *
 *   npm run build && node scripts/audit-verify-bench.mjs [--events N] [--gzip] [--keep] [--max-old-space MB]
 *
 * The child's peak RSS is `process.resourceUsage().maxRSS`, read in the child right after the
 * verification finishes; CPU time is reported beside wall time (a shared machine slows the
 * wall clock, not the CPU time).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { exportJWK } from 'jose';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    gzip: { type: 'boolean' },
    keep: { type: 'boolean' },
    // Caps the verifier's V8 old space (MB): passing with a small cap shows memory does not grow with the file.
    'max-old-space': { type: 'string' },
  },
});
const N = Number(values.events);
if (!Number.isSafeInteger(N) || N < 1) throw new Error('--events: a positive integer');

const { AuditLog } = await import(path.join(ROOT, 'dist/telemetry/audit-log.js'));
const { signerFromJwk } = await import(path.join(ROOT, 'dist/audit/checkpoint.js'));

const dir = await mkdtemp(path.join(tmpdir(), 'hg-audit-bench-'));
const file = path.join(dir, values.gzip ? 'events.ndjson.gz' : 'events.ndjson');
const jwks = path.join(dir, 'jwks.json');

const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const priv = { ...(await exportJWK(pair.privateKey)), kid: 'bench' };
await writeFile(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }] }));
const signer = await signerFromJwk(priv);

// ---- generate --------------------------------------------------------------------------
const out = createWriteStream(values.gzip ? file + '.tmp' : file);
const gz = values.gzip ? createGzip({ level: 1 }) : undefined;
const dest = gz ?? out;
if (gz) gz.pipe(out);
let buffered = [];
const sink = {
  name: 'file',
  write: (l) => (buffered.push(l), true),
  dropped: () => 0,
  flush: async () => {},
};
let now = Date.parse('2026-11-27T10:00:00.000Z');
const log = new AuditLog({
  sinks: [sink],
  workload: 'spiffe://prod.example.org/ns/payments/sa/ledger',
  version: 'bench',
  now: () => now,
  signer: () => signer,
  checkpointIntervalMs: 2 ** 31 - 1,
  timers: { setTimeout: () => undefined, clearTimeout: () => undefined },
});
const t0 = performance.now();
log.start();
const write = async () => {
  if (buffered.length === 0) return;
  const chunk = buffered.join('');
  buffered = [];
  if (!dest.write(chunk)) await new Promise((r) => dest.once('drain', r));
};
for (let i = 1; i <= N; i++) {
  now += 1;
  log.appendObject({
    event: 'hopguard.decision',
    v: 1,
    ts: new Date(now).toISOString(),
    decision: i % 7 === 0 ? 'deny' : 'allow',
    enforced: true,
    reason: i % 7 === 0 ? 'grant_mismatch' : 'granted',
    status: i % 7 === 0 ? 403 : 200,
    request_id: `7d4c1a2e-${i.toString(16).padStart(8, '0')}-4b1f-9c3e-${(i * 7919).toString(16).padStart(12, '0')}`,
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    method: 'POST',
    path: '/v1/ledger/entries',
    workload: 'spiffe://prod.example.org/ns/payments/sa/ledger',
    caller: 'spiffe://prod.example.org/ns/shop/sa/orders',
    iss: 'https://sts.prod.example.org',
    kid: 'k1',
    sub: 'user:alice',
    actors: ['spiffe://prod.example.org/ns/shop/sa/orders', 'spiffe://prod.example.org/ns/edge/sa/gateway'],
    jti: `jti-${i}`,
    txn: 'txn-8c1f',
    token_sha256: 'b'.repeat(64),
    latency_us: 40 + (i % 50),
  });
  if (i % 10_000 === 0) log.checkpoint();
  log.write();
  if (buffered.length >= 4096) await write();
}
await log.close(0);
await write();
await new Promise((r) => dest.end(r));
if (gz) await new Promise((r) => out.on('close', r));
if (values.gzip) execFileSync('mv', [file + '.tmp', file]);
const genMs = performance.now() - t0;
const size = (await stat(file)).size;
const events = log.chain.length;

// ---- verify (the built CLI, in a child process) ----------------------------------------
const child = `
const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist/main.js'))});
let out = '';
const t = performance.now();
const code = await main(['audit', 'verify', '--json', '--jwks', ${JSON.stringify(jwks)}, ${JSON.stringify(file)}], { out: (s) => (out += s), err: (s) => process.stderr.write(s) });
const ms = performance.now() - t;
const u = process.resourceUsage();
process.stdout.write(JSON.stringify({ code, ms, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, maxRssKb: u.maxRSS, report: JSON.parse(out) }));
`;
const heapCap = values['max-old-space'] !== undefined ? [`--max-old-space-size=${Number(values['max-old-space'])}`] : [];
const r = spawnSync(process.execPath, [...heapCap, '--input-type=module', '-e', child], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (r.status !== 0) {
  process.stderr.write(r.stderr);
  throw new Error(`verifier process failed (${r.status})`);
}
const res = JSON.parse(r.stdout);
const c = res.report.chains[0];
const mb = size / 1024 / 1024;
console.log(`node ${process.version}, ${values.gzip ? 'gzip' : 'plain'} NDJSON${heapCap.length > 0 ? `, verifier ${heapCap[0]}` : ''}`);
console.log(`generated ${events} events (${mb.toFixed(0)} MiB on disk) in ${(genMs / 1000).toFixed(1)} s`);
console.log(
  `verify: exit ${res.code}, ${c.events} events, ${c.checkpoints} checkpoints, closed ${c.closed}, gaps ${c.gaps.length}, broken ${c.broken_links.length}`,
);
console.log(
  `verify: ${(res.ms / 1000).toFixed(1)} s wall = ${Math.round(events / (res.ms / 1000))} events/s, ${(mb / (res.ms / 1000)).toFixed(1)} MiB/s; ` +
    `${(res.cpuMs / 1000).toFixed(1)} s CPU = ${Math.round(events / (res.cpuMs / 1000))} events per CPU-second; peak RSS ${(res.maxRssKb / 1024).toFixed(0)} MiB`,
);
if (res.code !== 0 || c.events !== events || !c.closed) throw new Error('unexpected verification result');
if (values.keep) console.log(`kept ${file} and ${jwks}`);
else await rm(dir, { recursive: true, force: true });
