/**
 * envoy.yaml (repo root) is a complete Envoy bootstrap. No Envoy runs here, so it is
 * validated the way Envoy reads it, against Envoy's own protos: YAML → JSON → strict check
 * of every field (typed_config Anys resolved to their real types) → protobuf encode/decode
 * as envoy.config.bootstrap.v3.Bootstrap. The assertions below are about the decoded
 * message, i.e. what Envoy would hold, not about the YAML text.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULTS } from '../../src/config/defaults.js';
import { checkJson, parseDuration, toProto, unpackAnys, type ProtoIssue } from '../helpers/deploy/envoy-proto.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const DISCOVERY_RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';
const EXT_AUTHZ = 'envoy.filters.http.ext_authz';
/** The second ext_authz, enabled only on audit-before-allow routes (SPEC §8). */
const AUDIT_SYNC = 'hopguard.audit_sync';
/** hopguard's audit.sync_timeout default, seconds: the audit_sync filter must wait longer. */
const AUDIT_SYNC_TIMEOUT_S = 1;
const T = (name: string) => `type.googleapis.com/${name}`;

type Obj = Record<string, unknown>;

function readYaml(rel: string): unknown {
  // yaml rejects duplicate keys by default: a duplicated key would otherwise silently win.
  return parse(readFileSync(path.join(ROOT, rel), 'utf8'));
}

const envoyJson = readYaml('envoy.yaml') as Obj;

/** The bootstrap as Envoy would hold it, Anys decoded into their real messages. */
const bootstrap = unpackAnys(toProto(BOOTSTRAP, envoyJson)) as Obj;

function get(o: unknown, ...keys: (string | number)[]): unknown {
  let v: unknown = o;
  for (const k of keys) v = (v as Record<string | number, unknown> | undefined)?.[k];
  return v;
}

function arr(o: unknown, ...keys: (string | number)[]): Obj[] {
  const v = get(o, ...keys);
  if (!Array.isArray(v)) throw new Error(`expected a list at ${keys.join('.')}`);
  return v as Obj[];
}

function byName(list: Obj[], name: string): Obj {
  const found = list.find((x) => x['name'] === name);
  if (!found) throw new Error(`no entry named ${name}`);
  return found;
}

function seconds(d: unknown): number {
  const o = d as { seconds?: string | number; nanos?: number };
  return Number(o.seconds ?? 0) + (o.nanos ?? 0) / 1e9;
}

const listeners = arr(bootstrap, 'static_resources', 'listeners');
const clusters = arr(bootstrap, 'static_resources', 'clusters');
const inbound = byName(listeners, 'inbound_mtls');
const inboundChain = arr(inbound, 'filter_chains')[0] as Obj;
const inboundHcm = get(arr(inboundChain, 'filters')[0], 'typed_config') as Obj;
const inboundFilters = arr(inboundHcm, 'http_filters');
const extAuthz = get(byName(inboundFilters, EXT_AUTHZ), 'typed_config') as Obj;
const inboundRoutes = arr(inboundHcm, 'route_config', 'virtual_hosts', 0, 'routes');

function allTypeUrls(v: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(v)) v.forEach((x) => allTypeUrls(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === '@type' && typeof x === 'string') out.add(x);
      else allTypeUrls(x, out);
    }
  }
  return out;
}

