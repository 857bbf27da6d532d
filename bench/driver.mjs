// A gRPC unary load driver for bodies h2load cannot vary: every request carries a different
// pre-encoded frame (e.g. a unique delegation token). c sessions × m concurrent streams,
// like h2load. Reports req/s and latency percentiles; gRPC status is read from trailers,
// so unlike h2load it counts allows and denies.
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
      st.on('data', () => {});
      st.on('close', () => {
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
  return { n: done, seconds, rps: done / seconds, p50: pct(50), p99: pct(99), grpcStatus: Object.fromEntries(grpcStatus) };
}
