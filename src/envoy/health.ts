import * as grpc from '@grpc/grpc-js';
import type { HealthCheckRequestMsg, HealthCheckResponseMsg, ServingStatusName } from './proto.js';
import { AUTHORIZATION_SERVICE_NAME } from './service-names.js';

/**
 * Serving state behind grpc.health.v1 (Envoy's cluster health check). One flag covers
 * both names we answer for: '' (the server as a whole) and the ext_authz service.
 * Starts NOT_SERVING unless told otherwise: the composition root flips it once ready.
 */
export class HealthState {
  static readonly SERVICES: readonly string[] = Object.freeze(['', AUTHORIZATION_SERVICE_NAME]);

  #serving: boolean;
  readonly #listeners = new Set<() => void>();

  constructor(serving = false) {
    this.#serving = serving;
  }

  get serving(): boolean {
    return this.#serving;
  }

  setServing(serving: boolean): void {
    if (serving === this.#serving) return;
    this.#serving = serving;
    for (const l of [...this.#listeners]) {
      try {
        l();
      } catch {
        // a broken watcher must not stop the others from hearing the change
      }
    }
  }

  /** Status of a service name, or undefined when we do not serve that name. */
  status(service: string): 'SERVING' | 'NOT_SERVING' | undefined {
    if (!HealthState.SERVICES.includes(service)) return undefined;
    return this.#serving ? 'SERVING' : 'NOT_SERVING';
  }

  /** Called after every change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export interface HealthService {
  readonly implementation: grpc.UntypedServiceImplementation;
  /** Ends every open Watch stream (server shutdown) and every later one at once. */
  close(): void;
}

/** The grpc.health.v1.Health handlers for one server, bound to `state`. */
export function createHealthService(state: HealthState): HealthService {
  const watches = new Set<{ stop(): void; end(): void }>();
  let closed = false;

  const check: grpc.handleUnaryCall<HealthCheckRequestMsg, HealthCheckResponseMsg> = (call, callback) => {
    const service = typeof call.request?.service === 'string' ? call.request.service : '';
    const status = state.status(service);
    if (status === undefined) {
      callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' }, null);
      return;
    }
    callback(null, { status });
  };

  const watch: grpc.handleServerStreamingCall<HealthCheckRequestMsg, HealthCheckResponseMsg> = (call) => {
    const service = typeof call.request?.service === 'string' ? call.request.service : '';
    // gRPC health spec: an unknown service gets SERVICE_UNKNOWN and the stream stays
    // open (its status could become known later; ours never does, but clients expect it).
    const current = (): ServingStatusName => state.status(service) ?? 'SERVICE_UNKNOWN';
    let last = current();
    call.write({ status: last });
    if (closed) {
      call.end();
      return;
    }
    const unsubscribe = state.onChange(() => {
      const now = current();
      if (now === last) return;
      last = now;
      call.write({ status: now });
    });
    const w = {
      stop(): void {
        if (!watches.delete(w)) return;
        unsubscribe();
      },
      end(): void {
        w.stop();
        call.end();
      },
    };
    watches.add(w);
    call.on('cancelled', w.stop);
    call.on('close', w.stop);
    call.on('error', w.stop);
  };

  return {
    implementation: { Check: check, Watch: watch },
    close(): void {
      closed = true;
      for (const w of [...watches]) w.end();
    },
  };
}
