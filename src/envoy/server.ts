import * as grpc from '@grpc/grpc-js';
import { deny } from '../core/decision.js';
import { hopRequest } from '../core/request.js';
import type { HopRequest, Outcome } from '../core/types.js';
import { decodeCheckRequest, decodeCheckRequestFor } from './decode.js';
import { encodeCheckResponse } from './encode.js';
import { createHealthService, type HealthState } from './health.js';
import type { CheckRequestMsg, CheckResponseMsg } from './proto.js';
import { AUTHORIZATION_SERVICE_NAME } from './service-names.js';
import { healthServiceDefinition, serverMethod } from './services.js';
import { capRequestId, headerCount, HeaderFilters, keptHeadersOf, toHopRequest } from './request.js';
import { internalErrorResponse, toCheckResponse } from './response.js';

export interface GrpcServerOptions {
  /** `host:port`; port 0 picks a free port; IPv6 as `[::1]:0`. */
  readonly address: string;
  /**
   * The decision for one hop: a value when known at once (the hot path: no promise, no
   * microtask), else a promise. A rejection or throw is answered with internal_error (503).
   */
  readonly authorize: (req: HopRequest) => Outcome | Promise<Outcome>;
  /** Read per call so a config reload applies to the next Check. */
  readonly tokenHeaders: () => readonly string[];
  readonly upstreamHeaders: () => boolean;
  /**
   * Called exactly once per Check after the answer is sent (telemetry). Its exceptions
   * (and rejections, if it returns a promise) are swallowed: they never change an answer.
   */
  readonly onDecision?: (req: HopRequest, outcome: Outcome, response: CheckResponseMsg, latencyNs: bigint) => void;
  /** Told about faults that became internal_error answers or broke onDecision (for logs). */
  readonly onError?: (err: unknown, stage: 'check' | 'onDecision') => void;
  readonly health: HealthState;
  /** Bytes; grpc-js' default (4 MiB) when unset. Requests carrying bodies can be large. */
  readonly maxReceiveMessageLength?: number;
  /**
   * `limits.max_headers`: a Check with more entries in `headers` + `header_map` is answered
   * with gRPC RESOURCE_EXHAUSTED before any decision work (no reason code fits a request
   * that is not a request Envoy would send; Envoy turns the error into a deny). Unlimited
   * when unset.
   */
  readonly maxHeaders?: number;
  /** Told about each request refused for a limit (for logs); exceptions are swallowed. */
  readonly onLimit?: (what: 'max_headers', detail: string) => void;
}

