import type * as grpc from '@grpc/grpc-js';
import { decodeStringField1 } from './decode.js';
import { EncodeError } from './encode.js';
import { HEALTH_SERVICE_NAME } from './service-names.js';
import type { HealthCheckRequestMsg, HealthCheckResponseMsg, ServingStatusName } from './proto.js';

/**
 * The gRPC methods the server serves, built on hopguard's own codecs: `serve` parses no
 * .proto file and never loads proto-loader or protobufjs. Loading Envoy's external_auth.proto
 * and its imports (~200 message types) cost ~10 MB of resident memory and ~0.2–0.3 s of
 * start-up, for descriptors the lean codecs never consult (bench/RESULTS.md, issue 17).
 * proto.ts keeps proto-loader's definitions for clients (`hopguard call`, tests, the bench);
 * test/conformance/ holds these codecs to them and to Envoy's official protos.
 *
 * grpc-js' server reads a method's path, its streaming flags, requestDeserialize and
 * responseSerialize; the client-side codecs of a definition are never called by a server,
 * and here they refuse, so a client can never be built on a server-only definition by mistake.
 */

function serverOnly(): never {
  throw new Error('a server-side method definition: no client codecs');
}

export function serverMethod<Req, Res>(
  service: string,
  name: string,
  requestDeserialize: (b: Buffer) => Req,
  responseSerialize: (m: Res) => Buffer,
  responseStream = false,
): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/${service}/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: serverOnly,
    requestDeserialize,
    responseSerialize,
    responseDeserialize: serverOnly,
    originalName: name.charAt(0).toLowerCase() + name.slice(1),
  };
}

// ---- grpc.health.v1 ---------------------------------------------------------------------
// message HealthCheckRequest { string service = 1; }
// message HealthCheckResponse { ServingStatus status = 1; }
// enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }

const SERVING_STATUS: Readonly<Record<ServingStatusName, number>> = Object.freeze({
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
});

/** Every answer the health service can give, encoded once (they are two or three bytes). */
const HEALTH_ANSWERS: ReadonlyMap<string, Buffer> = new Map(
  Object.entries(SERVING_STATUS).map(([name, n]) => [name, n === 0 ? Buffer.alloc(0) : Buffer.from([0x08, n])]),
);

/** HealthCheckResponse: the status as field 1, omitted when 0 (proto3's default, UNKNOWN). */
export function encodeHealthCheckResponse(msg: HealthCheckResponseMsg): Buffer {
  const bytes = typeof msg?.status === 'string' ? HEALTH_ANSWERS.get(msg.status) : undefined;
  if (bytes === undefined) throw new EncodeError(`HealthCheckResponse: unknown status ${String(msg?.status)}`);
  return Buffer.from(bytes);
}

/**
 * HealthCheckRequest: `service` when present; unknown fields skipped; malformed input throws
 * a DecodeError (grpc-js then answers INTERNAL). decode.ts owns the wire rules.
 */
export function decodeHealthCheckRequest(b: Buffer): HealthCheckRequestMsg {
  const service = decodeStringField1(b, 'HealthCheckRequest');
  return service === undefined ? {} : { service };
}

export const healthServiceDefinition: grpc.ServiceDefinition = {
  Check: serverMethod(HEALTH_SERVICE_NAME, 'Check', decodeHealthCheckRequest, encodeHealthCheckResponse),
  Watch: serverMethod(HEALTH_SERVICE_NAME, 'Watch', decodeHealthCheckRequest, encodeHealthCheckResponse, true),
};
