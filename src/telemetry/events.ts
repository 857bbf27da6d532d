import type { HopRequest, Outcome } from '../core/types.js';

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

export function buildDecisionEvent(
  req: HopRequest,
  outcome: Outcome,
  ctx: { readonly workload: string; readonly tsMs: number; readonly latencyUs: number },
): DecisionEvent {
  const { decision, audit } = outcome;
  const q = req.path.indexOf('?');
  return {
    event: 'hopguard.decision',
    v: 1,
    ts: new Date(ctx.tsMs).toISOString(),
    decision: decision.allow ? 'allow' : 'deny',
    enforced: outcome.enforced,
    reason: decision.reason,
    status: decision.status,
    request_id: cap(req.requestId),
    trace_id: req.traceId,
    method: cap(req.method),
    path: cap(q === -1 ? req.path : req.path.slice(0, q)),
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

/** Where serialized events go. `write` must not block and must not throw. */
export interface EventSink {
  readonly name: string;
  /** Returns false when the line was dropped (the sink counts it). */
  write(line: string): boolean;
  dropped(): number;
  flush(timeoutMs: number): Promise<void>;
}

/**
 * Stdout sink. `process.stdout` to a pipe is asynchronous in Node: a slow reader makes its
 * buffer grow without bound. We cap the bytes queued in the stream and count what we drop
 * rather than let a stalled log collector take the sidecar's memory.
 */
export class StdoutSink implements EventSink {
  readonly name = 'stdout';
  private drops = 0;
  constructor(
    private readonly stream: NodeJS.WritableStream & { writableLength?: number } = process.stdout,
    private readonly maxPendingBytes = 16 * 1024 * 1024,
  ) {}
  write(line: string): boolean {
    if ((this.stream.writableLength ?? 0) > this.maxPendingBytes) {
      this.drops++;
      return false;
    }
    try {
      this.stream.write(line);
      return true;
    } catch {
      this.drops++;
      return false;
    }
  }
  dropped(): number {
    return this.drops;
  }
  flush(timeoutMs: number): Promise<void> {
    if ((this.stream.writableLength ?? 0) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.stream.once('drain', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** Fans each decision out to every sink; emitting never throws into the Check path. */
export class EventEmitterPipeline {
  private emitted = 0;
  constructor(private readonly sinks: readonly EventSink[]) {}
  emit(ev: DecisionEvent): void {
    let line: string;
    try {
      line = JSON.stringify(ev) + '\n';
    } catch {
      return;
    }
    this.emitted++;
    for (const s of this.sinks) s.write(line);
  }
  count(): number {
    return this.emitted;
  }
  dropped(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.sinks) out[s.name] = s.dropped();
    return out;
  }
  async flush(timeoutMs: number): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.flush(timeoutMs)));
  }
}
