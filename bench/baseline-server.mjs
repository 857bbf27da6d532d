// Baselines for `npm run bench`, each the simplest correct grpc-js + proto-loader Check
// server (same .proto files, same decoding as hopguard):
//   ok   — answers OK without looking at the request (the grpc-js ceiling);
//   jose — one jose ES256 verify of the delegation-token header per request, then OK
//          (what "verify every token" costs with the stock library).
// Usage: node bench/baseline-server.mjs <ok|jose> <jwks.json>   → prints the port on stdout.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { compactVerify, importJWK } from 'jose';
import { authorizationServiceDefinition } from '../dist/envoy/proto.js';

const [mode = 'ok', jwksFile] = process.argv.slice(2);
let key;
if (mode === 'jose') {
  const jwk = JSON.parse(readFileSync(jwksFile, 'utf8')).keys[0];
  key = await importJWK(jwk, 'ES256');
}

const OK = { status: { code: 0 }, ok_response: {} };
const DENY = { status: { code: 16 }, denied_response: { status: { code: 401 }, body: '{"reason":"bad_signature"}' } };

const server = new grpc.Server();
server.addService(authorizationServiceDefinition, {
  Check:
    mode === 'jose'
      ? (call, cb) => {
          const token = call.request.attributes?.request?.http?.headers?.['delegation-token'] ?? '';
          compactVerify(token, key, { algorithms: ['ES256'] }).then(
            () => cb(null, OK),
            () => cb(null, DENY),
          );
        }
      : (_call, cb) => cb(null, OK),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${port}\n`);
});
