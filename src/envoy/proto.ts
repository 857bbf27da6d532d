import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PACKAGE_ROOT } from '../lib/package-root.js';
import { AUTHORIZATION_SERVICE_NAME, HEALTH_SERVICE_NAME } from './service-names.js';

/**
 * proto-loader's definitions of the services hopguard serves, for clients: `hopguard call`,
 * tests and the bench. The server itself serves src/envoy/services.ts' definitions, built on
 * the lean codecs, and never loads this module (it parses the .proto files on import).
 * The message shapes below are shared by both (types only).
 */

/** The package's proto/ directory (package.json ships it next to dist/). */
export const PROTO_DIR: string = path.join(PACKAGE_ROOT, 'proto');

/**
 * Decoded-object options. keepCase: field names as in the .proto (snake_case);
 * longs/enums as strings; defaults: false so absent fields stay absent (every field
 * is optional in the shapes below); oneofs: true adds the oneof's virtual field.
 * Note: google.protobuf.* well-known types come from protobufjs' bundled JSON
 * definitions, whose field names are camelCase (`stringValue`, `boolValue`) even
 * with keepCase.
 */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

const packageDefinition: protoLoader.PackageDefinition = protoLoader.loadSync(
  ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'],
  LOADER_OPTIONS,
);

function service(name: string): grpc.ServiceDefinition {
  const def = packageDefinition[name];
  // A ServiceDefinition is a map of method definitions; a message type has `format`.
  if (def === undefined || 'format' in def) throw new Error(`proto: service ${name} not found`);
  return def;
}

export const authorizationServiceDefinition: grpc.ServiceDefinition = service(AUTHORIZATION_SERVICE_NAME);
export const healthServiceDefinition: grpc.ServiceDefinition = service(HEALTH_SERVICE_NAME);

// ---------------------------------------------------------------------------
// Decoded shapes. Everything from the wire is optional (defaults: false) and untrusted.

/** config.core.v3.HeaderValue. `raw_value` decodes to a Buffer. */
export interface HeaderValueMsg {
  key?: string;
  value?: string;
  raw_value?: Uint8Array | string;
}

export interface HeaderMapMsg {
  headers?: HeaderValueMsg[];
}

export interface PeerMsg {
  service?: string;
  labels?: Record<string, string>;
  principal?: string;
  certificate?: string;
}

export interface TimestampMsg {
  seconds?: string | number;
  nanos?: number;
}

export interface HttpRequestMsg {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  /**
   * Not a proto field: set by the lean decoder when it kept only the headers hopguard reads
   * (`decodeCheckRequestFor`), the number of `headers` entries on the wire, for
   * `limits.max_headers`.
   */
  header_entries?: number;
  /**
   * Not a proto field: the filter `decodeCheckRequestFor` applied to `headers`. The server
   * reads the token headers through it (src/envoy/request.ts).
   */
  header_filter?: KeptHeaders;
  header_map?: HeaderMapMsg;
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  /** int64; a decimal string with `longs: String`. */
  size?: string | number;
  protocol?: string;
  body?: string;
  raw_body?: Uint8Array | string;
}

/**
 * Which `http.headers` entries the server's decoder keeps, and the token header names they
 * serve (lower case). Implemented by HeaderFilter (src/envoy/request.ts).
 */
export interface KeptHeaders {
  readonly tokenHeaders: readonly string[];
  keeps(key: string): boolean;
}

export interface RequestMsg {
  time?: TimestampMsg;
  http?: HttpRequestMsg;
}

export interface AttributeContextMsg {
  source?: PeerMsg;
  destination?: PeerMsg;
  request?: RequestMsg;
  context_extensions?: Record<string, string>;
  tls_session?: { sni?: string };
}

export interface CheckRequestMsg {
  attributes?: AttributeContextMsg;
}

export type HeaderAppendAction =
  | 'APPEND_IF_EXISTS_OR_ADD'
  | 'ADD_IF_ABSENT'
  | 'OVERWRITE_IF_EXISTS_OR_ADD'
  | 'OVERWRITE_IF_EXISTS';

export interface HeaderValueOptionMsg {
  readonly header: { readonly key: string; readonly value: string };
  /** google.protobuf.BoolValue (deprecated in Envoy; set consistently with append_action). */
  readonly append?: { readonly value: boolean };
  readonly append_action?: HeaderAppendAction;
  readonly keep_empty_value?: boolean;
}

/** google.protobuf.Value as protobufjs' bundled Struct definition names it (camelCase). */
export type StructValueMsg = { stringValue: string } | { boolValue: boolean } | { numberValue: number };

export interface StructMsg {
  fields: Record<string, StructValueMsg>;
}

export interface RpcStatusMsg {
  /** google.rpc.Code: 0 OK, 7 PERMISSION_DENIED, 14 UNAVAILABLE, 16 UNAUTHENTICATED. */
  code: number;
  message?: string;
}

export interface DeniedHttpResponseMsg {
  /** envoy.type.v3.HttpStatus: the HTTP status number (the enum is open, any number encodes). */
  status: { code: number };
  headers: readonly HeaderValueOptionMsg[];
  body: string;
}

export interface OkHttpResponseMsg {
  readonly headers: readonly HeaderValueOptionMsg[];
  readonly headers_to_remove: readonly string[];
  readonly response_headers_to_add?: readonly HeaderValueOptionMsg[];
}

/** What hopguard sends; exactly one of denied_response / ok_response is set. */
export interface CheckResponseMsg {
  status: RpcStatusMsg;
  denied_response?: DeniedHttpResponseMsg;
  ok_response?: OkHttpResponseMsg;
  dynamic_metadata?: StructMsg;
}

export type ServingStatusName = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthCheckRequestMsg {
  service?: string;
}

export interface HealthCheckResponseMsg {
  status: ServingStatusName;
}
