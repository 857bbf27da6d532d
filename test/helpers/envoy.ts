/**
 * Envoy's OFFICIAL protos (shipped in the devDependency @grpc/grpc-js-xds under `deps/`,
 * never copied into the repo), loaded once for every test that needs them:
 *   - `officialRoot()`: a protobufjs Root, for encode/decode wire-compatibility checks;
 *   - `officialAuthorizationClient()` / `officialClient()`: grpc-js clients that speak to
 *     hopguard exactly as Envoy does, never with hopguard's own definitions.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
// Besides loading for grpc-js, proto-loader registers google/protobuf/descriptor.proto with
// protobufjs, which the validate/udpa option extensions of the official files import.
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const depsDir = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');

export const OFFICIAL_INCLUDE_DIRS = ['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) =>
  path.join(depsDir, d),
);

const EXT_AUTHZ_PROTO = 'envoy/service/auth/v3/external_auth.proto';

/** A protobufjs Root of `files`, resolving imports against `includeDirs` (like protoc -I). */
export function loadRoot(files: string[], includeDirs: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

let root: protobuf.Root | undefined;
/** Envoy's official ext_authz v3 definitions as a protobufjs Root. */
export function officialRoot(): protobuf.Root {
  root ??= loadRoot([EXT_AUTHZ_PROTO], OFFICIAL_INCLUDE_DIRS);
  return root;
}

let clientCtor: grpc.ServiceClientConstructor | undefined;
/** grpc-js client constructor for `envoy.service.auth.v3.Authorization`, from the official protos. */
export function officialAuthorizationClient(): grpc.ServiceClientConstructor {
  clientCtor ??= grpc.makeGenericClientConstructor(
    protoLoader.loadSync([EXT_AUTHZ_PROTO], {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
      includeDirs: OFFICIAL_INCLUDE_DIRS,
    })['envoy.service.auth.v3.Authorization'] as grpc.ServiceDefinition,
    'Authorization',
  );
  return clientCtor;
}

export interface OfficialCheckResponse {
  status?: { code?: number; message?: string };
  denied_response?: {
    status?: { code?: string | number };
    headers?: { header?: { key: string; value: string }; append?: { value: boolean }; append_action?: string }[];
    body?: string;
  };
  ok_response?: {
    headers?: { header?: { key: string; value: string }; append?: { value: boolean }; append_action?: string }[];
    headers_to_remove?: string[];
  };
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; boolValue?: boolean; kind?: string }> };
  http_response?: string;
}

export interface EnvoyLikeClient {
  check(req: object, deadlineMs?: number): Promise<OfficialCheckResponse>;
  close(): void;
}

export function officialClient(address: string): EnvoyLikeClient {
  const Client = officialAuthorizationClient();
  const client = new Client(address, grpc.credentials.createInsecure());
  return {
    check(req, deadlineMs = 5000) {
      return new Promise((resolve, reject) => {
        (client as unknown as {
          Check(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: OfficialCheckResponse) => void): void;
        }).Check(req, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    },
    close: () => client.close(),
  };
}

export interface EnvoyRequestSpec {
  method?: string;
  /** Raw request target, query included. */
  path?: string;
  headers?: Record<string, string>;
  /**
   * When set, headers go in header_map (encode_raw_headers) with raw_value bytes; `headers`
   * is then sent too only if given explicitly.
   */
  rawHeaders?: [string, string][];
  principal?: string;
  /** PEM; URL-encoded here as Envoy does for include_peer_certificate. */
  certificatePem?: string;
  contextExtensions?: Record<string, string>;
}

/** Builds a CheckRequest shaped like Envoy's (lower-cased headers, pseudo headers, raw path). */
export function envoyCheckRequest(spec: EnvoyRequestSpec): object {
  const method = spec.method ?? 'POST';
  const p = spec.path ?? '/';
  const base: Record<string, string> = {
    ':authority': 'ledger.payments.svc.cluster.local',
    ':method': method,
    ':path': p,
    ':scheme': 'https',
    'user-agent': 'orders/1.4.2 grpc-go',
    'x-request-id': 'b4f0c1d2-1111-4c4c-9e9e-000000000001',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    'x-forwarded-proto': 'https',
    'content-type': 'application/json',
  };
  const headers = Object.fromEntries(
    Object.entries({ ...base, ...(spec.headers ?? {}) }).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const q = p.indexOf('?');
  const http: Record<string, unknown> = {
    id: '1234567890',
    method,
    path: p,
    host: 'ledger.payments.svc.cluster.local',
    scheme: 'https',
    query: q === -1 ? '' : p.slice(q + 1),
    protocol: 'HTTP/2',
    size: '-1',
  };
  if (spec.rawHeaders) {
    http.header_map = {
      headers: [...Object.entries(base), ...spec.rawHeaders].map(([key, value]) => ({
        key: key.toLowerCase(),
        raw_value: Buffer.from(value, 'utf8'),
      })),
    };
    // A request may carry both (the hostile case SPEC §1 calls multiple_tokens).
    if (spec.headers) http.headers = headers;
  } else {
    http.headers = headers;
  }
  const source: Record<string, unknown> = {
    address: { socket_address: { address: '10.0.0.7', port_value: 43120 } },
  };
  if (spec.principal !== undefined) source.principal = spec.principal;
  if (spec.certificatePem !== undefined) source.certificate = encodeURIComponent(spec.certificatePem);
  return {
    attributes: {
      source,
      destination: {
        address: { socket_address: { address: '10.0.0.9', port_value: 8443 } },
        principal: 'spiffe://prod.example.org/ns/payments/sa/ledger',
      },
      request: { time: { seconds: '1764200000', nanos: 0 }, http },
      context_extensions: spec.contextExtensions ?? {},
      metadata_context: { filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { x: { string_value: 'y' } } } } },
    },
  };
}
