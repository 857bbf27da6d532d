/**
 * The keep/drop choice for allow events under `events.sample_allow < 1`.
 *
 * It must be the same on every sidecar a request passes through (Envoy propagates
 * `x-request-id`, so a kept request can be followed hop by hop), and it must not be
 * predictable by whoever picks the request id — a caller inside the mesh — or that caller
 * could choose ids whose allow events are never written. So the choice is a keyed hash,
 * HMAC-SHA-256 of the request id under `events.sample_key`, a secret shared by the fleet
 * (from a Kubernetes Secret, `${VAR}` in the config). Without a configured key, each process
 * draws a random one: still unpredictable, but sidecars then no longer agree.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

export class RequestSampler {
  private readonly key: KeyObject;
  /** True when the key is the configured fleet-wide one (sidecars agree). */
  readonly fleetWide: boolean;

  constructor(sampleKey: string | undefined) {
    this.fleetWide = sampleKey !== undefined;
    this.key = createSecretKey(sampleKey === undefined ? randomBytes(32) : Buffer.from(sampleKey, 'utf8'));
  }

  /** The request's place in [0, 1): kept when below the sampling rate. */
  fraction(requestId: string): number {
    const mac = createHmac('sha256', this.key).update(requestId, 'utf8').digest();
    return mac.readUIntBE(0, 6) / 2 ** 48;
  }
}