describe('envoy.yaml against the official Envoy protos', () => {
  it('is a valid envoy.config.bootstrap.v3.Bootstrap: no unknown, mistyped, deprecated or invalid field', () => {
    expect(checkJson(BOOTSTRAP, envoyJson)).toEqual([]);
  });

  it('resolves every typed_config to a real message type (and uses only these)', () => {
    expect([...allTypeUrls(envoyJson)].sort()).toEqual(
      [
        'envoy.config.route.v3.FilterConfig',
        'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
        'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
        'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
        'envoy.extensions.filters.http.health_check.v3.HealthCheck',
        'envoy.extensions.filters.http.router.v3.Router',
        'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
        'envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery',
        'envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
        'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      ].map(T),
    );
    // Decoding produced real messages, not opaque bytes.
    expect(extAuthz['@type']).toBe(T('envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'));
    expect(get(extAuthz, 'grpc_service', 'envoy_grpc', 'cluster_name')).toBe('hopguard');
  });

  it('the SDS resource files are valid DiscoveryResponses whose secrets envoy.yaml references', () => {
    const tlsContext = get(inboundChain, 'transport_socket', 'typed_config') as Obj;
    const refs = [
      ...arr(tlsContext, 'common_tls_context', 'tls_certificate_sds_secret_configs'),
      get(tlsContext, 'common_tls_context', 'combined_validation_context', 'validation_context_sds_secret_config') as Obj,
    ];
    expect(refs).toHaveLength(2);
    for (const ref of refs) {
      const file = get(ref, 'sds_config', 'path_config_source', 'path') as string;
      expect(file).toMatch(/^\/etc\/envoy\/sds\/[a-z_]+\.yaml$/);
      const json = readYaml(`deploy/base/envoy/${path.basename(file)}`);
      expect(checkJson(DISCOVERY_RESPONSE, json)).toEqual([]);
      const resources = arr(unpackAnys(toProto(DISCOVERY_RESPONSE, json)), 'resources');
      expect(resources.map((r) => [r['@type'], r['name']])).toEqual([
        [T('envoy.extensions.transport_sockets.tls.v3.Secret'), ref['name']],
      ]);
      // Rotation: Envoy re-reads the files when the mounted directory's contents are swapped.
      const secret = resources[0] as Obj;
      const watched = get(secret, 'tls_certificate', 'watched_directory', 'path') ?? get(secret, 'validation_context', 'watched_directory', 'path');
      expect(watched).toBe('/etc/envoy/tls');
    }
  });

  it('deploy/base/envoy/envoy.yaml is a byte-for-byte copy of envoy.yaml (kustomize cannot read outside its root)', () => {
    const canonical = readFileSync(path.join(ROOT, 'envoy.yaml'));
    const copy = readFileSync(path.join(ROOT, 'deploy/base/envoy/envoy.yaml'));
    expect(copy.equals(canonical), 'run: cp envoy.yaml deploy/base/envoy/envoy.yaml').toBe(true);
  });
});

describe('envoy.yaml: the settings that make hopguard effective', () => {
  it('inbound listener requires a client certificate and accepts only SPIFFE URI SANs of the trust domain', () => {
    const tls = get(inboundChain, 'transport_socket', 'typed_config') as Obj;
    expect(tls['@type']).toBe(T('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'));
    expect(get(tls, 'require_client_certificate')).toEqual({ value: true });
    const sans = arr(tls, 'common_tls_context', 'combined_validation_context', 'default_validation_context', 'match_typed_subject_alt_names');
    expect(sans).toEqual([{ san_type: 'URI', matcher: { prefix: 'spiffe://prod.example.org/' } }]);
    // Only one filter chain: no plaintext path into the workload on this port.
    expect(arr(inbound, 'filter_chains')).toHaveLength(1);
  });

  it('ext_authz: gRPC v3 to the hopguard cluster, fail closed, 503 on error, peer certificate included, timeout < 200ms', () => {
    expect(extAuthz['transport_api_version']).toBe('V3');
    // proto3 drops false on the wire, so check the YAML says it explicitly, and the message is not true.
    const yamlFilter = (
      ((envoyJson['static_resources'] as Obj)['listeners'] as Obj[])
        .flatMap((l) => l['filter_chains'] as Obj[])
        .flatMap((c) => c['filters'] as Obj[])
        .flatMap((f) => ((f['typed_config'] as Obj)['http_filters'] as Obj[]) ?? [])
        .find((f) => f['name'] === EXT_AUTHZ) as Obj
    )['typed_config'] as Obj;
    expect(yamlFilter['failure_mode_allow']).toBe(false);
    expect(extAuthz['failure_mode_allow']).toBeFalsy();
    expect(extAuthz['failure_mode_allow_header_add']).toBeFalsy();
    expect(extAuthz['include_peer_certificate']).toBe(true);
    expect(get(extAuthz, 'status_on_error', 'code')).toBe('ServiceUnavailable');
    const timeout = seconds(get(extAuthz, 'grpc_service', 'timeout'));
    expect(timeout).toBeGreaterThan(0);
    expect(timeout).toBeLessThanOrEqual(0.1);
    expect(timeout).toBeLessThan(0.2);
    // A filter_enabled / deny_at_disable setting could switch authorization off at runtime.
    expect(extAuthz['filter_enabled']).toBeUndefined();
    expect(extAuthz['filter_enabled_metadata']).toBeUndefined();
  });

  it('ext_authz forwards the token header(s) hopguard reads by default', () => {
    const allowed = arr(extAuthz, 'allowed_headers', 'patterns').map((p) => p['exact']);
    for (const h of DEFAULTS.token.headers) expect(allowed).toContain(h);
    expect(allowed).toContain('x-request-id');
  });

  it('ext_authz runs before the router on the inbound listener; the audit_sync one is off unless a route enables it', () => {
    expect(inboundFilters.map((f) => f['name'])).toEqual([EXT_AUTHZ, AUDIT_SYNC, 'envoy.filters.http.router']);
    expect(byName(inboundFilters, EXT_AUTHZ)['disabled']).toBeFalsy();
    expect(byName(inboundFilters, AUDIT_SYNC)['disabled']).toBe(true);
  });

  it('audit-before-allow routes use the audit_sync ext_authz: same guarantees, a timeout longer than audit.sync_timeout', () => {
    const sync = get(byName(inboundFilters, AUDIT_SYNC), 'typed_config') as Obj;
    expect(sync['@type']).toBe(T('envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'));
    const timeout = seconds(get(sync, 'grpc_service', 'timeout'));
    expect(timeout).toBeGreaterThan(AUDIT_SYNC_TIMEOUT_S);
    expect(timeout).toBeLessThanOrEqual(5);
    // Everything but the timeout is the main filter's: fail closed, 503 on error, peer
    // certificate, the same headers, the same cluster, the same stats prefix (so Envoy's
    // ext_authz alerts cover these routes too).
    const strip = (o: Obj) => {
      const c = structuredClone(o);
      delete (c['grpc_service'] as Obj)['timeout'];
      return c;
    };
    expect(strip(sync)).toEqual(strip(extAuthz));
    expect(sync['failure_mode_allow']).toBeFalsy();
  });

  it('every route that enables audit_sync sends audit: sync and turns the 100ms filter off; no other route enables it', () => {
    const enabled = inboundRoutes.filter((r) => get(r, 'typed_per_filter_config', AUDIT_SYNC) !== undefined);
    expect(enabled.map((r) => r['name'])).toEqual(['ledger_transfer']);
    for (const r of enabled) {
      const cfg = get(r, 'typed_per_filter_config', AUDIT_SYNC) as Obj;
      expect(cfg['@type']).toBe(T('envoy.config.route.v3.FilterConfig'));
      expect(cfg['disabled']).toBeFalsy();
      expect(get(cfg, 'config', '@type')).toBe(T('envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute'));
      expect(get(cfg, 'config', 'check_settings', 'context_extensions')).toEqual({ audit: 'sync' });
      expect(get(r, 'typed_per_filter_config', EXT_AUTHZ, 'disabled')).toBe(true);
      // The route itself waits longer than the Check can.
      expect(seconds(get(r, 'route', 'timeout'))).toBeGreaterThan(AUDIT_SYNC_TIMEOUT_S);
      expect(get(r, 'match', 'path')).toBe('/v1/ledger/transfers');
    }
    // audit: sync through the 100ms filter would time out in Envoy before hopguard answers.
    const viaMain = inboundRoutes.filter((r) => get(r, 'typed_per_filter_config', EXT_AUTHZ, 'check_settings', 'context_extensions', 'audit') !== undefined);
    expect(viaMain).toEqual([]);
  });

  it('hopguard cluster: loopback :9191, explicit HTTP/2, grpc.health.v1 health check', () => {
    const hg = byName(clusters, 'hopguard');
    expect(get(hg, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address')).toEqual({
      address: '127.0.0.1',
      port_value: 9191,
    });
    const opts = get(hg, 'typed_extension_protocol_options', 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions') as Obj;
    expect(opts['@type']).toBe(T('envoy.extensions.upstreams.http.v3.HttpProtocolOptions'));
    expect(get(opts, 'explicit_http_config', 'http2_protocol_options')).toBeDefined();
    const hc = arr(hg, 'health_checks');
    expect(hc).toHaveLength(1);
    expect(get(hc[0], 'grpc_health_check')).toEqual({ service_name: 'envoy.service.auth.v3.Authorization' });
  });

  it('only the exact GET /healthz route is unauthorized; every other inbound route goes through exactly one ext_authz', () => {
    const perRoute = (r: Obj) => get(r, 'typed_per_filter_config', EXT_AUTHZ) as Obj | undefined;
    const authorizers = (r: Obj) =>
      (perRoute(r)?.['disabled'] === true ? 0 : 1) + (get(r, 'typed_per_filter_config', AUDIT_SYNC) !== undefined ? 1 : 0);
    const disabled = inboundRoutes.filter((r) => authorizers(r) === 0);
    expect(disabled.map((r) => r['name'])).toEqual(['health']);
    for (const r of inboundRoutes) if (r['name'] !== 'health') expect(authorizers(r), String(r['name'])).toBe(1);
    const health = disabled[0] as Obj;
    expect(perRoute(health)?.['@type']).toBe(T('envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute'));
    expect(get(health, 'match', 'path')).toBe('/healthz');
    expect(get(health, 'match', 'prefix')).toBeUndefined();
    expect(get(health, 'match', 'headers')).toEqual([{ name: ':method', string_match: { exact: 'GET' } }]);
    // The catch-all route exists and is authorized.
    const last = inboundRoutes[inboundRoutes.length - 1] as Obj;
    expect(get(last, 'match', 'prefix')).toBe('/');
    expect(perRoute(last)).toBeUndefined();
    // Every route goes to the local app (no direct responses that bypass it silently).
    for (const r of inboundRoutes) expect(get(r, 'route', 'cluster')).toBe('local_app');
  });

  it('one route passes a context_extensions action to hopguard (example of SPEC §2 route actions)', () => {
    const withAction = inboundRoutes.filter((r) => get(r, 'typed_per_filter_config', EXT_AUTHZ, 'check_settings', 'context_extensions', 'action'));
    expect(withAction.map((r) => [r['name'], get(r, 'match', 'path')])).toEqual([['ledger_append', '/v1/ledger/entries']]);
  });

  it('access log records hopguard decision, reason and x-request-id from the ext_authz metadata namespace', () => {
    const logs = arr(inboundHcm, 'access_log');
    expect(logs).toHaveLength(1);
    const fmt = get(logs[0], 'typed_config', 'log_format', 'json_format', 'fields') as Record<string, Record<string, unknown>>;
    // google.protobuf.Value as decoded: one string member (stringValue).
    const values = Object.values(fmt).map((v) => Object.values(v)[0]);
    expect(values).toContain(`%DYNAMIC_METADATA(${EXT_AUTHZ}:decision)%`);
    expect(values).toContain(`%DYNAMIC_METADATA(${EXT_AUTHZ}:reason)%`);
    expect(values).toContain('%REQ(X-REQUEST-ID)%');
    // The namespace is the filter's name, so the metadata lands where the log reads it.
    expect(inboundFilters.some((f) => f['name'] === EXT_AUTHZ)).toBe(true);
  });

  it('downstream HTTP/2 is bounded: concurrent streams and flow-control windows per connection', () => {
    const h2 = get(inboundHcm, 'http2_protocol_options') as Obj;
    const v = (k: string) => Number(get(h2, k, 'value'));
    expect(v('max_concurrent_streams')).toBeGreaterThan(0);
    expect(v('max_concurrent_streams')).toBeLessThanOrEqual(100);
    // Envoy's defaults are 256 MiB windows; bounded here to what the app needs.
    expect(v('initial_stream_window_size')).toBeLessThanOrEqual(64 * 1024);
    expect(v('initial_connection_window_size')).toBeLessThanOrEqual(1024 * 1024);
    expect(v('initial_connection_window_size')).toBeGreaterThanOrEqual(v('initial_stream_window_size'));
    expect(Number(get(inbound, 'per_connection_buffer_limit_bytes', 'value'))).toBeLessThanOrEqual(64 * 1024);
  });

  it('access log: the authorization time is logged for denials too (Envoy sets ext_authz_duration only on allow)', () => {
    const fmt = get(arr(inboundHcm, 'access_log')[0], 'typed_config', 'log_format', 'json_format', 'fields') as Record<string, Record<string, string>>;
    const field = (k: string) => Object.values(fmt[k] ?? {})[0];
    expect(field('ext_authz_duration_ms')).toBe(`%DYNAMIC_METADATA(${EXT_AUTHZ}:ext_authz_duration)%`);
    // A denial is a local reply: request start to response start is the ext_authz round trip.
    expect(field('to_response_us')).toBe('%COMMON_DURATION(DS_RX_BEG:DS_TX_BEG:us)%');
    expect(field('to_upstream_us')).toBe('%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)%');
    // Envoy rejects an unknown command operator or time point at start-up; no Envoy runs
    // here, so the ones used are held to those Envoy 1.36 documents.
    const operators = new Set([
      'START_TIME', 'REQ', 'REQ_WITHOUT_QUERY', 'RESPONSE_CODE', 'RESPONSE_FLAGS', 'RESPONSE_CODE_DETAILS',
      'DURATION', 'DOWNSTREAM_PEER_URI_SAN', 'ROUTE_NAME', 'DYNAMIC_METADATA', 'COMMON_DURATION',
    ]);
    const points = new Set(['DS_RX_BEG', 'DS_RX_END', 'US_CX_BEG', 'US_CX_END', 'US_HS_END', 'US_TX_BEG', 'US_TX_END', 'US_RX_BEG', 'US_RX_BODY_BEG', 'US_RX_END', 'DS_TX_BEG', 'DS_TX_END']);
    for (const value of Object.values(fmt).map((x) => Object.values(x)[0] as string)) {
      for (const m of value.matchAll(/%([A-Z_]+)(?:\(([^)]*)\))?%/g)) {
        expect(operators, value).toContain(m[1]);
        if (m[1] === 'COMMON_DURATION') {
          const [start, end, precision] = (m[2] as string).split(':');
          expect(points, value).toContain(start);
          expect(points, value).toContain(end);
          expect(['ms', 'us', 'ns'], value).toContain(precision);
        }
      }
    }
  });

  it('references only clusters it defines; names and ports are unique (checks Envoy does at load, beyond the protos)', () => {
    const clusterNames = clusters.map((c) => c['name'] as string);
    expect(new Set(clusterNames).size).toBe(clusterNames.length);
    for (const c of clusters) expect(get(c, 'load_assignment', 'cluster_name'), String(c['name'])).toBe(c['name']);
    const referenced = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if ((k === 'cluster' || k === 'cluster_name') && typeof x === 'string') referenced.add(x);
          if (k === 'cluster_min_healthy_percentages' && x && typeof x === 'object') Object.keys(x).forEach((n) => referenced.add(n));
          walk(x);
        }
      }
    };
    walk(bootstrap['static_resources']);
    expect(referenced.size).toBeGreaterThanOrEqual(3);
    for (const r of referenced) expect(clusterNames, r).toContain(r);
    const ports = listeners.map((l) => get(l, 'address', 'socket_address', 'port_value'));
    expect(new Set(ports).size).toBe(ports.length);
    expect(new Set(listeners.map((l) => l['name'])).size).toBe(listeners.length);
  });

  it('the app and the admin API are reachable on loopback only', () => {
    const app = byName(clusters, 'local_app');
    expect(get(app, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'address')).toBe('127.0.0.1');
    expect(get(bootstrap, 'admin', 'address', 'socket_address', 'address')).toBe('127.0.0.1');
  });

  it('the plain-HTTP probe listener exposes only GET /app/healthz, /stats/prometheus and /ready', () => {
    const probe = byName(listeners, 'pod_local_http');
    const hcm = get(probe, 'filter_chains', 0, 'filters', 0, 'typed_config') as Obj;
    const routes = arr(hcm, 'route_config', 'virtual_hosts', 0, 'routes');
    const toApp = routes.filter((r) => get(r, 'route', 'cluster') === 'local_app');
    expect(toApp.map((r) => [get(r, 'match', 'path'), get(r, 'route', 'prefix_rewrite')])).toEqual([['/app/healthz', '/healthz']]);
    expect(get(routes[routes.length - 1], 'direct_response', 'status')).toBe(404);
    const filters = arr(hcm, 'http_filters');
    expect(filters.map((f) => f['name'])).toEqual(['envoy.filters.http.health_check', 'envoy.filters.http.router']);
    expect(get(filters[0], 'typed_config', 'cluster_min_healthy_percentages', 'hopguard', 'value')).toBe(100);
  });
});

