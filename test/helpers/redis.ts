/**
 * A real `redis-server` (Debian's package; `.ci/run` installs it) on a free loopback port
 * with its own temp directory, for the replay-store tests. A missing binary fails the test
 * that needs it, loudly: these tests never skip.
 *
 * The server can be stopped and restarted on the same port, paused (SIGSTOP: it accepts
 * TCP in the kernel but answers nothing) and resumed, to show each fault and the recovery.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient } from '@redis/client';
import { makePki, type Pki } from './pki.js';

export const REDIS_SERVER_BIN = process.env.HOPGUARD_REDIS_SERVER ?? 'redis-server';

/** Throws (failing the calling test or hook) when redis-server cannot be run. */
export function requireRedisServer(): string {
  const r = spawnSync(REDIS_SERVER_BIN, ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(
      `${REDIS_SERVER_BIN} cannot be run (${r.error?.message ?? `exit ${r.status}`}): install Debian's redis-server ` +
        '(bash .ci/run does). The replay-store tests need a real server and never skip.',
    );
  }
  return r.stdout.trim();
}

export interface RedisServerOptions {
  /** Extra config directives as `--name value` pairs, e.g. ['--requirepass', 's3cret']. */
  readonly args?: readonly string[];
  /** Serve TLS only (`tls-port`), with certificates made by the test. */
  readonly tls?: boolean | { readonly authClients: boolean };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private output = '';
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: readonly string[],
    readonly pki: Pki | undefined,
    readonly tls: boolean,
    /** With `tls: { authClients: true }`: a client certificate the server accepts. */
    readonly clientCert: { readonly certFile: string; readonly keyFile: string } | undefined,
  ) {}

  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    requireRedisServer();
    const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-redis-'));
    let pki: Pki | undefined;
    const tlsArgs: string[] = [];
    let clientCert: { certFile: string; keyFile: string } | undefined;
    if (opts.tls !== undefined && opts.tls !== false) {
      pki = makePki(dir);
      const server = pki.issue('redis');
      const authClients = typeof opts.tls === 'object' && opts.tls.authClients;
      tlsArgs.push('--tls-cert-file', server.certFile, '--tls-key-file', server.keyFile, '--tls-ca-cert-file', pki.caFile);
      tlsArgs.push('--tls-auth-clients', authClients ? 'yes' : 'no');
      if (authClients) clientCert = pki.issue('client', { clientAuth: true });
    }
    // A port picked free can be taken before redis binds it: try a few.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const s = new RedisServer(port, dir, [...tlsArgs, ...(opts.args ?? [])], pki, pki !== undefined, clientCert);
      try {
        await s.launch();
        return s;
      } catch (err) {
        if (attempt >= 4 || !/address already in use/i.test(String(err))) {
          rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  /** `redis://127.0.0.1:port/0` (or `rediss://localhost:port/0`), with optional credentials. */
  url(auth?: { user?: string; password?: string }): string {
    const cred = auth === undefined ? '' : `${encodeURIComponent(auth.user ?? '')}${auth.password === undefined ? '' : `:${encodeURIComponent(auth.password)}`}@`;
    return this.tls ? `rediss://${cred}localhost:${this.port}/0` : `redis://${cred}127.0.0.1:${this.port}/0`;
  }

  private launch(): Promise<void> {
    const portArgs = this.tls ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
    const argv = [
      ...portArgs,
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--logfile', '',
      '--protected-mode', 'no',
      ...this.args,
    ];
    const proc = spawn(REDIS_SERVER_BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.output = '';
    return new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        this.output += d.toString('utf8');
        if (/Ready to accept connections/.test(this.output)) resolve();
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('error', reject);
      proc.once('exit', (code, signal) => reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${this.output.slice(-2000)}`)));
    });
  }

  /** SIGTERM and wait for the exit (the server is then down; its port refuses connections). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    this.proc = undefined;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGCONT'); // a paused server cannot handle SIGTERM
    p.kill('SIGTERM');
    await exited;
  }

  /** Starts it again on the same port, with an empty dataset (nothing is saved). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** SIGSTOP: connections stay open and the kernel still accepts new ones, nothing answers. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Runs one command on a fresh connection (administration from the test). */
  async command(args: string[], auth?: { user?: string; password?: string }): Promise<unknown> {
    const client = createClient({
      url: this.url(auth),
      socket: { reconnectStrategy: false, ...(this.pki !== undefined ? { ca: this.pki.caPem, ...this.clientTls() } : {}) },
    });
    client.on('error', () => {});
    await client.connect();
    try {
      return await client.sendCommand(args);
    } finally {
      client.destroy();
    }
  }

  /** The client certificate's PEM, for `socket.cert`/`socket.key`, when the server asks for one. */
  clientTls(): { cert?: Buffer; key?: Buffer } {
    const c = this.clientCert;
    return c === undefined ? {} : { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) };
  }

  /** Stops the server and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