export interface GrpcServerHandle {
  readonly port: number;
  readonly server: grpc.Server;
  /**
   * Marks health NOT_SERVING, ends Watch streams, lets in-flight Checks finish for up
   * to `graceMs`, then cancels whatever is left.
   */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * The Authorization service as the server serves it, on the lean codecs (src/envoy/services.ts:
 * no .proto is parsed at run time). The decoder (src/envoy/decode.ts) reads only the fields
 * hopguard uses and, of `http.headers`, only the names it reads, following `tokenHeaders()`
 * across config reloads (the filter is rebuilt when the list changes); a malformed message
 * throws, which grpc-js answers with INTERNAL without calling the handler. The encoder
 * (src/envoy/encode.ts) writes the same bytes proto-loader would, without its intermediate
 * objects.
 */
export function checkServiceDefinition(
  tokenHeaders: () => readonly string[],
  filters: HeaderFilters = new HeaderFilters(),
): grpc.ServiceDefinition {
  const requestDeserialize = (b: Buffer): CheckRequestMsg => {
    let current: readonly string[];
    try {
      current = tokenHeaders();
    } catch {
      // Decode everything; the handler reads tokenHeaders again and answers its fault
      // with an internal_error deny that carries the request id.
      return decodeCheckRequest(b);
    }
    // The message carries its filter: the handler reads the token headers through it.
    return decodeCheckRequestFor(b, filters.for(current));
  };
  return { Check: serverMethod(AUTHORIZATION_SERVICE_NAME, 'Check', requestDeserialize, encodeCheckResponse) };
}

/** The outcome reported for a Check that faulted: enforced even in dry-run (fail closed). */
const INTERNAL_ERROR_OUTCOME: Outcome = Object.freeze({
  decision: deny('internal_error'),
  enforced: true,
  audit: Object.freeze({}),
});

export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServerHandle> {
  // No channelz: hopguard serves no channelz service, and its per-call bookkeeping (a
  // tracker, listeners and counters on every stream) was ~2% of a cached Check. Without it,
  // grpc-js 1.14's forceShutdown no longer destroys open sessions, so shutdown answers any
  // Check still unanswered at the end of the grace period itself (internal_error, as for
  // any fault): its stream then ends and the sessions close (envoy-server.test.ts).
  const serverOptions: grpc.ServerOptions = { 'grpc.enable_channelz': 0 };
  if (opts.maxReceiveMessageLength !== undefined) {
    serverOptions['grpc.max_receive_message_length'] = opts.maxReceiveMessageLength;
  }
  const server = new grpc.Server(serverOptions);
  const health = createHealthService(opts.health);

  const inFlight = new Set<InFlight>();
  const filters = new HeaderFilters();
  server.addService(checkServiceDefinition(opts.tokenHeaders, filters), { Check: checkHandler(opts, inFlight, filters) });
  server.addService(healthServiceDefinition, health.implementation);

  // Insecure (plaintext) on purpose: hopguard is a sidecar and Envoy calls it over
  // loopback inside the pod (SPEC §4 keeps listen.grpc on 127.0.0.1). The caller's
  // identity comes from Envoy's mTLS termination, not from this channel.
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(opts.address, grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) {
        server.forceShutdown(); // release whatever was set up; the caller gets the error
        reject(err);
      } else resolve(p);
    });
  });

  let shuttingDown: Promise<void> | undefined;
  return {
    port,
    server,
    shutdown(graceMs: number): Promise<void> {
      shuttingDown ??= new Promise<void>((resolve) => {
        opts.health.setServing(false);
        health.close();
        let backstop: NodeJS.Timeout | undefined;
        const timer = setTimeout(() => {
          answerHung(opts, inFlight);
          server.forceShutdown();
          // The answers above end every stream, so tryShutdown completes; should a session
          // still not close, shutdown must not wait for it forever.
          backstop = setTimeout(resolve, FORCE_BACKSTOP_MS);
          backstop.unref();
        }, Math.max(0, graceMs));
        server.tryShutdown(() => {
          clearTimeout(timer);
          if (backstop !== undefined) clearTimeout(backstop);
          resolve();
        });
      });
      return shuttingDown;
    },
  };
}

/** After the grace period: how long shutdown waits for sessions to close before resolving. */
const FORCE_BACKSTOP_MS = 1000;

/** A Check waiting for an asynchronous decision (the only kind that can hang). */
interface InFlight {
  readonly msg: CheckRequestMsg;
  readonly req: HopRequest;
  readonly callback: grpc.sendUnaryData<CheckResponseMsg>;
  readonly started: bigint;
  done: boolean;
}

/** shutdown.grace is over: every Check still waiting is answered internal_error now. */
function answerHung(opts: GrpcServerOptions, inFlight: Set<InFlight>): void {
  for (const c of inFlight) {
    c.done = true;
    fault(opts, new Error('shutdown.grace expired before this Check was decided: answered internal_error'));
    finish(opts, c.msg, c.req, FAULTED, c.callback, c.started);
  }
  inFlight.clear();
}

function checkHandler(
  opts: GrpcServerOptions,
  inFlight: Set<InFlight>,
  filters: HeaderFilters,
): grpc.handleUnaryCall<CheckRequestMsg, CheckResponseMsg> {
  // Envoy's per-call timeout arrives as the gRPC deadline: grpc-js cancels the call and
  // drops a late answer, so a slow authorize needs no extra handling here; the decision
  // is still reported once it completes.
  const maxHeaders = opts.maxHeaders;
  return (call, callback) => {
    if (maxHeaders !== undefined && overHeaderLimit(call.request, maxHeaders)) {
      refuse(opts, callback, `request has more than ${maxHeaders} headers (limits.max_headers)`);
      return;
    }
    answer(opts, call.request, callback, inFlight, filters);
  };
}

function overHeaderLimit(msg: CheckRequestMsg, limit: number): boolean {
  try {
    return headerCount(msg, limit) > limit;
  } catch {
    return false; // cannot happen with decoded messages; answer() then fails closed on its own
  }
}

/** A request over a limit: a gRPC error, never a decision (and so never an allow). */
function refuse(opts: GrpcServerOptions, callback: grpc.sendUnaryData<CheckResponseMsg>, detail: string): void {
  try {
    opts.onLimit?.('max_headers', detail);
  } catch {
    // logging must not affect the answer
  }
  callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: detail }, null);
}