// ------------------------------------------------------------------------------------------
// The checker itself: each mutation below must be caught, or the validation above proves
// nothing. Each mutates a fresh copy of the loaded envoy.yaml.

function mutated(mutate: (j: Obj) => void): ProtoIssue[] {
  const j = structuredClone(envoyJson);
  mutate(j);
  return checkJson(BOOTSTRAP, j);
}

const L = (j: Obj, i = 0) => ((j['static_resources'] as Obj)['listeners'] as Obj[])[i] as Obj;
const hcmOf = (j: Obj) => ((((L(j)['filter_chains'] as Obj[])[0] as Obj)['filters'] as Obj[])[0] as Obj)['typed_config'] as Obj;
const extAuthzOf = (j: Obj) => ((hcmOf(j)['http_filters'] as Obj[])[0] as Obj)['typed_config'] as Obj;
const tlsOf = (j: Obj) => (((L(j)['filter_chains'] as Obj[])[0] as Obj)['transport_socket'] as Obj)['typed_config'] as Obj;
const hopguardClusterOf = (j: Obj) => ((j['static_resources'] as Obj)['clusters'] as Obj[])[0] as Obj;
const healthRouteOf = (j: Obj) =>
  ((((hcmOf(j)['route_config'] as Obj)['virtual_hosts'] as Obj[])[0] as Obj)['routes'] as Obj[])[0] as Obj;
