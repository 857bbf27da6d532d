/**
 * The shared replay store on Redis or Valkey (SPEC §9): one atomic
 * `SET <key_prefix><hex SHA-256 of iss NUL jti> 1 NX PXAT <exp + skew in ms>` per
 * replay-protected Check; `OK` is the first use, a nil reply a replay.
 *
 * A Check never waits on the store longer than `timeout`, and never waits on a reconnect:
 *  - no connection right now ⇒ `offline` at once (the client's offline queue is off);
 *  - no answer within `timeout` ⇒ `timeout`, enforced here by a timer per command (the
 *    client's own deadline only drops a command still waiting to be written, so a command
 *    that timed out before reaching the socket is never executed late);
 *  - an error reply (`OOM`, `READONLY`, `NOAUTH`…) ⇒ that fault.
 * Each is `replay_unavailable` for that Check only.
 *
 * The connection is supervised here rather than by the client's reconnect loop, so one
 * policy covers every way it can go bad: a lost socket, a failed or hung handshake (a
 * paused server accepts TCP but never answers), a connection that stopped answering with
 * commands outstanding (a half-open socket after a node vanished would otherwise hang
 * until TCP gives up, many minutes), a `READONLY` reply (the node we reach was demoted by a
 * failover: a new connection resolves the host again, which finds the new primary where the
 * name follows it) and `NOAUTH`.
 * Each drops the connection and reconnects in the background with jittered exponential
 * back-off; Checks get `offline` meanwhile and succeed again as soon as a new connection is
 * ready. No restart is ever needed.
 *
 * Operational log lines (what broke, the redacted URL, how many similar lines were held
 * back) are rate-limited per fault kind. The URL's password is never logged.
 */
import type * as RedisNamespace from '@redis/client';
import type { RedisClientOptions } from '@redis/client';
import { rootCertificates } from 'node:tls';
import { RateLimiter } from '../lib/rate-limit.js';
import { backoffStep, equalJitter, realTimers, type Timers } from '../lib/timers.js';
import type { RedisTarget } from '../config/redis-url.js';
import { replayDigest, replayFault, type ReplayAnswer, type ReplayFault, type ReplayFaultKind, type ReplayObserver, type ReplayStore } from './store.js';

type RedisModule = typeof RedisNamespace;
type RedisClient = ReturnType<RedisModule['createClient']>;

/**
 * The client library, loaded on first use: it is large (~100 ms to load) and a config
 * with the in-memory store never needs it.
 */
export function loadRedisModule(): Promise<RedisModule> {
  return import('@redis/client');
}

/** Where operational lines go (telemetry's Logger fits). */
export interface OpsLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** Named defaults of the connection supervisor (not config keys: see README). */
export const REDIS_DEFAULTS = Object.freeze({
  /** TCP connect + TLS + HELLO/AUTH must complete within this, else the attempt is dropped. */
  connectTimeoutMs: 2000,
  /** Reconnect back-off: equal jitter between half and all of base·2^(n-1), capped. */
  reconnectBaseMs: 100,
  reconnectMaxMs: 2000,
  /** No reply at all for this long with commands outstanding: the connection is dropped. */
  stallMinMs: 1000,
  stallTimeouts: 20,
  /** Commands waiting for their reply on one connection; beyond it Checks fail at once. */
  maxInFlight: 10_000,
  /** At most one log line per fault kind in this interval. */
  logIntervalMs: 10_000,
});

export interface RedisTlsFiles {
  /** PEM CA bundle trusted for the server's certificate, in addition to the system roots. */
  readonly ca?: string | Buffer | undefined;
  /** Client certificate and key, for a server that requires TLS client auth. */
  readonly cert?: string | Buffer | undefined;
  readonly key?: string | Buffer | undefined;
}

export interface RedisReplayStoreOptions {
  readonly redis: RedisModule;
  readonly target: RedisTarget;
  readonly keyPrefix: string;
  /** Per-command timeout, ms. */
  readonly timeoutMs: number;
  readonly tls?: RedisTlsFiles | undefined;
  readonly log: OpsLog;
  readonly observe?: ReplayObserver | undefined;
  /** Timers for back-off, connect deadlines and command timeouts. Default: real, unref'd. */
  readonly timers?: Timers | undefined;
  /** Monotonic milliseconds (stall detection, log rate limit, durations). */
  readonly monotonicMs?: (() => number) | undefined;
  /** [0, 1): back-off jitter. */
  readonly random?: (() => number) | undefined;
  readonly connectTimeoutMs?: number | undefined;
  readonly reconnectBaseMs?: number | undefined;
  readonly reconnectMaxMs?: number | undefined;
  readonly stallMs?: number | undefined;
  readonly maxInFlight?: number | undefined;
  readonly logIntervalMs?: number | undefined;
}

