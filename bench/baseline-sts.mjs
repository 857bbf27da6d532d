// Baseline for `npm run bench -- --only=exchange`: the simplest correct token endpoint over
// the same kind of HTTPS server as hopguard sts (node:https, client certificates requested and
// verified against the same CA, keep-alive), doing per request what an exchange cannot do
// without: read the form body, one jose verify of the subject token, one jose sign of a new
// token. No checks beyond the signature, no events, no metrics.
// Usage: node bench/baseline-sts.mjs <config.json>   → prints the port on stdout.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { CompactSign, compactVerify, importJWK } from 'jose';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const verifyKey = await importJWK(cfg.publicJwk, 'ES256');
const signKey = await importJWK(cfg.privateJwk, 'ES256');
const enc = new TextEncoder();
const dec = new TextDecoder();

const server = https.createServer(
  { cert: cfg.cert, key: cfg.key, ca: cfg.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
  (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        if (!req.socket.authorized) throw new Error('no client certificate');
        const params = new URLSearchParams(Buffer.concat(chunks).toString('latin1'));
        const { payload } = await compactVerify(params.get('subject_token') ?? '', verifyKey, { algorithms: ['ES256'] });
        const claims = JSON.parse(dec.decode(payload));
        const now = Math.floor(Date.now() / 1000);
        const token = await new CompactSign(
          enc.encode(JSON.stringify({ ...claims, aud: params.get('audience'), iat: now, exp: Math.min(claims.exp, now + 60), jti: randomUUID() })),
        )
          .setProtectedHeader({ alg: 'ES256', typ: 'delegation+jwt', kid: cfg.privateJwk.kid })
          .sign(signKey);
        const body = JSON.stringify({ access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'N_A', expires_in: 60 });
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":"invalid_request"}');
      }
    });
  },
);
server.keepAliveTimeout = 5000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
// A clean exit on SIGTERM, so `--cpu-prof` can write the baseline's profile too.
process.on('SIGTERM', () => process.exit(0));
