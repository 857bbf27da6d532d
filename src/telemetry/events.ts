import type { HopRequest, Outcome } from '../core/types.js';
import { RequestSampler } from './sampling.js';

/**
 * Decision event, schema v1 (SPEC §6). One per Check. Never carries the raw token or any
 * header other than the correlation ids; `path` is logged without its query, because
 * queries routinely carry secrets.
 */
export interface DecisionEvent {
  readonly event: 'hopguard.decision';
  readonly v: 1;
  readonly ts: string;
  readonly decision: 'allow' | 'deny';
  readonly enforced: boolean;
  readonly reason: string;
  /** HTTP status the decision stands for (what Envoy returns when enforced). */
  readonly status: number;
  readonly request_id: string;
  readonly trace_id: string;
  readonly method: string;
  readonly path: string;
  readonly workload: string;
  readonly caller: string | null;
  readonly iss: string | null;
  readonly kid: string | null;
  readonly sub: string | null;
  readonly actors: readonly string[];
  readonly jti: string | null;
  readonly txn: string | null;
  readonly token_sha256: string | null;
  readonly latency_us: number;
}

/** Attacker-controlled strings are bounded so one request cannot produce a huge event. */
const MAX_FIELD = 2048;
function cap(s: string): string {
  return s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s;
}

const MEMO_FIELDS = 11;
const UNSET: unique symbol = Symbol('unset');

/**
 * Builds and serializes decision events, remembering what consecutive events repeat. Owned
 * by its pipeline (one per server): the memos live as long as the stream of events they
 * serve, never in module state.
 */
export class DecisionEventFormat {
  /** Consecutive events usually share a millisecond: format it once. */
  private lastTsMs = NaN;
  private lastIso = '';
  // The last value each field was quoted from. Consecutive events mostly repeat their
  // fields (workload, caller, path, issuer, subject, the token's hash when a caller reuses
  // its token), so the escape scan and the quoting concatenation run once per change
  // instead of once per event. `===` on strings compares contents, so a hit is exact.
  private readonly memoIn: (string | null | typeof UNSET)[] = new Array<string | null | typeof UNSET>(MEMO_FIELDS).fill(UNSET);
  private readonly memoOut: string[] = new Array<string>(MEMO_FIELDS).fill('');
  // The last actors list serialized, kept only when frozen (it cannot change afterwards; a
  // cached token's audit facts are frozen and shared), and compared by contents.
  private lastActors: readonly string[] | undefined;
  private lastActorsJson = '[]';

  build(
    req: HopRequest,
    outcome: Outcome,
    ctx: { readonly workload: string; readonly tsMs: number; readonly latencyUs: number },
  ): DecisionEvent {
    const { decision, audit } = outcome;
    return {
      event: 'hopguard.decision',
      v: 1,
      ts: this.isoTime(ctx.tsMs),
      decision: decision.allow ? 'allow' : 'deny',
      enforced: outcome.enforced,
      reason: decision.reason,
      status: decision.status,
      request_id: cap(req.requestId),
      trace_id: req.traceId,
      method: cap(req.method),
      path: cap(req.pathNoQuery),
      workload: ctx.workload,
      caller: req.caller === undefined ? null : cap(req.caller),
      iss: audit.iss ?? null,
      kid: audit.kid ?? null,
      sub: audit.sub ?? null,
      actors: audit.actors ?? [],
      jti: audit.jti ?? null,
      txn: audit.txn ?? null,
      token_sha256: audit.tokenSha256 ?? null,
      latency_us: Math.round(ctx.latencyUs),
    };
  }

  /**
   * The event as one JSON line (with '\n'): exactly `JSON.stringify(ev) + '\n'` (a property
   * test holds it to that), written for the fixed schema. The generic stringify walks the
   * object and re-checks every key; this writes the known keys as constants and quotes
   * strings with a single scan in the common case where nothing needs escaping.
   */
  serialize(ev: DecisionEvent): string {
    const actors = this.actorsJson(ev.actors);
    return (
      '{"event":"hopguard.decision","v":1,"ts":' +
      quote(ev.ts) +
      ',"decision":' +
      quote(ev.decision) +
      ',"enforced":' +
      (ev.enforced ? 'true' : 'false') +
      ',"reason":' +
      this.memoField(0, ev.reason) +
      ',"status":' +
      num(ev.status) +
      ',"request_id":' +
      quote(ev.request_id) +
      ',"trace_id":' +
      quote(ev.trace_id) +
      ',"method":' +
      this.memoField(1, ev.method) +
      ',"path":' +
      this.memoField(2, ev.path) +
      ',"workload":' +
      this.memoField(3, ev.workload) +
      ',"caller":' +
      this.memoField(4, ev.caller) +
      ',"iss":' +
      this.memoField(5, ev.iss) +
      ',"kid":' +
      this.memoField(6, ev.kid) +
      ',"sub":' +
      this.memoField(7, ev.sub) +
      ',"actors":' +
      actors +
      ',"jti":' +
      this.memoField(8, ev.jti) +
      ',"txn":' +
      this.memoField(9, ev.txn) +
      ',"token_sha256":' +
      this.memoField(10, ev.token_sha256) +
      ',"latency_us":' +
      num(ev.latency_us) +
      '}\n'
    );
  }