/** One client and what the supervisor knows about it. */
interface Connection {
  readonly client: RedisClient;
  /** False once dropped: every later event about it is ignored. */
  live: boolean;
  /** Commands sent and not yet settled by the client (timed-out ones included). */
  inFlight: number;
  /** Since when commands have been outstanding without any reply (monotonic ms). */
  waitingSince: number;
}

const OFFLINE = replayFault('offline');
const TIMEOUT = replayFault('timeout');
const OVERLOADED = replayFault('overloaded');
const REPLY = replayFault('reply');

/** Longest error text put in a log line. */
const MAX_CAUSE_CHARS = 200;

export class RedisReplayStore implements ReplayStore {
  readonly kind = 'redis';
  /** The redacted URL: safe to log. */
  readonly display: string;
  private readonly o: RedisReplayStoreOptions;
  private readonly timers: Timers;
  private readonly mono: () => number;
  private readonly random: () => number;
  private stallMs: number;
  private timeoutMs: number;
  /** Per-command options: the client drops a command still unwritten when this expires. */
  private commandOptions: { readonly timeout: number };
  private readonly maxInFlight: number;
  private readonly clientOptions: RedisClientOptions;
  /** One log line per fault kind per interval (monotonic clock: a wall-clock step cannot silence it). */
  private readonly faultLog: RateLimiter;
  /** The connection Checks use; undefined while there is none (Checks get `offline`). */
  private conn: Connection | undefined;
  /** The connection being established. */
  private pending: Connection | undefined;
  /** Failures since the last answered command: drives the back-off. */
  private failures = 0;
  private retryTimer: unknown;
  private closed = false;
  /** Whether a fault has been logged since the store last answered (a recovery is then logged). */
  private degraded = false;
  private readonly firstAttempt: Promise<void>;
  private firstAttemptDone: () => void = () => {};

  constructor(opts: RedisReplayStoreOptions) {
    this.o = opts;
    this.display = opts.target.display;
    this.timers = opts.timers ?? realTimers;
    this.mono = opts.monotonicMs ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.timeoutMs = opts.timeoutMs;
    this.commandOptions = { timeout: opts.timeoutMs };
    this.stallMs = opts.stallMs ?? stallFor(opts.timeoutMs);
    this.maxInFlight = opts.maxInFlight ?? REDIS_DEFAULTS.maxInFlight;
    this.faultLog = new RateLimiter(opts.logIntervalMs ?? REDIS_DEFAULTS.logIntervalMs, this.mono);
    this.firstAttempt = new Promise((resolve) => (this.firstAttemptDone = resolve));
    const t = opts.target;
    const tls = opts.tls ?? {};
    this.clientOptions = {
      socket: {
        host: t.host,
        port: t.port,
        ...(t.tls
          ? {
              tls: true as const,
              servername: isIpLiteral(t.host) ? undefined : t.host,
              // Node's `ca` replaces the system roots; the configured CA is added to them.
              ca: tls.ca === undefined ? undefined : [...rootCertificates, tls.ca],
              cert: tls.cert,
              key: tls.key,
            }
          : {}),
        connectTimeout: opts.connectTimeoutMs ?? REDIS_DEFAULTS.connectTimeoutMs,
        // The supervisor below reconnects (with its own back-off and checks); a client that
        // reconnected by itself would hide a dead connection from it.
        reconnectStrategy: false,
        noDelay: true,
        keepAlive: true,
      },
      username: t.username,
      password: t.password,
      database: t.database === 0 ? undefined : t.database,
      // A command issued while disconnected fails at once instead of waiting for a reconnect.
      disableOfflineQueue: true,
      // One HELLO (with AUTH and SETNAME) is the whole handshake.
      disableClientInfo: true,
      name: 'hopguard',
      // Headroom over maxInFlight for the handshake; the store enforces maxInFlight itself.
      commandsQueueMaxLength: this.maxInFlight + 16,
    };
  }

