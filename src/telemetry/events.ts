import type { ChainLink } from '../audit/chain.js';
import type { HopRequest, Outcome } from '../core/types.js';
import type { AuditLog } from './audit-log.js';
import { RequestSampler } from './sampling.js';
import type { Delivery } from './sink.js';

export type { Delivery, EventSink } from './sink.js';

/**
 * Decision event, schema v1 (SPEC §6), a link of the audit chain (SPEC §8). One per Check.
 * Never carries the raw token or any header other than the correlation ids; `path` is logged
 * without its query, because queries routinely carry secrets.
 *
 * Members are declared, built and written in RFC 8785 (JCS) order, so the line is its own
 * canonical form: its SHA-256 is what the next event's `prev` holds.
 */
export interface DecisionEvent {
  readonly actors: readonly string[];
  readonly caller: string | null;
  readonly chain: string;
  readonly decision: 'allow' | 'deny';
  readonly enforced: boolean;
  readonly event: 'hopguard.decision';
  readonly iss: string | null;
  readonly jti: string | null;
  readonly kid: string | null;
  readonly latency_us: number;
  readonly method: string;
  readonly path: string;
  readonly prev: string | null;
  readonly reason: string;
  readonly request_id: string;
  readonly seq: number;
  /** HTTP status the decision stands for (what Envoy returns when enforced). */
  readonly status: number;
  readonly sub: string | null;
  /** An audit_unavailable deny names the seq of the event it supersedes (SPEC §8); else undefined (not written). */
  readonly supersedes?: number | undefined;
  readonly token_sha256: string | null;
  readonly trace_id: string;
  readonly ts: string;
  readonly txn: string | null;
  readonly v: 1;
  readonly workload: string;
}

/** Attacker-controlled strings are bounded so one request cannot produce a huge event. */
const MAX_FIELD = 2048;

// ES2024's String.prototype.isWellFormed / toWellFormed (Node 20 has them; the ES2023 lib
// does not type them).
const wellFormed = String.prototype as unknown as { isWellFormed(this: string): boolean; toWellFormed(this: string): string };

/**
 * A string for an event: at most MAX_FIELD UTF-16 units, never cutting a surrogate pair,
 * and well-formed (a lone surrogate, which a token's JSON escapes can carry, becomes U+FFFD):
 * an event must be I-JSON, or no verifier could canonicalize it (RFC 8785 §3.2.2.2).
 */
function text(s: string): string {
  let out = s;
  if (out.length > MAX_FIELD) {
    const last = out.charCodeAt(MAX_FIELD - 1);
    out = out.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_FIELD - 1 : MAX_FIELD);
  }
  return wellFormed.isWellFormed.call(out) ? out : wellFormed.toWellFormed.call(out);
}
function textOrNull(s: string | undefined): string | null {
  return s === undefined ? null : text(s);
}

const MEMO_FIELDS = 11;
const UNSET: unique symbol = Symbol('unset');

