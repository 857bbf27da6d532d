/**
 * deploy/ renders with `kubectl kustomize` (base and every overlay), every rendered object
 * validates against its Kubernetes / prometheus-operator / Istio schema and type-checks
 * strictly against the same packages' interfaces (unknown fields rejected), and the
 * settings that make hopguard work in a pod hold: native sidecar, probes on the admin port,
 * ext_authz on loopback, workload.id from the downward API, hardened containers, the
 * hopguard config passing `hopguard validate`, the Envoy config equal to envoy.yaml.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { splitHostPort } from '../../src/config/checks.js';
import { main } from '../../src/main.js';
import { checkJson } from '../helpers/deploy/envoy-proto.js';
import { containerEnv, render, ROOT, schemaKey, strictTypeCheck, validateObject, type K8sObject } from '../helpers/deploy/k8s.js';

const OVERLAYS = [
  'deploy/base',
  'deploy/overlays/dry-run',
  'deploy/overlays/istio',
  'deploy/overlays/replay-redis',
  'deploy/overlays/replay-redis-valkey',
] as const;
type Overlay = (typeof OVERLAYS)[number];
const NAMESPACE = 'payments'; // any namespace the user applies into (-n)

const rendered = new Map<Overlay, K8sObject[]>(OVERLAYS.map((o) => [o, render(o)]));

function objects(overlay: Overlay): K8sObject[] {
  return rendered.get(overlay) as K8sObject[];
}

function one(overlay: Overlay, kind: string, name?: string): K8sObject {
  const found = objects(overlay).filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`${overlay}: expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as K8sObject;
}

/**
 * The NetworkPolicy's ingress: ports open to any source (`from` absent) and ports admitted
 * only from the monitoring namespace.
 */
function monitoringOnly(overlay: Overlay): { open: number[]; monitoring: number[] } {
  const np = one(overlay, 'NetworkPolicy') as unknown as {
    spec: { ingress: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> }; podSelector?: unknown; ipBlock?: unknown }[]; ports: { port: number }[] }[] };
  };
  const open: number[] = [];
  const monitoring: number[] = [];
  for (const rule of np.spec.ingress) {
    const ports = rule.ports.map((p) => p.port);
    if (rule.from === undefined) open.push(...ports);
    else {
      // Every peer of the rule is the monitoring namespace (no ipBlock, no other namespace).
      for (const peer of rule.from) expect(peer.namespaceSelector?.matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'monitoring' });
      monitoring.push(...ports);
    }
  }
  return { open: open.sort((a, b) => a - b), monitoring: monitoring.sort((a, b) => a - b) };
}

/** A generated ConfigMap by its name before kustomize's hash suffix. */
function configMap(overlay: Overlay, base: string): K8sObject {
  const found = objects(overlay).filter((o) => o.kind === 'ConfigMap' && new RegExp(`^${base}-[a-z0-9]{10}$`).test(o.metadata.name));
  if (found.length !== 1) throw new Error(`${overlay}: expected one ConfigMap ${base}-<hash>, found ${found.length}`);
  return found[0] as K8sObject;
}