  /**
   * Starts connecting in the background. The promise resolves once the first attempt has
   * ended, connected or not (so a server can wait briefly for it at start-up); it never
   * rejects, and Checks before then get `offline`.
   */
  start(): Promise<void> {
    if (this.conn === undefined && this.pending === undefined && this.retryTimer === undefined && !this.closed) this.connect();
    return this.firstAttempt;
  }

  /** A new per-command timeout (config reload), for the commands sent from now on. */
  setTimeout(timeoutMs: number): void {
    if (timeoutMs === this.timeoutMs) return;
    this.timeoutMs = timeoutMs;
    this.commandOptions = { timeout: timeoutMs };
    if (this.o.stallMs === undefined) this.stallMs = stallFor(timeoutMs);
  }

  /** Whether a connection is ready now (diagnostics and tests; never readiness). */
  connected(): boolean {
    return this.conn !== undefined;
  }

  record(iss: string, jti: string, expiresAtMs: number): ReplayAnswer | Promise<ReplayAnswer> {
    const c = this.conn;
    if (c === undefined) return this.fail(OFFLINE, undefined);
    if (c.inFlight >= this.maxInFlight) return this.fail(OVERLOADED, undefined);
    const start = this.mono();
    if (c.inFlight === 0) c.waitingSince = start;
    c.inFlight++;
    const key = this.o.keyPrefix + replayDigest(iss, jti);
    // PXAT: the key lives exactly as long as the token could be accepted (exp + skew).
    const at = String(Math.max(1, Math.ceil(expiresAtMs)));
    return new Promise<ReplayAnswer>((resolve) => {
      let done = false;
      const timer = this.timers.setTimeout(() => {
        if (done) return;
        done = true;
        resolve(this.fail(TIMEOUT, start));
        this.checkStall(c);
      }, this.timeoutMs);
      const settle = (answer: ReplayAnswer): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        resolve(typeof answer === 'object' ? this.fail(answer, start) : this.succeed(answer, start));
      };
      c.client.sendCommand(['SET', key, '1', 'NX', 'PXAT', at], this.commandOptions).then(
        (reply: unknown) => {
          this.answered(c);
          settle(reply === 'OK' ? 'first' : reply === null ? 'replayed' : REPLY);
        },
        (err: unknown) => {
          const kind = this.classify(err);
          if (kind !== 'offline' && kind !== 'timeout' && kind !== 'overloaded') this.answered(c);
          else this.settledWithoutReply(c);
          settle(replayFault(kind));
          // A demoted primary, or a server that forgot our authentication: a new
          // connection (name resolved again, HELLO AUTH again) is the way back.
          if (kind === 'readonly' || kind === 'auth') this.drop(c, `${kind} reply: ${causeOf(err)}`);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const c of [this.conn, this.pending]) {
      if (c === undefined) continue;
      c.live = false;
      destroyQuietly(c.client);
    }
    this.conn = undefined;
    this.pending = undefined;
    this.firstAttemptDone();
  }

  // ---- connection supervision ----

  private connect(): void {
    if (this.closed) return;
    const client = this.o.redis.createClient(this.clientOptions);
    const c: Connection = { client, live: true, inFlight: 0, waitingSince: 0 };
    this.pending = c;
    // Without an 'error' listener an emitted error would crash the process.
    client.on('error', (err: unknown) => {
      if (!client.isOpen) this.drop(c, causeOf(err));
    });
    client.on('terminated', (cause: unknown) => this.drop(c, causeOf(cause)));
    // The client's connectTimeout covers the TCP (and TLS) connect only; a server that
    // accepts the connection and never answers HELLO must not hold the attempt forever.
    const deadlineMs = this.clientOptions.socket?.connectTimeout ?? REDIS_DEFAULTS.connectTimeoutMs;
    const deadline = this.timers.setTimeout(() => this.drop(c, `no connection within ${deadlineMs}ms`), deadlineMs);
    client.connect().then(
      () => {
        this.timers.clearTimeout(deadline);
        if (!c.live || this.closed) {
          destroyQuietly(client);
          return;
        }
        this.pending = undefined;
        this.conn = c;
        this.o.log.info('replay store connected', { store: this.display, after_failures: this.failures });
        this.firstAttemptDone();
      },
      (err: unknown) => {
        this.timers.clearTimeout(deadline);
        this.drop(c, causeOf(err));
      },
    );
  }

  /** Drops a connection (once) and schedules the next attempt. */
  private drop(c: Connection, cause: string): void {
    if (!c.live) return;
    c.live = false;
    const wasReady = this.conn === c;
    if (wasReady) this.conn = undefined;
    if (this.pending === c) this.pending = undefined;
    destroyQuietly(c.client);
    this.firstAttemptDone();
    if (this.closed) return;
    this.failures++;
    const step = backoffStep(this.failures, this.o.reconnectBaseMs ?? REDIS_DEFAULTS.reconnectBaseMs, this.o.reconnectMaxMs ?? REDIS_DEFAULTS.reconnectMaxMs);
    const delayMs = Math.round(equalJitter(step, this.random()));
    this.degraded = true;
    this.faultLog.maybe(wasReady ? 'lost' : 'connect', (suppressed) =>
      this.o.log.warn(wasReady ? 'replay store connection lost; reconnecting' : 'replay store connection failed; retrying', {
        store: this.display,
        cause: cause.slice(0, MAX_CAUSE_CHARS),
        retry_in_ms: delayMs,
        failures: this.failures,
        suppressed,
      }),
    );
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delayMs);
  }

