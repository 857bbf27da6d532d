/** Starts the real hopguard server (port 0) with a loopback JWKS server and a capturing event sink. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { parseConfig } from '../../src/config/load.js';
import { CaptureSink } from './capture-sink.js';
import { Logger } from '../../src/telemetry/log.js';

export { CaptureSink };

export interface JwksServer {
  readonly url: string;
  requests: number;
  setBody(body: string, status?: number): void;
  close(): Promise<void>;
}

export async function startJwksServer(doc: unknown): Promise<JwksServer> {
  let body = JSON.stringify(doc);
  let status = 200;
  const srv = http.createServer((_req, res) => {
    state.requests++;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/jwks.json`,
    requests: 0,
    setBody(b, s = 200) {
      body = b;
      status = s;
    },
    close: () => new Promise<void>((resolve) => srv.close(() => resolve())),
  };
  return state;
}

export interface TestServer {
  readonly running: RunningServer;
  readonly address: string;
  readonly sink: CaptureSink;
  readonly clock: { ms: number; now(): number };
  readonly logs: string[];
}

/** `yaml` is a complete hopguard config; listen.grpc and listen.admin are forced to 127.0.0.1:0. */
export async function startTestServer(yaml: string, nowMs: number): Promise<TestServer> {
  const parsed = parseConfig(yaml, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const config = { ...parsed.config, listen: { ...parsed.config.listen, grpc: '127.0.0.1:0', admin: '127.0.0.1:0' } };
  const sink = new CaptureSink();
  const clock = {
    ms: nowMs,
    now() {
      return this.ms;
    },
  };
  const logs: string[] = [];
  const running = await startServer(config, {
    clock: { now: () => clock.ms },
    sinks: [sink],
    logger: new Logger('debug', { write: (l) => void logs.push(l) }),
  });
  sink.pending = () => running.events.drain();
  return { running, address: `127.0.0.1:${running.grpcPort}`, sink, clock, logs };
}
