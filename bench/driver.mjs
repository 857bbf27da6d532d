// A gRPC unary load driver for bodies h2load cannot vary: every request carries a different
// pre-encoded frame (e.g. a unique delegation token). c sessions × m concurrent streams,
// like h2load. Reports req/s and latency percentiles, the gRPC status from the trailers and
// the decision itself: CheckResponse.status.code read from the response message (a deny is
// a gRPC OK too, so the gRPC status alone cannot tell an allow).
import http2 from 'node:http2';

/**
 * @param {{ port: number, frames: Buffer[], c: number, m: number, n: number }} o
 */
export async function drive({ port, frames, c, m, n }) {
  const path = '/envoy.service.auth.v3.Authorization/Check';
  const lat = new Float64Array(n);
  let next = 0;
  let done = 0;
  const grpcStatus = new Map();
  const checkStatus = new Map();
  const sessions = Array.from({ length: c }, () => http2.connect(`http://127.0.0.1:${port}`));
  await Promise.all(sessions.map((s) => new Promise((r, j) => (s.once('connect', r), s.once('error', j)))));
  const t0 = process.hrtime.bigint();
  const one = (session) =>
    new Promise((resolve) => {
      const i = next++;
      const frame = frames[i % frames.length];
      const start = process.hrtime.bigint();
      const st = session.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      st.on('trailers', (t) => {
        const code = String(t['grpc-status'] ?? '?');
        grpcStatus.set(code, (grpcStatus.get(code) ?? 0) + 1);
      });
      const chunks = [];
      st.on('data', (d) => chunks.push(d));
      st.on('close', () => {
        const code = checkStatusCode(Buffer.concat(chunks));
        checkStatus.set(code, (checkStatus.get(code) ?? 0) + 1);
        lat[i] = Number(process.hrtime.bigint() - start) / 1000;
        done++;
        resolve();
      });
      st.end(frame);
    });
  const worker = async (session) => {
    while (next < n) await one(session);
  };
  await Promise.all(sessions.flatMap((s) => Array.from({ length: m }, () => worker(s))));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const s of sessions) s.close();
  const sorted = Array.from(lat.subarray(0, done)).sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return {
    n: done,
    seconds,
    rps: done / seconds,
    p50: pct(50),
    p99: pct(99),
    grpcStatus: Object.fromEntries(grpcStatus),
    checkStatus: Object.fromEntries(checkStatus),
  };
}

/**
 * CheckResponse.status.code (google.rpc.Status, field 1 of field 1) of one gRPC response
 * body: '0' for an allow, the code for a deny, 'none' without a message, '?' if unreadable.
 * Enough of the wire format for what hopguard and the baselines send.
 */
export function checkStatusCode(body) {
  if (body.length < 5) return 'none';
  const msg = body.subarray(5, 5 + body.readUInt32BE(1));
  let pos = 0;
  const varint = (b) => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (pos >= b.length) throw new Error('truncated');
      const x = b[pos++];
      v += (x & 0x7f) * scale;
      if (x < 0x80) return v;
      scale *= 0x80;
    }
  };
  try {
    while (pos < msg.length) {
      const tag = varint(msg);
      if (tag === 0x0a) {
        const end = varint(msg) + pos;
        const status = msg.subarray(pos, end);
        pos = 0;
        let code = 0; // proto3: an absent code is 0
        while (pos < status.length) {
          const t = varint(status);
          if (t === 0x08) code = varint(status);
          else if ((t & 7) === 2) pos = varint(status) + pos; // (not `pos += …`: varint moves pos)
          else if ((t & 7) === 0) varint(status);
          else return '?';
        }
        return String(code);
      }
      if ((tag & 7) === 2) pos = varint(msg) + pos;
      else if ((tag & 7) === 0) varint(msg);
      else return '?';
    }
    return '0'; // no status field: code 0
  } catch {
    return '?';
  }
}