function answer(
  opts: GrpcServerOptions,
  msg: CheckRequestMsg,
  callback: grpc.sendUnaryData<CheckResponseMsg>,
  inFlight: Set<InFlight>,
  filters: HeaderFilters,
): void {
  const started = process.hrtime.bigint();
  let req: HopRequest | undefined;
  let pending: Outcome | Promise<Outcome>;
  try {
    // The token header list is read once per Check, by the decoder: the message carries
    // the filter it was decoded with. Only a message decoded without one (the header list
    // could not be read then) reads it here.
    req = toHopRequest(msg, keptHeadersOf(msg) ?? filters.for(opts.tokenHeaders()));
    pending = opts.authorize(req);
  } catch (err) {
    fault(opts, err);
    finish(opts, msg, req, FAULTED, callback, started);
    return;
  }
  if (pending instanceof Promise) {
    // Tracked until decided, so shutdown can answer it if it never is (see answerHung).
    const c: InFlight = { msg, req, callback, started, done: false };
    inFlight.add(c);
    pending.then(
      (o) => {
        if (c.done) return; // already answered by shutdown
        c.done = true;
        inFlight.delete(c);
        finish(opts, msg, c.req, o, callback, started);
      },
      (err: unknown) => {
        if (c.done) return;
        c.done = true;
        inFlight.delete(c);
        fault(opts, err);
        finish(opts, msg, c.req, FAULTED, callback, started);
      },
    );
  } else {
    finish(opts, msg, req, pending, callback, started);
  }
}

/** Marks a Check whose fault was already reported: answered internal_error, enforced. */
const FAULTED: unique symbol = Symbol('faulted');

/**
 * Outcome → answer, exactly one callback, then at most one report. A fault, or an outcome
 * whose shape makes toCheckResponse throw, is answered internal_error (enforced).
 */
function finish(
  opts: GrpcServerOptions,
  msg: CheckRequestMsg,
  req: HopRequest | undefined,
  o: Outcome | typeof FAULTED,
  callback: grpc.sendUnaryData<CheckResponseMsg>,
  started: bigint,
): void {
  let outcome: Outcome = INTERNAL_ERROR_OUTCOME;
  let response: CheckResponseMsg | undefined;
  if (o !== FAULTED && req !== undefined) {
    try {
      response = toCheckResponse(o, req, { upstreamHeaders: opts.upstreamHeaders() });
      outcome = o;
    } catch (err) {
      // Fail closed on any fault: the outcome's shape, config getters.
      response = undefined;
      outcome = INTERNAL_ERROR_OUTCOME;
      fault(opts, err);
    }
  }
  // From here on nothing may throw: exactly one callback, then at most one report.
  response ??= internalErrorResponse(req?.requestId ?? bestEffortRequestId(msg));
  const latencyNs = process.hrtime.bigint() - started;
  try {
    callback(null, response);
  } catch (err) {
    fault(opts, err);
  }
  report(opts, req ?? fallbackRequest(msg), outcome, response, latencyNs);
}

function fault(opts: GrpcServerOptions, err: unknown): void {
  try {
    opts.onError?.(err, 'check');
  } catch {
    // logging must not affect the answer
  }
}

function report(
  opts: GrpcServerOptions,
  req: HopRequest,
  outcome: Outcome,
  response: CheckResponseMsg,
  latencyNs: bigint,
): void {
  if (opts.onDecision === undefined) return;
  try {
    const r: unknown = opts.onDecision(req, outcome, response, latencyNs);
    if (r instanceof Promise) r.catch((err: unknown) => onDecisionError(opts, err));
  } catch (err) {
    onDecisionError(opts, err);
  }
}

function onDecisionError(opts: GrpcServerOptions, err: unknown): void {
  try {
    opts.onError?.(err, 'onDecision');
  } catch {
    // ignore
  }
}

/** For the internal_error answer when toHopRequest itself failed. */
function bestEffortRequestId(msg: unknown): string {
  try {
    const http = (msg as CheckRequestMsg | undefined)?.attributes?.request?.http;
    const h = http?.headers;
    const v = h !== undefined && Object.hasOwn(h, 'x-request-id') ? h['x-request-id'] : http?.id;
    return typeof v === 'string' ? capRequestId(v) : '';
  } catch {
    return '';
  }
}

function fallbackRequest(msg: unknown): HopRequest {
  return hopRequest({
    method: '',
    path: '',
    tokenFromHeaders: [],
    tokenFromHeaderMap: [],
    caller: undefined,
    callerCertificate: undefined,
    contextExtensions: {},
    requestId: bestEffortRequestId(msg),
    traceId: '',
  });
}