  /** After a command timed out: a connection that answers nothing at all is dropped. */
  private checkStall(c: Connection): void {
    if (c.live && c.inFlight > 0 && this.mono() - c.waitingSince >= this.stallMs) {
      this.drop(c, `no reply for ${this.stallMs}ms with ${c.inFlight} command(s) outstanding`);
    }
  }

  /** A reply (or error reply) arrived: the server is talking. */
  private answered(c: Connection): void {
    c.inFlight--;
    c.waitingSince = this.mono();
  }

  /** A command settled by the client itself (flushed, dropped before it was written). */
  private settledWithoutReply(c: Connection): void {
    c.inFlight--;
  }

  private classify(err: unknown): ReplayFaultKind {
    if (err instanceof this.o.redis.ErrorReply) return replyFaultKind(err.message);
    if (err instanceof this.o.redis.TimeoutError) return 'timeout';
    if (err instanceof Error && err.message === 'The queue is full') return 'overloaded';
    return 'offline';
  }

  private succeed(answer: 'first' | 'replayed', start: number): ReplayAnswer {
    this.o.observe?.(answer, (this.mono() - start) / 1000);
    this.failures = 0;
    if (this.degraded) {
      this.degraded = false;
      this.o.log.info('replay store answering again', { store: this.display });
    }
    return answer;
  }

  /** `start` undefined: refused before any command was sent (no duration to speak of). */
  private fail(f: ReplayFault, start: number | undefined): ReplayFault {
    this.o.observe?.(f.result, start === undefined ? 0 : (this.mono() - start) / 1000);
    this.degraded = true;
    this.faultLog.maybe(f.fault, (suppressed) =>
      this.o.log.warn('replay store unavailable: replay-protected Checks are denied (replay_unavailable)', {
        store: this.display,
        fault: f.fault,
        connected: this.conn !== undefined,
        suppressed,
      }),
    );
    return f;
  }
}

function stallFor(timeoutMs: number): number {
  return Math.max(REDIS_DEFAULTS.stallMinMs, REDIS_DEFAULTS.stallTimeouts * timeoutMs);
}

/** The fault an error reply stands for, from its error code (the reply's first word). */
export function replyFaultKind(message: string): ReplayFaultKind {
  const space = message.indexOf(' ');
  const code = space === -1 ? message : message.slice(0, space);
  switch (code) {
    case 'OOM':
      return 'oom';
    case 'READONLY':
      return 'readonly';
    case 'NOAUTH':
    case 'WRONGPASS':
    case 'NOPERM':
      return 'auth';
    case 'LOADING':
      return 'loading';
    default:
      return 'reply';
  }
}

function causeOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message || err.name;
  }
  return String(err);
}

function destroyQuietly(client: RedisClient): void {
  try {
    client.destroy();
  } catch {
    // Already closed: nothing left to release.
  }
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