/** Context of one event besides the request and the outcome. */
export interface EventContext {
  readonly workload: string;
  readonly tsMs: number;
  readonly latencyUs: number;
  /** Seq of the event an audit_unavailable deny supersedes. */
  readonly supersedes?: number | undefined;
}

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

  build(req: HopRequest, outcome: Outcome, ctx: EventContext, link: ChainLink): DecisionEvent {
    const { decision, audit } = outcome;
    const actors = audit.actors === undefined ? [] : wellFormedList(audit.actors);
    const caller = textOrNull(req.caller);
    const d = decision.allow ? ('allow' as const) : ('deny' as const);
    const iss = textOrNull(audit.iss);
    const jti = textOrNull(audit.jti);
    const kid = textOrNull(audit.kid);
    const latency = Math.round(ctx.latencyUs);
    const method = text(req.method);
    const path = text(req.pathNoQuery);
    const requestId = text(req.requestId);
    const sub = textOrNull(audit.sub);
    const sha = audit.tokenSha256 ?? null;
    const ts = this.isoTime(ctx.tsMs);
    const txn = textOrNull(audit.txn);
    const workload = text(ctx.workload);
    // One literal (not a spread: V8 builds a 24-member spread ~50x slower). `supersedes`,
    // between `sub` and `token_sha256` in JCS order, is undefined on all but an
    // audit_unavailable deny: JSON.stringify and serialize() leave it out then.
    return {
      actors, caller, chain: link.chain, decision: d, enforced: outcome.enforced, event: 'hopguard.decision', iss, jti, kid,
      latency_us: latency, method, path, prev: link.prev, reason: decision.reason, request_id: requestId, seq: link.seq,
      status: decision.status, sub, supersedes: ctx.supersedes, token_sha256: sha, trace_id: req.traceId, ts, txn, v: 1, workload,
    };
  }

  /**
   * The event's canonical JSON text (RFC 8785; no newline): exactly `JSON.stringify(ev)`
   * with members in JCS order (a property test holds it to both), written for the fixed
   * schema. The generic stringify walks the object and re-checks every key; this writes the
   * known keys as constants and quotes strings with a single scan in the common case where
   * nothing needs escaping.
   */
  serialize(ev: DecisionEvent): string {
    return (
      '{"actors":' +
      this.actorsJson(ev.actors) +
      ',"caller":' +
      this.memoField(4, ev.caller) +
      ',"chain":' +
      quote(ev.chain) +
      ',"decision":' +
      quote(ev.decision) +
      ',"enforced":' +
      (ev.enforced ? 'true' : 'false') +
      ',"event":"hopguard.decision","iss":' +
      this.memoField(5, ev.iss) +
      ',"jti":' +
      this.memoField(8, ev.jti) +
      ',"kid":' +
      this.memoField(6, ev.kid) +
      ',"latency_us":' +
      num(ev.latency_us) +
      ',"method":' +
      this.memoField(1, ev.method) +
      ',"path":' +
      this.memoField(2, ev.path) +
      ',"prev":' +
      nullable(ev.prev) +
      ',"reason":' +
      this.memoField(0, ev.reason) +
      ',"request_id":' +
      quote(ev.request_id) +
      ',"seq":' +
      num(ev.seq) +
      ',"status":' +
      num(ev.status) +
      ',"sub":' +
      this.memoField(7, ev.sub) +
      (ev.supersedes === undefined ? '' : ',"supersedes":' + num(ev.supersedes)) +
      ',"token_sha256":' +
      this.memoField(10, ev.token_sha256) +
      ',"trace_id":' +
      quote(ev.trace_id) +
      ',"ts":' +
      quote(ev.ts) +
      ',"txn":' +
      this.memoField(9, ev.txn) +
      ',"v":1,"workload":' +
      this.memoField(3, ev.workload) +
      '}'
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

/** The list itself when every entry is already fit for an event (the frozen, shared case). */
function wellFormedList(list: readonly string[]): readonly string[] {
  for (let i = 0; i < list.length; i++) {
    const s = list[i] as string;
    if (text(s) !== s) return list.map(text);
  }
  return list;
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

/** What the pipeline counts besides events (the Metrics class implements it). */
export interface PipelineMetrics {
  decision(allow: boolean, reason: string, enforced: boolean, latencySeconds: number): void;
  eventsSampled(n?: number): void;
}

/** An outcome the audit-before-allow gate (src/runtime/audit-sync.ts) has dealt with. */
export interface AuditedOutcome extends Outcome {
  /** Its decision event was emitted (and confirmed) before the answer: count it, do not emit it again. */
  readonly eventEmitted?: true;
  /** This answer (an audit_unavailable deny) supersedes the decision event with this seq. */
  readonly supersedes?: number;
}

export interface EmittedEvent {
  /** The event's seq in the audit chain; -1 if it could not be built (the fault is reported). */
  readonly seq: number;
  /** What the `http` sink made of it; undefined when no `http` sink is configured. */
  readonly delivery: Promise<Delivery> | undefined;
}

/** The part of the decision pipeline the audit-before-allow gate uses. */
export interface SyncEmitter {
  /**
   * Emits one decision event now (never sampled out), after the events recorded before it,
   * and sends the `http` sink's batch holding it at once.
   */
  emitNow(req: HopRequest, outcome: Outcome, tsMs: number, latencyNs: bigint): EmittedEvent;
}

export interface DecisionPipelineOptions {
  /** The audited event stream: chain, sinks, checkpoints. */
  readonly log: AuditLog;
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
 * One decision event per Check, off the hot path, each a link of the audit chain. The Check
 * handler calls `record()` after the answer is handed to gRPC; that only appends a 4-field
 * record and, once per batch, schedules `drain()` with setImmediate. Building, metrics,
 * sampling, serialization, hashing and sink writes all happen in the drain, after Node has
 * run the pending I/O callbacks (other Checks' answers), so emitting never delays or
 * changes a decision. Only an audit-before-allow Check emits before its answer (emitNow).
 */
export class DecisionPipeline implements SyncEmitter {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly log: AuditLog;
  private readonly schedule: (fn: () => void) => void;
  private readonly random: () => number;
  private readonly drainBound = (): void => this.drain();
  private readonly format = new DecisionEventFormat();
  private readonly sampler: RequestSampler;
  private counts = { recorded: 0, emitted: 0, sampledOut: 0 };

  constructor(private readonly opts: DecisionPipelineOptions) {
    this.log = opts.log;
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
    for (const p of batch) {
      try {
        this.process(p);
      } catch (err) {
        this.fault(err);
      }
    }
    this.log.write();
  }

  /**
   * Audit before allow: the event of this Check, linked and written now, after everything
   * recorded before it; the `http` sink sends the batch holding it at once and reports its
   * delivery. Metrics are counted when the Check's final answer is recorded.
   */
  emitNow(req: HopRequest, outcome: Outcome, tsMs: number, latencyNs: bigint): EmittedEvent {
    this.drain();
    let seq = -1;
    try {
      seq = this.link({ req, outcome, tsMs, latencyNs }, undefined);
    } catch (err) {
      this.fault(err);
    }
    if (seq < 0) {
      this.log.write();
      return { seq: -1, delivery: undefined };
    }
    return { seq, delivery: this.log.writeTracked() };
  }

  /** Metrics and sampling for one Check; links its event unless sampled out or already emitted. */
  private process(p: Pending): void {
    const outcome = p.outcome as AuditedOutcome;
    const d = outcome.decision;
    const allow = d.allow === true;
    this.opts.metrics?.decision(allow, d.reason, outcome.enforced !== false, Number(p.latencyNs) / 1e9);
    if (outcome.eventEmitted === true) return; // audit before allow: emitted before the answer
    if (allow && !this.keep(p.req.requestId)) {
      this.counts.sampledOut++;
      this.opts.metrics?.eventsSampled(1);
      return;
    }
    this.link(p, outcome.supersedes);
  }

  /** Builds, serializes and links one event; its seq, or -1 if the chain refused it. */
  private link(p: Pending, supersedes: number | undefined): number {
    const ctx: EventContext = {
      workload: this.opts.workload(),
      tsMs: p.tsMs,
      latencyUs: Number(p.latencyNs) / 1000,
      supersedes,
    };
    const seq = this.log.append((link) => this.format.serialize(this.format.build(p.req, p.outcome, ctx, link)));
    if (seq >= 0) this.counts.emitted++;
    return seq;
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

  /** Checks recorded / events linked into the chain / allow events left out by sampling. */
  stats(): { readonly recorded: number; readonly emitted: number; readonly sampledOut: number } {
    return { ...this.counts };
  }

  dropped(): Record<string, number> {
    return this.log.dropped();
  }

  /** Emits what is pending and waits for the sinks to deliver, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    this.drain();
    await this.log.flush(timeoutMs);
  }

  /**
   * Shutdown, first half (the lifecycle's `chain` stage): emits what is pending, then the
   * final checkpoint closes the chain.
   */
  finish(): void {
    this.drain();
    this.log.finish();
  }

  /** Shutdown: finish(), then each sink's final flush within `timeoutMs` (the rest is dropped and counted). */
  async close(timeoutMs: number): Promise<void> {
    this.finish();
    await this.log.close(timeoutMs);
  }
}
