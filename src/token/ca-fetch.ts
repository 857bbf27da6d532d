/**
 * A fetch for key sources that trusts an extra CA bundle (`issuers[].ca_file`): the system
 * roots plus the PEM certificates given, for this one issuer's requests only. A sidecar that
 * fetches the STS's keys over the mesh's own PKI names the mesh CA here; every other
 * connection of the process keeps the system roots alone.
 *
 * node:https directly (the global fetch has no per-request trust store): no redirects are
 * followed (HttpKeySource refuses them), the caller's AbortSignal ends the request.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { FetchLike } from './jwks-http.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM bundle; throws when there is none. */
export function pemCertificates(pem: string): string[] {
  const certs = pem.match(PEM_CERT) ?? [];
  if (certs.length === 0) throw new Error('no PEM CERTIFICATE in the CA file');
  return certs;
}

export function fetchWithCa(caPem: string): FetchLike {
  const ca = [...rootCertificates, ...pemCertificates(caPem)];
  // One agent per issuer: its keep-alive connections are reused across refreshes.
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: 2 });
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input);
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => (headers[k] = v));
      const opts = { method: init.method ?? 'GET', headers, signal: init.signal ?? undefined };
      const onResponse = (res: http.IncomingMessage): void => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
        }
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 599) {
          res.destroy();
          reject(new Error(`unexpected HTTP status ${status}`));
          return;
        }
        const nullBody = status === 204 || status === 205 || status === 304;
        if (nullBody) res.resume();
        resolve(
          new Response(nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: h }),
        );
      };
      const req =
        url.protocol === 'https:'
          ? https.request(url, { ...opts, agent }, onResponse)
          : http.request(url, opts, onResponse);
      req.on('error', (err) => reject(Object.assign(new TypeError('fetch failed'), { cause: err })));
      req.end();
    });
}