  private isoTime(ms: number): string {
    if (ms !== this.lastTsMs) {
      this.lastIso = new Date(ms).toISOString();
      this.lastTsMs = ms;
    }
    return this.lastIso;
  }

  /** A string or nullable field through its memo slot (for a string, nullable is quote). */
  private memoField(slot: number, s: string | null): string {
    if (typeof s !== 'string' && s !== null) return nullable(s); // never by the types; not worth a memo
    if (this.memoIn[slot] === s) return this.memoOut[slot] as string;
    const out = nullable(s);
    this.memoIn[slot] = s;
    this.memoOut[slot] = out;
    return out;
  }

  private actorsJson(actors: readonly string[]): string {
    const last = this.lastActors;
    if (actors === last || (last !== undefined && sameStrings(actors, last))) return this.lastActorsJson;
    let out = '[';
    for (let i = 0; i < actors.length; i++) out += (i === 0 ? '' : ',') + quote(actors[i] as string);
    out += ']';
    if (Object.isFrozen(actors)) {
      this.lastActors = actors;
      this.lastActorsJson = out;
    }
    return out;
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Characters JSON.stringify would escape: quote, backslash, controls, any surrogate (lone ones become \uXXXX). */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
function quote(s: string): string {
  if (typeof s !== 'string') return JSON.stringify(s) ?? 'null'; // never by the types; stay exact anyway
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}
function nullable(s: string | null): string {
  return s === null ? 'null' : quote(s);
}
function num(n: number): string {
  if (typeof n !== 'number') return JSON.stringify(n) ?? 'null';
  return Number.isFinite(n) ? String(n) : 'null'; // as JSON.stringify: NaN/Infinity → null, -0 → "0"
}

/**
 * Where serialized events go. One `write` per event (the line ends with '\n'); `write`
 * must not block and must not throw. Every event a sink does not deliver is counted in
 * `dropped()` (and reported to metrics by the sink's owner).
 */
export interface EventSink {
  readonly name: string;
  /** Returns false when the line was dropped (the sink counts it). */
  write(line: string): boolean;
  /**
   * Optional: a whole batch in one call (each line ends with '\n'), for sinks where one
   * write per batch is much cheaper. Drops are counted per line, as with `write`.
   */
  writeMany?(lines: readonly string[]): void;
  dropped(): number;
  /** Delivers what is buffered; resolves when done or after `timeoutMs`, losing nothing. */
  flush(timeoutMs: number): Promise<void>;
  /** Final flush: what is still buffered at the deadline is dropped and counted. Default: flush. */
  close?(timeoutMs: number): Promise<void>;
  /** Events held in memory, not yet delivered (for the buffered gauge). */
  buffered?(): number;
}

/** What the pipeline counts besides events (the Metrics class implements it). */
export interface PipelineMetrics {
  decision(allow: boolean, reason: string, enforced: boolean, latencySeconds: number): void;
  eventsSampled(n?: number): void;
}

export interface DecisionPipelineOptions {
  readonly sinks: readonly EventSink[];
  /** Read per batch so a config reload applies. */
  readonly workload: () => string;
  /** Fraction (0..1) of allow events kept; denies are always kept. Default 1. */
  readonly sampleAllow?: () => number;
  /** `events.sample_key`, the fleet-wide secret the choice is keyed with (src/telemetry/sampling.ts). */
  readonly sampleKey?: string | undefined;
  readonly metrics?: PipelineMetrics;
  /** [0,1) for sampling requests without a request id. */
  readonly random?: () => number;
  /** Runs the batch later; default setImmediate (after pending I/O callbacks). */
  readonly schedule?: (fn: () => void) => void;
  /** A fault while building or writing an event (logged by the owner; never thrown). */
  readonly onError?: (err: unknown) => void;
}

/** A Check waiting to become an event: only references, no serialization yet. */
interface Pending {
  readonly req: HopRequest;
  readonly outcome: Outcome;
  readonly tsMs: number;
  readonly latencyNs: bigint;
}

/**
 * One decision event per Check, off the hot path. The Check handler calls `record()`
 * after the answer is handed to gRPC; that only appends a 4-field record and, once per
 * batch, schedules `drain()` with setImmediate. Building, metrics, sampling,
 * serialization and sink writes all happen in the drain, after Node has run the pending
 * I/O callbacks (other Checks' answers), so emitting never delays or changes a decision.
 */
export class DecisionPipeline {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly sinks: readonly EventSink[];
  private readonly schedule: (fn: () => void) => void;
  private readonly random: () => number;
  private readonly drainBound = (): void => this.drain();
  private readonly format = new DecisionEventFormat();
  private readonly sampler: RequestSampler;
  private counts = { recorded: 0, emitted: 0, sampledOut: 0 };

  constructor(private readonly opts: DecisionPipelineOptions) {
    this.sinks = opts.sinks;
    this.schedule = opts.schedule ?? ((fn) => void setImmediate(fn));
    this.random = opts.random ?? Math.random;
    this.sampler = new RequestSampler(opts.sampleKey);
  }

  /** Hot path: O(1), one small allocation, never throws. */
  record(req: HopRequest, outcome: Outcome, tsMs: number, latencyNs: bigint): void {
    this.pending.push({ req, outcome, tsMs, latencyNs });
    this.counts.recorded++;
    if (!this.scheduled) {
      this.scheduled = true;
      try {
        this.schedule(this.drainBound);
      } catch (err) {
        this.scheduled = false;
        this.fault(err);
      }
    }
  }

  /** Processes everything recorded so far (also called by flush/close). */
  drain(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const lines: string[] = [];
    for (const p of batch) {
      try {
        const line = this.process(p);
        if (line !== undefined) lines.push(line);
      } catch (err) {
        this.fault(err);
      }
    }
    if (lines.length === 0) return;
    for (const s of this.sinks) {
      if (s.writeMany !== undefined) {
        try {
          s.writeMany(lines);
        } catch (err) {
          this.fault(err);
        }
        continue;
      }
      for (const line of lines) {
        try {
          s.write(line);
        } catch (err) {
          this.fault(err);
        }
      }
    }
  }

  /** Metrics and sampling for one Check; the serialized event, unless sampled out. */
  private process(p: Pending): string | undefined {
    const { outcome } = p;
    const d = outcome.decision;
    const allow = d.allow === true;
    const latencyUs = Number(p.latencyNs) / 1000;
    this.opts.metrics?.decision(allow, d.reason, outcome.enforced !== false, latencyUs / 1e6);
    if (allow && !this.keep(p.req.requestId)) {
      this.counts.sampledOut++;
      this.opts.metrics?.eventsSampled(1);
      return undefined;
    }
    const ev = this.format.build(p.req, outcome, { workload: this.opts.workload(), tsMs: p.tsMs, latencyUs });
    const line = this.format.serialize(ev);
    this.counts.emitted++;
    return line;
  }

  /**
   * Sampling of allow events. With a request id the choice is a keyed hash of it, so every
   * hop of one request (Envoy propagates x-request-id) is kept or dropped together and a
   * kept request can be followed through the mesh, while the caller who chose the id cannot
   * tell which; without one it is random.
   */
  private keep(requestId: string): boolean {
    const rate = this.opts.sampleAllow?.() ?? 1;
    if (!(rate < 1)) return true;
    if (!(rate > 0)) return false;
    const x = requestId === '' ? this.random() : this.sampler.fraction(requestId);
    return x < rate;
  }

  private fault(err: unknown): void {
    try {
      this.opts.onError?.(err);
    } catch {
      // ignore
    }
  }

  /** Checks recorded / events handed to sinks / allow events left out by sampling. */
  stats(): { readonly recorded: number; readonly emitted: number; readonly sampledOut: number } {
    return { ...this.counts };
  }

  dropped(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.sinks) out[s.name] = s.dropped();
    return out;
  }

  /** Emits what is pending and waits for the sinks to deliver, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    this.drain();
    await Promise.all(this.sinks.map((s) => s.flush(timeoutMs).catch((err: unknown) => this.fault(err))));
  }

  /** Shutdown: emits what is pending, flushes each sink within `timeoutMs`, counts the rest as dropped. */
  async close(timeoutMs: number): Promise<void> {
    this.drain();
    await Promise.all(
      this.sinks.map((s) => (s.close ? s.close(timeoutMs) : s.flush(timeoutMs)).catch((err: unknown) => this.fault(err))),
    );
  }
}
