// `npm run bench -- --only=exchange`: hopguard sts against a baseline in the same run.
//
//   hopguard   `node dist/main.js sts` (its own process): a hop exchange per request over
//              mTLS — subject verified as a sidecar would, decision, a new ES256 token,
//              exchange event (to /dev/null) and metrics;
//   baseline   bench/baseline-sts.mjs (its own process): the same kind of HTTPS server doing
//              one jose verify plus one jose sign per request.
//
// Load: C keep-alive mTLS connections from this process (the orders workload's certificate),
// N requests per run, A/B alternated for --rounds. Prints exchanges/s, p50/p99 latency and
// server CPU per exchange, with ratios to the baseline; asserts every answer was a 200.
// Options: --n-exchange=4000 --concurrency=8 --rounds=3 --warmup=3000 --cpu-prof=DIR (hopguard sts under
// node --cpu-prof, the baseline's profile in DIR/baseline; summarize with node bench/profile.mjs DIR)
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPki } from '../dist/lib/dev-pki.js';
import { generateSigningKey, mintToken } from '../dist/token/mint.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const N = Number(args.get('n-exchange') ?? 4000);
const C = Number(args.get('concurrency') ?? 8);
const ROUNDS = Number(args.get('rounds') ?? 3);
// Unmeasured exchanges per server before the first round: JIT and heap reach their steady
// state (without it every first round read ~0.1 lower than the later ones, both sides).
const WARMUP = Number(args.get('warmup') ?? 3000);
const CPU_PROF = args.get('cpu-prof');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const TD = 'bench.example.org';
const ISSUER = 'https://127.0.0.1';
const GATEWAY = `spiffe://${TD}/ns/edge/sa/gateway`;
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
const LEDGER = `spiffe://${TD}/ns/payments/sa/ledger`;

// ---- fixtures --------------------------------------------------------------------------
const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-bench-sts-'));
const pki = createPki('bench CA');
const server = pki.issue({ dns: ['localhost'], ips: ['127.0.0.1'] });
const orders = pki.issue({ uris: [ORDERS] });
const write = (name, text) => {
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
};
const keysDir = path.join(dir, 'keys');
mkdirSync(keysDir);
const signer = await generateSigningKey('ES256', 'bench-1');
writeFileSync(path.join(keysDir, 'bench-1.json'), JSON.stringify({ ...signer.privateJwk, iat: Math.floor(Date.now() / 1000) }));
const cfg = write(
  'sts.yaml',
  `listen: { https: 127.0.0.1:0, admin: 127.0.0.1:0 }
issuer: ${ISSUER}
tls: { cert_file: ${write('tls.crt', server.certPem)}, key_file: ${write('tls.key', server.keyPem)}, client_ca_file: ${write('ca.crt', pki.caPem)} }
signing: { keys_dir: ${keysDir} }
token: { lifetime: 3600s }
delegation: { trusted_domains: [${TD}] }
events: { sinks: [stdout] }
shutdown: { drain: 0s, grace: 1s }
`,
);
const baseCfg = write(
  'baseline.json',
  JSON.stringify({ cert: server.certPem, key: server.keyPem, ca: pki.caPem, publicJwk: signer.publicJwk, privateJwk: signer.privateJwk }),
);

// The hop subject every request exchanges: issued by the STS to orders, delegated by the gateway.
const nowS = Math.floor(Date.now() / 1000);
const subject = await mintToken({
  key: signer.privateKey,
  alg: 'ES256',
  kid: signer.kid,
  claims: {
    iss: ISSUER,
    aud: ORDERS,
    sub: 'user:bench',
    iat: nowS,
    exp: nowS + 3000,
    jti: randomUUID(),
    txn: randomUUID(),
    act: { sub: GATEWAY },
    authorization_details: [{ type: 'hop', locations: [ORDERS, LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/entries'] }],
  },
});
const body = new URLSearchParams({
  grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
  subject_token: subject,
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  audience: LEDGER,
}).toString();

// ---- processes -------------------------------------------------------------------------
function cpuUs(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

async function startSts() {
  const nodeArgs = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF)}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist/main.js'), 'sts', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stderr.on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        try {
          const j = JSON.parse(line);
          if (j.msg === 'sts serving') resolve(j.https);
        } catch {
          // not a JSON log line
        }
      }
    });
    child.once('exit', (c) => reject(new Error(`hopguard sts exited ${c}: ${buf}`)));
  });
  return { name: 'hopguard sts', child, port };
}

