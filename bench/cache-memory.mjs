// Retained heap per verified-token cache entry, measured in-process (deterministic, unlike
// RSS under load): N distinct bench-shaped tokens are verified through a TokenVerifier with
// a cache of N entries; the heap is measured after a full GC before and after.
// Usage: node --expose-gc bench/cache-memory.mjs [n=30000]   (after `npm run build`)
import { TokenVerifier } from '../dist/token/verifier.js';
import { StaticKeySource } from '../dist/token/sources.js';
import { tokenSha256 } from '../dist/token/hash.js';
import { generateSigningKey, mintToken } from '../dist/token/mint.js';
import { benchClaims, ISSUER } from './claims.mjs';

if (typeof globalThis.gc !== 'function') {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}
const N = Number(process.argv[2] ?? 30000);
const signer = await generateSigningKey('ES256', 'bench-1');
const nowS = Math.floor(Date.now() / 1000);
const tokens = [];
for (let i = 0; i < N; i++) {
  const jti = `bench-${i}-${Math.random().toString(36).slice(2)}`;
  const claims = benchClaims({ nowS, jti, thumb: 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' });
  tokens.push(await mintToken({ key: signer.privateKey, alg: 'ES256', kid: signer.kid, claims }));
}
const verifier = new TokenVerifier({
  issuers: [
    {
      policy: { issuer: ISSUER, algorithms: ['ES256'], typ: 'delegation+jwt', clockSkewMs: 30_000, maxLifetimeMs: 3_600_000, audienceArrays: false },
      keys: new StaticKeySource({ keys: [signer.publicJwk] }),
    },
  ],
  maxBytes: 8192,
  cache: { maxEntries: N, now: () => nowS * 1000 },
});
// Flatten the minted strings now (the first hash would, and free their pieces mid-measurement).
for (const t of tokens) tokenSha256(t);
// Warm the code paths (and the intern tables, if any) outside the measurement.
for (let i = 0; i < 100; i++) await verifier.verify(tokens[i], tokenSha256(tokens[i]));
for (let i = 0; i < 5; i++) globalThis.gc();
const before = process.memoryUsage().heapUsed;
for (let i = 100; i < N; i++) {
  // The key string is computed here, as the server does, so the entry's key is counted.
  const r = await verifier.verify(tokens[i], tokenSha256(tokens[i]));
  if (!r.ok) throw new Error(`token ${i} not verified: ${r.reason}`);
}
for (let i = 0; i < 5; i++) globalThis.gc();
const after = process.memoryUsage().heapUsed;
const n = N - 100;
if (verifier.cacheSize() !== N) throw new Error(`cache holds ${verifier.cacheSize()}, expected ${N}`);
process.stdout.write(
  `cache entries: ${n} measured; retained heap ${((after - before) / 2 ** 20).toFixed(1)} MiB = ${((after - before) / n).toFixed(0)} bytes/entry (token ${tokens[0].length} chars)\n`,
);