function rename(o: Obj, from: string, to: string): void {
  if (!(from in o)) throw new Error(`fixture drift: no ${from}`);
  o[to] = o[from];
  delete o[from];
}

describe('the strict checker catches what protobufjs would silently accept', () => {
  const cases: [string, (j: Obj) => void, RegExp, RegExp][] = [
    ['misspelled top-level field', (j) => rename(j, 'static_resources', 'static_resource'), /^static_resource$/, /unknown field "static_resource".*did you mean static_resources/],
    ['misspelled field inside the ext_authz typed_config', (j) => rename(extAuthzOf(j), 'failure_mode_allow', 'failure_mode_alow'), /http_filters\[0\]\.typed_config\.failure_mode_alow$/, /unknown field .*ExtAuthz\b/],
    ['misspelled field in an Any nested in an Any (TLS context inside the HCM listener)', (j) => rename(tlsOf(j), 'require_client_certificate', 'require_client_certificates'), /transport_socket\.typed_config\.require_client_certificates$/, /DownstreamTlsContext/],
    ['misspelled field in the per-route ExtAuthzPerRoute', (j) => rename((healthRouteOf(j)['typed_per_filter_config'] as Obj)[EXT_AUTHZ] as Obj, 'disabled', 'disable'), /typed_per_filter_config\.envoy\.filters\.http\.ext_authz\.disable$/, /unknown field/],
    ['misspelled field in typed_extension_protocol_options', (j) => rename(((hopguardClusterOf(j)['typed_extension_protocol_options'] as Obj)['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'] as Obj)['explicit_http_config'] as Obj, 'http2_protocol_options', 'http2_protocol_option'), /explicit_http_config\.http2_protocol_option$/, /unknown field/],
    ['camelCase field name', (j) => rename(extAuthzOf(j), 'include_peer_certificate', 'includePeerCertificate'), /includePeerCertificate$/, /snake_case: include_peer_certificate/],
    ['duration written as a number', (j) => { ((extAuthzOf(j)['grpc_service'] as Obj)['timeout'] = 100); }, /grpc_service\.timeout$/, /expected a duration/],
    ['unknown @type', (j) => { extAuthzOf(j)['@type'] = T('envoy.extensions.filters.http.ext_authz.v3.ExtAuth'); }, /typed_config\.@type$/, /unknown message type/],
    ['unknown enum value', (j) => { extAuthzOf(j)['transport_api_version'] = 'V4'; }, /transport_api_version$/, /unknown .*ApiVersion value "V4"/],
    ['bool written as a string', (j) => { extAuthzOf(j)['failure_mode_allow'] = 'false'; }, /failure_mode_allow$/, /expected true or false/],
    ['two members of one oneof', (j) => { (extAuthzOf(j)['grpc_service'] as Obj)['google_grpc'] = { target_uri: '127.0.0.1:9191', stat_prefix: 'x' }; }, /grpc_service\.google_grpc$/, /oneof target_specifier/],
    ['a required oneof left empty', (j) => { delete (extAuthzOf(j)['grpc_service'] as Obj)['envoy_grpc']; }, /grpc_service$/, /requires one of: envoy_grpc, google_grpc/],
    ['PGV string.min_len (empty cluster name)', (j) => { ((extAuthzOf(j)['grpc_service'] as Obj)['envoy_grpc'] as Obj)['cluster_name'] = ''; }, /envoy_grpc\.cluster_name$/, /at least 1 character/],
    ['PGV bool.const (ExtAuthzPerRoute.disabled: false)', (j) => { ((healthRouteOf(j)['typed_per_filter_config'] as Obj)[EXT_AUTHZ] as Obj)['disabled'] = false; }, /\.disabled$/, /must be true/],
    ['deprecated field (Cluster.http2_protocol_options)', (j) => { hopguardClusterOf(j)['http2_protocol_options'] = {}; }, /clusters\[0\]\.http2_protocol_options$/, /deprecated field/],
    ['empty YAML value (null)', (j) => { extAuthzOf(j)['status_on_error'] = null; }, /status_on_error$/, /null/],
    ['list where an object belongs', (j) => { extAuthzOf(j)['allowed_headers'] = ['delegation-token']; }, /allowed_headers$/, /expected an object/],
  ];

  it.each(cases)('%s', (_name, mutate, pathRe, messageRe) => {
    const issues = mutated(mutate);
    expect(issues.length, JSON.stringify(issues)).toBeGreaterThan(0);
    expect(issues.some((i) => pathRe.test(i.path) && messageRe.test(i.message)), JSON.stringify(issues, null, 1)).toBe(true);
  });

  it('protobufjs alone would have accepted the misspelling (why the strict checker exists)', () => {
    const j = structuredClone(envoyJson);
    rename(j, 'static_resources', 'static_resource');
    expect(() => toProto(BOOTSTRAP, j)).not.toThrow();
    expect(checkJson(BOOTSTRAP, j)).not.toEqual([]);
  });

  it('parses durations as Envoy does', () => {
    expect(parseDuration('0.1s')).toEqual({ seconds: 0, nanos: 100_000_000 });
    expect(parseDuration('5s')).toEqual({ seconds: 5, nanos: 0 });
    for (const bad of ['100ms', '0.1', '1.0000000001s', 's', '']) expect(parseDuration(bad)).toBeUndefined();
  });
});