async function startBaseline() {
  const child = spawn(process.execPath, [...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF)}/baseline`] : []), path.join(ROOT, 'bench/baseline-sts.mjs'), baseCfg], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  return { name: 'baseline', child, port };
}

// ---- load ------------------------------------------------------------------------------
function post(agent, port) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/token', method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function run(target, n) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: C, ca: pki.caPem, cert: orders.certPem, key: orders.keyPem });
  // Warm-up: open every connection (TLS handshakes are not what is measured) and JIT.
  await Promise.all(Array.from({ length: C * 4 }, () => post(agent, target.port)));
  const lat = new Float64Array(n);
  let next = 0;
  let bad = 0;
  const cpu0 = cpuUs(target.child.pid);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: C }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        const s = process.hrtime.bigint();
        const status = await post(agent, target.port);
        lat[i] = Number(process.hrtime.bigint() - s) / 1e3;
        if (status !== 200) bad++;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuUs(target.child.pid) - cpu0;
  agent.destroy();
  if (bad > 0) throw new Error(`${target.name}: ${bad} of ${n} answers were not 200`);
  lat.sort();
  return { rps: n / seconds, p50: lat[Math.floor(n * 0.5)], p99: lat[Math.floor(n * 0.99)], cpuPer: cpu / n };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sts = await startSts();
const base = await startBaseline();
const rounds = [];
try {
  if (WARMUP > 0) {
    await run(sts, WARMUP);
    await run(base, WARMUP);
    process.stdout.write(`warm-up: ${WARMUP} exchanges each, not measured\n`);
  }
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order so drift in the machine's speed does not favour one side.
    const [first, second] = r % 2 === 0 ? [sts, base] : [base, sts];
    const a = await run(first, N);
    const b = await run(second, N);
    const h = first === sts ? a : b;
    const bl = first === sts ? b : a;
    rounds.push({ h, bl });
    process.stdout.write(
      `round ${r + 1}: hopguard ${h.rps.toFixed(0)}/s p50 ${h.p50.toFixed(0)} µs p99 ${h.p99.toFixed(0)} µs cpu ${h.cpuPer.toFixed(0)} µs | ` +
        `baseline ${bl.rps.toFixed(0)}/s p50 ${bl.p50.toFixed(0)} µs p99 ${bl.p99.toFixed(0)} µs cpu ${bl.cpuPer.toFixed(0)} µs | ratio ${(h.rps / bl.rps).toFixed(2)}×\n`,
    );
  }
} finally {
  sts.child.kill('SIGTERM');
  base.child.kill('SIGTERM');
}
const m = (f) => median(rounds.map(f));
process.stdout.write(
  [
    '',
    `exchange (hop, ES256, c=${C}, n=${N}, ${ROUNDS} round(s); medians of per-round ratios):`,
    `  throughput  hopguard ${m((x) => x.h.rps).toFixed(0)}/s vs baseline ${m((x) => x.bl.rps).toFixed(0)}/s: ${m((x) => x.h.rps / x.bl.rps).toFixed(2)}× (target ≥ 0.8×)`,
    `  p50         ${m((x) => x.h.p50).toFixed(0)} µs vs ${m((x) => x.bl.p50).toFixed(0)} µs: ${m((x) => x.h.p50 / x.bl.p50).toFixed(2)}×`,
    `  p99         ${m((x) => x.h.p99).toFixed(0)} µs vs ${m((x) => x.bl.p99).toFixed(0)} µs: ${m((x) => x.h.p99 / x.bl.p99).toFixed(2)}×`,
    `  CPU/exchange ${m((x) => x.h.cpuPer).toFixed(0)} µs vs ${m((x) => x.bl.cpuPer).toFixed(0)} µs`,
    '',
  ].join('\n'),
);