type Container = {
  name: string;
  image?: string;
  args?: string[];
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type Probe = { httpGet?: { path: string; port: string | number }; tcpSocket?: { port: string | number } };

function podSpec(overlay: Overlay): Record<string, unknown> & { initContainers?: Container[]; containers: Container[]; volumes?: Record<string, unknown>[] } {
  const dep = one(overlay, 'Deployment', 'hopguard-demo') as unknown as { spec: { template: { spec: ReturnType<typeof podSpec> } } };
  return dep.spec.template.spec;
}

function container(overlay: Overlay, name: string): Container {
  const spec = podSpec(overlay);
  const c = [...(spec.initContainers ?? []), ...spec.containers].find((x) => x.name === name);
  if (!c) throw new Error(`${overlay}: no container ${name}`);
  return c;
}

function portNumber(c: Container, port: string | number): number {
  if (typeof port === 'number') return port;
  const p = c.ports?.find((x) => x.name === port);
  if (!p) throw new Error(`container ${c.name} has no port named ${port}`);
  return p.containerPort;
}

/**
 * Secrets the README tells the operator to create with kubectl (never in the repository):
 * the shared replay store's URL, for deploy/overlays/replay-redis.
 */
const OPERATOR_SECRETS = { 'hopguard-demo-replay-redis': { url: 'rediss://hopguard:s3cret-from-the-operator@redis.redis.svc:6379/0' } };

function hopguardEnv(overlay: Overlay): Record<string, string> {
  return containerEnv(container(overlay, 'hopguard'), {
    namespace: NAMESPACE,
    objects: objects(overlay),
    podSpec: podSpec(overlay),
    externalSecrets: overlay === 'deploy/overlays/replay-redis' ? OPERATOR_SECRETS : {},
  });
}

function hopguardConfigText(overlay: Overlay): string {
  return ((configMap(overlay, 'hopguard-demo-hopguard')['data'] ?? {}) as Record<string, string>)['hopguard.yaml'] as string;
}

function hopguardConfig(overlay: Overlay) {
  const parsed = parseConfig(hopguardConfigText(overlay), { env: hopguardEnv(overlay) });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.config;
}

describe.each(OVERLAYS)('%s: rendering and schemas', (overlay) => {
  it('renders, and every object validates against its Kubernetes schema', () => {
    const objs = objects(overlay);
    expect(objs.length).toBeGreaterThan(5);
    const problems = objs.map((o) => [`${schemaKey(o)} ${o.metadata.name}`, validateObject(o)]).filter(([, p]) => p !== undefined);
    expect(problems).toEqual([]);
  });

  it('has no duplicate objects and sets no namespace (apply with -n)', () => {
    const ids = objects(overlay).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    expect(objects(overlay).filter((o) => o.metadata['namespace'] !== undefined)).toEqual([]);
  });

  it('hopguard container: a native sidecar (init container, restartPolicy Always) started before the app', () => {
    const spec = podSpec(overlay);
    const hg = container(overlay, 'hopguard');
    expect(hg.restartPolicy).toBe('Always');
    expect(spec.initContainers?.[0]?.name).toBe('hopguard');
    expect(spec.containers.map((c) => c.name)).toEqual(['app']);
  });

  it('hopguard config passes `hopguard validate` with the environment the pod gets', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-deploy-'));
    const file = path.join(dir, 'hopguard.yaml');
    writeFileSync(file, hopguardConfigText(overlay));
    const env = hopguardEnv(overlay);
    const saved = { ...process.env };
    const out: string[] = [];
    const err: string[] = [];
    try {
      Object.assign(process.env, env);
      const code = await main(['validate', '--config', file], { out: (t) => void out.push(t), err: (t) => void err.push(t) });
      expect(err.join(''), 'hopguard validate stderr').toBe('');
      expect(code).toBe(0);
      expect(out.join('')).toMatch(/: ok \(workload spiffe:\/\//);
    } finally {
      for (const k of Object.keys(env)) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('workload.id is spiffe://<trust domain>/ns/<namespace>/sa/<service account> from the downward API', () => {
    const env = hopguardEnv(overlay);
    const spec = podSpec(overlay);
    const trustDomain = overlay === 'deploy/overlays/istio' ? 'cluster.local' : 'prod.example.org';
    expect(spec['serviceAccountName']).toBe('hopguard-demo');
    expect(one(overlay, 'ServiceAccount', 'hopguard-demo')).toBeDefined();
    const config = hopguardConfig(overlay);
    expect(config.workload.id).toBe(`spiffe://${trustDomain}/ns/${NAMESPACE}/sa/hopguard-demo`);
    expect(env['HOPGUARD_WORKLOAD_ID']).toBe(config.workload.id);
    expect(config.delegation.trusted_domains).toEqual([trustDomain]);
  });

  it('the config template itself takes workload.id from ${HOPGUARD_WORKLOAD_ID}', () => {
    expect(parse(hopguardConfigText(overlay)).workload).toEqual({ id: '${HOPGUARD_WORKLOAD_ID}' });
  });

  it('mode: enforce, except in the dry-run overlay', () => {
    expect(hopguardConfig(overlay).mode).toBe(overlay === 'deploy/overlays/dry-run' ? 'dry-run' : 'enforce');
  });

  it('ext_authz gRPC stays on loopback; the admin port listens on all interfaces', () => {
    const config = hopguardConfig(overlay);
    expect(splitHostPort(config.listen.grpc)).toEqual({ host: '127.0.0.1', port: 9191 });
    expect(splitHostPort(config.listen.admin)).toEqual({ host: '0.0.0.0', port: 9464 });
    // Not published as a container port either.
    expect(container(overlay, 'hopguard').ports?.map((p) => p.containerPort)).toEqual([9464]);
  });

  it('hopguard probes: HTTP /healthz (startup, liveness) and /readyz (readiness) on the admin port', () => {
    const hg = container(overlay, 'hopguard');
    const admin = splitHostPort(hopguardConfig(overlay).listen.admin)?.port;
    for (const [probe, p] of [
      ['startupProbe', '/healthz'],
      ['livenessProbe', '/healthz'],
      ['readinessProbe', '/readyz'],
    ] as const) {
      const get = hg[probe]?.httpGet;
      expect(get?.path, probe).toBe(p);
      expect(portNumber(hg, get?.port ?? -1), probe).toBe(admin);
    }
  });

  it('every container is hardened and has resource requests and limits', () => {
    const spec = podSpec(overlay);
    expect(spec['securityContext']).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec['automountServiceAccountToken']).toBe(false);
    expect(spec['hostNetwork']).toBeUndefined();
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      expect(c.securityContext, c.name).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.securityContext?.['privileged'], c.name).toBeUndefined();
      expect(c.securityContext?.['capabilities'], c.name).not.toHaveProperty('add');
      expect(Number(c.securityContext?.['runAsUser']), c.name).toBeGreaterThan(0);
      for (const kind of ['requests', 'limits'] as const) {
        expect(Object.keys(c.resources?.[kind] ?? {}).sort(), `${c.name} ${kind}`).toEqual(['cpu', 'memory']);
      }
      for (const m of c.volumeMounts ?? []) expect(m.readOnly, `${c.name} ${m.mountPath}`).toBe(true);
    }
  });

  it('the ServiceMonitor scrapes hopguard /metrics through a Service port that exists', () => {
    const sm = one(overlay, 'ServiceMonitor') as unknown as {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    };
    const svc = objects(overlay).find(
      (o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => (o.metadata['labels'] as Record<string, string> | undefined)?.[k] === v),
    ) as unknown as { spec: { ports: { name: string; targetPort: number }[] } };
    expect(svc).toBeDefined();
    const hopguardEndpoint = sm.spec.endpoints.find((e) => e.path === '/metrics');
    const port = svc.spec.ports.find((p) => p.name === hopguardEndpoint?.port);
    expect(port?.targetPort).toBe(splitHostPort(hopguardConfig(overlay).listen.admin)?.port);
    for (const e of sm.spec.endpoints) expect(svc.spec.ports.map((p) => p.name)).toContain(e.port);
  });
});

describe('strict field check of every rendered object (unknown fields rejected)', () => {
  it('every object type-checks against its model interface', () => {
    const all = OVERLAYS.flatMap((o) => objects(o));
    expect(strictTypeCheck(all)).toEqual([]);
  }, 60_000);

  it('a misspelled or mistyped field fails it (while validate() accepts the misspelling)', () => {
    const dep = structuredClone(one('deploy/base', 'Deployment')) as unknown as {
      spec: { template: { spec: { initContainers: Record<string, unknown>[] } } };
    };
    const hg = dep.spec.template.spec.initContainers[0] as { securityContext: Record<string, unknown> };
    hg.securityContext['readOnlyRootFileSystem'] = true;
    expect(validateObject(dep as unknown as K8sObject)).toBeUndefined();
    const problems = strictTypeCheck([dep as unknown as K8sObject]);
    expect(problems.join('\n')).toMatch(/Deployment\/hopguard-demo: .*'"readOnlyRootFileSystem"' does not exist/);

    (dep.spec.template.spec.initContainers[0] as Record<string, unknown>)['restartPolicy'] = 1;
    expect(validateObject(dep as unknown as K8sObject)).toMatch(/restartPolicy must be string/);
  });
});

describe('deploy/base: plain Envoy sidecar', () => {
  const overlay = 'deploy/base' as const;
  const envoyFiles = () => (configMap(overlay, 'hopguard-demo-envoy')['data'] ?? {}) as Record<string, string>;
  const envoyJson = () => parse(envoyFiles()['envoy.yaml'] as string) as Record<string, unknown>;

  it('Envoy is a native sidecar after hopguard; the app listens on loopback only', () => {
    const spec = podSpec(overlay);
    expect(spec.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
      ['hopguard', 'Always'],
      ['envoy', 'Always'],
    ]);
    expect(container(overlay, 'app').args).toContain('-listen=127.0.0.1:8080');
    expect(container(overlay, 'app').ports).toBeUndefined();
  });

  it("the Envoy ConfigMap carries the repository's envoy.yaml byte for byte, plus its SDS files", () => {
    const files = envoyFiles();
    expect(files['envoy.yaml']).toBe(readFileSync(path.join(ROOT, 'envoy.yaml'), 'utf8'));
    expect(Object.keys(files).sort()).toEqual(['envoy.yaml', 'tls_certificate.yaml', 'validation_context.yaml']);
    expect(checkJson('envoy.config.bootstrap.v3.Bootstrap', envoyJson())).toEqual([]);
  });

  it('every file Envoy reads exists in the pod at that path (config, SDS files, certificates)', () => {
    const spec = podSpec(overlay);
    const envoy = container(overlay, 'envoy');
    // Files the pod provides to the Envoy container: ConfigMap items and Secret keys by mount.
    const provided = new Set<string>();
    for (const m of envoy.volumeMounts ?? []) {
      const vol = spec.volumes?.find((v) => v['name'] === m.name) as
        | { configMap?: { name: string; items?: { key: string; path: string }[] }; secret?: { secretName: string } }
        | undefined;
      if (vol?.configMap) {
        const keys = Object.keys((objects(overlay).find((o) => o.metadata.name === vol.configMap?.name)?.['data'] ?? {}));
        for (const item of vol.configMap.items ?? keys.map((k) => ({ key: k, path: k }))) {
          expect(keys, `ConfigMap key ${item.key}`).toContain(item.key);
          provided.add(path.posix.join(m.mountPath, item.path));
        }
      }
      if (vol?.secret) for (const k of ['tls.crt', 'tls.key', 'ca.crt']) provided.add(path.posix.join(m.mountPath, k));
    }
    const args = envoy.args ?? [];
    expect(provided).toContain(args[args.indexOf('-c') + 1]);
    const text = Object.values(envoyFiles()).join('\n');
    const referenced = [...text.matchAll(/(?:path|filename): (\/etc\/envoy\/\S+\.(?:yaml|crt|key))/g)].map((m) => m[1]);
    expect(referenced.length).toBeGreaterThanOrEqual(5);
    for (const f of referenced) expect(provided, f).toContain(f);
  });

  it("Envoy's ports, the hopguard cluster and the app cluster agree with the pod", () => {
    const env = envoyJson() as { static_resources: { listeners: { name: string; address: { socket_address: { port_value: number } } }[]; clusters: { name: string; load_assignment: unknown }[] } };
    const ports = Object.fromEntries(env.static_resources.listeners.map((l) => [l.name, l.address.socket_address.port_value]));
    const envoy = container(overlay, 'envoy');
    expect(portNumber(envoy, 'https-mtls')).toBe(ports['inbound_mtls']);
    expect(portNumber(envoy, 'pod-local')).toBe(ports['pod_local_http']);
    const svc = one(overlay, 'Service', 'hopguard-demo') as unknown as { spec: { ports: { targetPort: number }[] } };
    expect(svc.spec.ports.map((p) => p.targetPort)).toEqual([ports['inbound_mtls']]);
    const endpoint = (name: string) =>
      JSON.stringify((env.static_resources.clusters.find((c) => c.name === name) as { load_assignment: unknown }).load_assignment);
    expect(endpoint('hopguard')).toContain(`"port_value":${splitHostPort(hopguardConfig(overlay).listen.grpc)?.port}`);
    expect(endpoint('local_app')).toContain('"address":"127.0.0.1","port_value":8080');
    // The app's readiness goes through Envoy's plain-HTTP listener, on the path it serves.
    expect(container(overlay, 'app').readinessProbe?.httpGet).toEqual({ path: '/app/healthz', port: ports['pod_local_http'] });
  });

  it('Envoy probes: readiness /ready (hopguard healthy), liveness and startup independent of hopguard', () => {
    const envoy = container(overlay, 'envoy');
    expect(envoy.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(envoy.livenessProbe?.tcpSocket).toBeDefined();
    expect(envoy.startupProbe?.tcpSocket).toBeDefined();
  });

  it('the mTLS certificate Secret is mounted into Envoy only', () => {
    const spec = podSpec(overlay);
    const users = [...(spec.initContainers ?? []), ...spec.containers].filter((c) => c.volumeMounts?.some((m) => m.name === 'envoy-tls'));
    expect(users.map((c) => c.name)).toEqual(['envoy']);
  });

  it("Envoy forwards every token header hopguard's config reads", () => {
    const text = JSON.stringify(envoyJson());
    // The ext_authz filter's allowed_headers block: {"patterns":[{"exact":...},...]}.
    const block = /"allowed_headers":\{"patterns":(\[[^\]]*\])\}/.exec(text)?.[1] ?? '[]';
    const allowed = (JSON.parse(block) as { exact?: string }[]).map((p) => p.exact);
    const headers = hopguardConfig(overlay).token.headers;
    expect(headers.length).toBeGreaterThan(0);
    for (const h of headers) expect(allowed, h).toContain(h);
  });

  it('exempt routes agree: hopguard exempts exactly the route Envoy disables ext_authz for', () => {
    expect(hopguardConfig(overlay).exempt).toEqual([{ method: 'GET', path: '/healthz' }]);
    expect(envoyFiles()['envoy.yaml']).toContain('path: /healthz');
  });

  it('the NetworkPolicy admits callers on the mTLS port, and the monitoring ports from the monitoring namespace only', () => {
    expect(monitoringOnly(overlay)).toEqual({ open: [8443], monitoring: [9464, 15021] });
  });

  it('kubelet probes use only ports the NetworkPolicy restricts to monitoring (they come from the node, which it does not filter)', () => {
    const probePorts = new Set<number>();
    for (const c of [...(podSpec(overlay).initContainers ?? []), ...podSpec(overlay).containers]) {
      for (const p of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
        const port = p?.httpGet?.port ?? p?.tcpSocket?.port;
        if (port !== undefined) probePorts.add(typeof port === 'number' ? port : portNumber(c, port));
      }
    }
    expect([...probePorts].sort((a, b) => a - b)).toEqual([9464, 15021]);
    // The comment that explains why probes still work is there for the next reader.
    expect(readFileSync(path.join(ROOT, 'deploy/base/networkpolicy.yaml'), 'utf8')).toMatch(/Kubelet probes still work: the kubelet connects from the pod's own node/);
  });

  it('the PrometheusRules have the alerts SREs need', () => {
    type Rule = { alert?: string; expr: string; labels?: { severity: string }; annotations?: { summary: string } };
    const rules = objects(overlay)
      .filter((o) => o.kind === 'PrometheusRule')
      .flatMap((o) => (o as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups.flatMap((g) => g.rules))
      .filter((r) => r.alert);
    expect(rules.map((r) => r.alert).sort()).toEqual(
      [
        'HopguardAuditKeyReloadRejected',
        'HopguardAuditSyncFailing',
        'HopguardAuditSyncSlow',
        'HopguardCheckLatencyHigh',
        'HopguardChecksRefused',
        'HopguardConfigReloadRejected',
        'HopguardDenyRateSpike',
        'HopguardEventsDropped',
        'HopguardExtAuthzErrors',
        'HopguardExtAuthzTimeouts',
        'HopguardFailOpen',
        'HopguardInternalErrors',
        'HopguardIssuerKeyRefused',
        'HopguardJwksKeysExpiring',
        'HopguardJwksRefreshFailing',
        'HopguardKeysUnavailable',
        'HopguardMetricsAbsent',
        'HopguardNotServing',
        'HopguardReplayStoreErrors',
        'HopguardReplayUnavailable',
        'HopguardTargetDown',
      ].sort(),
    );
    for (const r of rules) {
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
    }
    const expr = (name: string) => rules.find((r) => r.alert === name)?.expr ?? '';
    expect(expr('HopguardDenyRateSpike')).toContain('namespace_reason:hopguard_denials:baseline');
    expect(expr('HopguardKeysUnavailable')).toContain('reason="keys_unavailable"');
    expect(expr('HopguardCheckLatencyHigh')).toContain('histogram_quantile(0.99');
    expect(expr('HopguardCheckLatencyHigh')).toContain('hopguard_check_duration_seconds_bucket');
    expect(expr('HopguardConfigReloadRejected')).toContain('hopguard_config_last_reload_successful');
    expect(expr('HopguardEventsDropped')).toContain('hopguard_events_dropped_total');
    expect(expr('HopguardReplayUnavailable')).toContain('reason="replay_unavailable"');
    expect(expr('HopguardReplayStoreErrors')).toContain('hopguard_replay_store_operations_total{result=~"error|timeout"}');
  });

  it('the ServiceMonitor gives hopguard and Envoy the fixed job names the alerts select', () => {
    const sm = one(overlay, 'ServiceMonitor') as unknown as { spec: { endpoints: { port: string; relabelings?: { targetLabel?: string; replacement?: string }[] }[] } };
    const jobs = Object.fromEntries(sm.spec.endpoints.map((e) => [e.port, e.relabelings?.find((r) => r.targetLabel === 'job')?.replacement]));
    expect(jobs).toEqual({ 'hopguard-admin': 'hopguard', 'envoy-stats': 'hopguard-envoy' });
  });

  it('every third-party image is pinned by version and digest (no floating tag)', () => {
    const spec = podSpec(overlay);
    const images = [...(spec.initContainers ?? []), ...spec.containers].map((c) => c.image ?? '');
    const own = images.filter((i) => i.startsWith('ghcr.io/example/hopguard:'));
    expect(own, "hopguard's own image comes from kustomization.yaml images").toHaveLength(1);
    for (const i of images.filter((x) => !own.includes(x))) {
      expect(i).toMatch(/^[a-z0-9./-]+:v?\d+(\.\d+)+@sha256:[0-9a-f]{64}$/);
      expect(i).not.toMatch(/latest/);
    }
    expect(readFileSync(path.join(ROOT, 'deploy/base/kustomization.yaml'), 'utf8')).toMatch(/digest: sha256:/);
  });

  it('resources: the comment points at the benchmark that refines them', () => {
    expect(readFileSync(path.join(ROOT, 'deploy/base/deployment.yaml'), 'utf8')).toContain('bench/RESULTS.md');
  });
});

describe('deploy/overlays/istio', () => {
  const overlay = 'deploy/overlays/istio' as const;
  const meshConfig = parse(readFileSync(path.join(ROOT, 'deploy/overlays/istio/mesh-config/istio-operator.yaml'), 'utf8')) as {
    apiVersion: string;
    kind: string;
    spec: { meshConfig: { extensionProviders: { name: string; envoyExtAuthzGrpc: Record<string, unknown> }[] } };
  };

  it('the NetworkPolicy admits callers through istio-proxy, and the metrics ports from the monitoring namespace only', () => {
    expect(monitoringOnly(overlay)).toEqual({ open: [8080], monitoring: [9464, 15090] });
  });

  it("removes the base's Envoy, its ConfigMap and its certificate volume (istio-proxy replaces them)", () => {
    const spec = podSpec(overlay);
    expect(spec.initContainers?.map((c) => c.name)).toEqual(['hopguard']);
    expect(objects(overlay).filter((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('hopguard-demo-envoy'))).toEqual([]);
    expect(spec.volumes?.map((v) => v['name'])).toEqual(['hopguard-config']);
    expect((one(overlay, 'Deployment') as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels['sidecar.istio.io/inject']).toBe('true');
  });

  it('AuthorizationPolicy: CUSTOM action with the hopguard provider, everything but GET /healthz', () => {
    const ap = one(overlay, 'AuthorizationPolicy') as unknown as {
      spec: { action: string; provider: { name: string }; selector: { matchLabels: Record<string, string> }; rules: unknown[] };
    };
    expect(ap.spec.action).toBe('CUSTOM');
    expect(meshConfig.spec.meshConfig.extensionProviders.map((p) => p.name)).toContain(ap.spec.provider.name);
    expect(ap.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'hopguard-demo' });
    expect(ap.spec.rules).toEqual([
      { to: [{ operation: { notPaths: ['/healthz'] } }] },
      { to: [{ operation: { paths: ['/healthz'], notMethods: ['GET'] } }] },
    ]);
    expect(hopguardConfig(overlay).exempt).toEqual([{ method: 'GET', path: '/healthz' }]);
  });

  it('mesh config: the provider is the ServiceEntry host at hopguard\'s loopback gRPC port, fail closed, 503, timeout < 200ms', () => {
    expect(meshConfig.apiVersion).toBe('install.istio.io/v1alpha1');
    expect(meshConfig.kind).toBe('IstioOperator');
    const provider = meshConfig.spec.meshConfig.extensionProviders.find((p) => p.name === 'hopguard')?.envoyExtAuthzGrpc ?? {};
    expect(Object.keys(provider).sort()).toEqual(['failOpen', 'port', 'service', 'statusOnError', 'timeout']);
    const se = one(overlay, 'ServiceEntry') as unknown as {
      spec: { hosts: string[]; endpoints: { address: string }[]; ports: { number: number; protocol: string }[]; resolution: string; exportTo: string[] };
    };
    expect(se.spec.hosts).toEqual([provider['service']]);
    expect(se.spec.endpoints).toEqual([{ address: '127.0.0.1' }]);
    expect(se.spec.resolution).toBe('STATIC');
    expect(se.spec.exportTo).toEqual(['.']);
    const grpc = splitHostPort(hopguardConfig(overlay).listen.grpc);
    expect(se.spec.ports).toEqual([{ name: 'grpc', number: grpc?.port, protocol: 'GRPC' }]);
    expect(provider['port']).toBe(grpc?.port);
    expect(provider['failOpen']).toBe(false);
    expect(provider['statusOnError']).toBe('503');
    const t = /^(\d+(?:\.\d+)?)s$/.exec(String(provider['timeout']));
    expect(Number(t?.[1])).toBeGreaterThan(0);
    expect(Number(t?.[1])).toBeLessThan(0.2);
  });

  it('PeerAuthentication is STRICT; the admin port bypasses capture for probes and Prometheus', () => {
    const pa = one(overlay, 'PeerAuthentication') as unknown as { spec: { mtls: { mode: string } } };
    expect(pa.spec.mtls.mode).toBe('STRICT');
    const annotations = (one(overlay, 'Deployment') as unknown as { spec: { template: { metadata: { annotations: Record<string, string> } } } }).spec.template.metadata.annotations;
    expect(annotations['traffic.sidecar.istio.io/excludeInboundPorts']).toBe(String(splitHostPort(hopguardConfig(overlay).listen.admin)?.port));
  });
});

type NetworkPolicy = {
  metadata: { name: string };
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    egress?: { to?: Record<string, { matchLabels?: Record<string, string> }>[]; ports?: { port: number; protocol: string }[] }[];
    ingress?: { from?: Record<string, { matchLabels?: Record<string, string> }>[]; ports?: { port: number; protocol: string }[] }[];
  };
};

describe('replay store (SPEC §9): memory by default, Redis/Valkey shared by the replicas in the overlays', () => {
  const SHARED = ['deploy/overlays/replay-redis', 'deploy/overlays/replay-redis-valkey'] as const;

  it('deploy/base: each pod remembers its own (store: memory), and needs no Secret', () => {
    for (const overlay of ['deploy/base', 'deploy/overlays/dry-run', 'deploy/overlays/istio'] as const) {
      const config = hopguardConfig(overlay);
      expect(config.replay.store, overlay).toBe('memory');
      expect(config.replay.redis.url, overlay).toBeUndefined();
      expect(hopguardEnv(overlay)['HOPGUARD_REPLAY_REDIS_URL'], overlay).toBeUndefined();
    }
  });

  it.each(SHARED)('%s: store redis, its URL from a Secret (required), never from the ConfigMap', (overlay) => {
    const config = hopguardConfig(overlay);
    expect(config.replay.store).toBe('redis');
    expect(config.replay.redis.timeout).toBe(50);
    const env = container(overlay, 'hopguard').env as { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[];
    const ref = env.find((e) => e.name === 'HOPGUARD_REPLAY_REDIS_URL')?.valueFrom?.secretKeyRef;
    expect(ref).toMatchObject({ key: 'url', optional: false });
    expect(ref?.name).toMatch(/^hopguard-demo-replay-redis(-[a-z0-9]{10})?$/);
    expect(config.replay.redis.url).toBe(hopguardEnv(overlay)['HOPGUARD_REPLAY_REDIS_URL']);
    // The config template names the variable; no URL (nor password) is in any ConfigMap.
    expect(parse(hopguardConfigText(overlay)).replay.redis.url).toBe('${HOPGUARD_REPLAY_REDIS_URL:-}');
    for (const cm of objects(overlay).filter((o) => o.kind === 'ConfigMap')) expect(JSON.stringify(cm), cm.metadata.name).not.toMatch(/rediss?:\/\//);
  });

  it('deploy/overlays/replay-redis: the operator creates the Secret (it is not in the repository)', () => {
    const overlay = 'deploy/overlays/replay-redis';
    expect(objects(overlay).filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(hopguardConfig(overlay).replay.redis.url).toBe(OPERATOR_SECRETS['hopguard-demo-replay-redis'].url);
    expect(readFileSync(path.join(ROOT, overlay, 'kustomization.yaml'), 'utf8')).toContain('kubectl create secret generic hopguard-demo-replay-redis');
  });

  it.each(SHARED)('%s: the egress NetworkPolicy lets hopguard reach the store, DNS and the issuers over HTTPS', (overlay) => {
    const np = one(overlay, 'NetworkPolicy', 'hopguard-demo-replay-redis-egress') as unknown as NetworkPolicy;
    expect(np.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'hopguard-demo' });
    expect(np.spec.policyTypes).toEqual(['Egress']);
    const rules = np.spec.egress ?? [];
    const ports = (r: (typeof rules)[number]) => (r.ports ?? []).map((p) => `${p.port}/${p.protocol}`).sort();
    expect(rules.map(ports)).toEqual([['6379/TCP'], ['53/TCP', '53/UDP'], ['443/TCP']]);
    expect(rules[1]?.to?.[0]).toMatchObject({ podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } });
  });

  describe('deploy/overlays/replay-redis-valkey (try-it-only, NOT HA)', () => {
    const overlay = 'deploy/overlays/replay-redis-valkey';
    const valkey = () =>
      one(overlay, 'Deployment', 'hopguard-demo-valkey') as unknown as {
        spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } } };
      };

    it('says it is not HA, and runs one Valkey pod that evicts nothing and writes nothing to disk', () => {
      const kust = readFileSync(path.join(ROOT, overlay, 'kustomization.yaml'), 'utf8');
      expect(kust).toMatch(/NOT HIGHLY AVAILABLE and\s+# not for production/);
      expect(valkey().spec.replicas).toBe(1);
      const args = valkey().spec.template.spec.containers[0]?.args ?? [];
      const flag = (name: string) => args[args.indexOf(name) + 1];
      // An evicted key is a token that could be used once more; a full store must refuse.
      expect(flag('--maxmemory-policy')).toBe('noeviction');
      expect(flag('--appendonly')).toBe('no');
      expect(flag('--save')).toBe('');
    });

    it("the generated Secret's URL names the Valkey Service and its port", () => {
      const url = new URL(hopguardConfig(overlay).replay.redis.url ?? '');
      const svc = one(overlay, 'Service', 'hopguard-demo-valkey') as unknown as { spec: { selector: Record<string, string>; ports: { port: number }[] } };
      expect(url.protocol).toBe('redis:');
      expect(url.hostname).toBe('hopguard-demo-valkey');
      expect(svc.spec.ports.map((p) => p.port)).toContain(Number(url.port));
      expect(svc.spec.selector).toEqual({ 'app.kubernetes.io/name': 'hopguard-demo-valkey' });
      expect(valkey().spec.template.metadata.labels).toMatchObject(svc.spec.selector);
    });

    it('hopguard may reach the Valkey pods, and only hopguard pods may connect to them', () => {
      const egress = one(overlay, 'NetworkPolicy', 'hopguard-demo-replay-redis-egress') as unknown as NetworkPolicy;
      expect(egress.spec.egress?.[0]?.to).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'hopguard-demo-valkey' } } }]);
      const ingress = one(overlay, 'NetworkPolicy', 'hopguard-demo-valkey') as unknown as NetworkPolicy;
      expect(ingress.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'hopguard-demo-valkey' });
      expect(ingress.spec.ingress).toEqual([
        { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'hopguard-demo' } } }], ports: [{ port: 6379, protocol: 'TCP' }] },
      ]);
    });

    it('the Valkey container is hardened, bounded, and its image pinned by version', () => {
      const c = valkey().spec.template.spec.containers[0] as Container;
      expect(c.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      for (const kind of ['requests', 'limits'] as const) expect(Object.keys(c.resources?.[kind] ?? {}).sort()).toEqual(['cpu', 'memory']);
      // A version, never a floating tag. (No digest: it could not be looked up here; the
      // manifest says to pin the one your registry reports.)
      expect(c.image).toMatch(/^valkey\/valkey:\d+\.\d+\.\d+$/);
    });
  });
});

describe('deploy/ has no stray files', () => {
  it.each(['deploy/overlays/istio', 'deploy/overlays/replay-redis', 'deploy/overlays/replay-redis-valkey'])(
    'every YAML file under %s is either a kustomize input or the documented mesh config',
    (overlay) => {
      const dir = path.join(ROOT, overlay);
      const kust = readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8');
      for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) expect(kust, f).toContain(f);
    },
  );
});
