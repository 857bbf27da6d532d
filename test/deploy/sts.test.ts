/**
 * deploy/sts renders offline with `kubectl kustomize`, every object validates against its
 * schema and strictly type-checks, and the settings the STS depends on hold: two replicas
 * spread and protected by a PDB, probes on the admin port, keys and certificates mounted as
 * directories (never subPath) from the Secrets the README names, a config that passes the
 * STS's own validation with the pod's environment, a NetworkPolicy admitting mesh workloads
 * on the token port and Prometheus only on the admin port, and a ServiceMonitor on it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseStsConfig } from '../../src/config/load.js';
import { splitHostPort } from '../../src/config/checks.js';
import { containerEnv, render, ROOT, schemaKey, strictTypeCheck, validateObject, type K8sObject } from '../helpers/deploy/k8s.js';

const objects = render('deploy/sts');
const NAMESPACE = 'hopguard';

function one(kind: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as K8sObject;
}

type Container = {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string } };
  livenessProbe?: { httpGet?: { path: string; port: string } };
  startupProbe?: { httpGet?: { path: string; port: string } };
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
};
type PodSpec = { containers: Container[]; volumes?: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[] } & Record<string, unknown>;

const dep = one('Deployment') as unknown as { spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };
const pod = dep.spec.template.spec;
const sts = pod.containers.find((c) => c.name === 'hopguard-sts') as Container;
const podLabels = dep.spec.template.metadata.labels;

function matches(selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => podLabels[k] === v);
}

function configText(): string {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && /^hopguard-sts-config-[a-z0-9]{10}$/.test(o.metadata.name));
  return ((cm?.['data'] ?? {}) as Record<string, string>)['sts.yaml'] as string;
}

describe('deploy/sts', () => {
  it('renders; every object validates against its schema and type-checks strictly', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'ConfigMap', 'Deployment', 'NetworkPolicy', 'PodDisruptionBudget', 'PrometheusRule', 'Service', 'ServiceAccount', 'ServiceMonitor'].sort(),
    );
    expect(objects.map((o) => [`${schemaKey(o)} ${o.metadata.name}`, validateObject(o)]).filter(([, p]) => p !== undefined)).toEqual([]);
    expect(strictTypeCheck(objects)).toEqual([]);
    expect(objects.filter((o) => o.metadata['namespace'] !== undefined)).toEqual([]);
  });

  it('at least two replicas, spread over nodes, a PDB keeping one, rolling without unavailability', () => {
    expect(dep.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(matches(dep.spec.selector.matchLabels)).toBe(true);
    const spread = pod['topologySpreadConstraints'] as { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[];
    expect(spread[0]?.topologyKey).toBe('kubernetes.io/hostname');
    expect(matches(spread[0]?.labelSelector.matchLabels ?? { x: 'y' })).toBe(true);
    const pdb = one('PodDisruptionBudget') as unknown as { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } };
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(dep.spec.replicas);
    expect(matches(pdb.spec.selector.matchLabels)).toBe(true);
  });

  it('runs `hopguard sts` with the mounted config, which passes the STS validation with the pod environment', () => {
    expect(sts.args).toEqual(['sts', '--config', '/etc/hopguard-sts/config/sts.yaml']);
    const env = containerEnv(sts, { namespace: NAMESPACE, objects, podSpec: pod });
    const r = parseStsConfig(configText(), { env });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const c = r.config;
    const port = (name: string) => sts.ports?.find((p) => p.name === name)?.containerPort;
    expect(splitHostPort(c.listen.https as string)).toEqual({ host: '0.0.0.0', port: port('https') });
    expect(splitHostPort(c.listen.admin)).toEqual({ host: '0.0.0.0', port: port('admin') });
    const mount = (name: string) => sts.volumeMounts?.find((m) => m.name === name)?.mountPath;
    expect(path.dirname(c.tls?.cert_file ?? '')).toBe(mount('tls'));
    expect(path.dirname(c.tls?.client_ca_file ?? '')).toBe(mount('tls'));
    expect(c.signing.keys_dir).toBe(mount('keys'));
    expect(c.delegation.trusted_domains).toEqual(['prod.example.org']);
    expect(c.signing.publish_ahead).toBeGreaterThan(5 * 60_000); // > a sidecar's default refresh_interval
  });

  it('keys and certificates: Secrets mounted as directories, never subPath, read-only', () => {
    for (const m of sts.volumeMounts ?? []) {
      expect(m.subPath).toBeUndefined();
      expect(m.readOnly).toBe(true);
    }
    const vol = (name: string) => pod.volumes?.find((v) => v.name === name);
    expect(vol('keys')?.secret?.secretName).toBe('hopguard-sts-keys');
    expect(vol('tls')?.secret?.secretName).toBe('hopguard-sts-tls');
    const kz = readFileSync(path.join(ROOT, 'deploy/sts/kustomization.yaml'), 'utf8');
    expect(kz).toContain('kubectl create secret generic hopguard-sts-keys --from-file=keys/');
  });

  it('probes on the admin port; hardened container; resources set', () => {
    for (const p of [sts.startupProbe, sts.livenessProbe, sts.readinessProbe]) expect(p?.httpGet?.port).toBe('admin');
    expect(sts.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(sts.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(sts.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(sts.resources?.requests).toBeDefined();
    expect(sts.resources?.limits).toBeDefined();
  });

  it('Service: 443 → the token port; the admin port for the ServiceMonitor', () => {
    const svc = one('Service') as unknown as { metadata: { labels: Record<string, string> }; spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } };
    expect(matches(svc.spec.selector)).toBe(true);
    expect(svc.spec.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'https', port: 443, targetPort: 'https' }),
        expect.objectContaining({ name: 'admin', targetPort: 'admin' }),
      ]),
    );
    const sm = one('ServiceMonitor') as unknown as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } };
    expect(Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => svc.metadata.labels[k] === v)).toBe(true);
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'admin', path: '/metrics' })]);
  });

  it('NetworkPolicy: mesh workloads on the token port only, Prometheus only on the admin port', () => {
    const np = one('NetworkPolicy') as unknown as {
      spec: {
        podSelector: { matchLabels: Record<string, string> };
        policyTypes: string[];
        ingress: { from?: { namespaceSelector?: { matchLabels: Record<string, string> }; podSelector?: { matchLabels: Record<string, string> } }[]; ports: { port: number }[] }[];
      };
    };
    expect(matches(np.spec.podSelector.matchLabels)).toBe(true);
    expect(np.spec.policyTypes).toContain('Ingress');
    const https = sts.ports?.find((p) => p.name === 'https')?.containerPort;
    const admin = sts.ports?.find((p) => p.name === 'admin')?.containerPort;
    expect(np.spec.ingress).toHaveLength(2);
    const [mesh, prom] = np.spec.ingress;
    // Every rule names its sources: none admits the whole cluster.
    for (const rule of np.spec.ingress) expect(rule.from?.length ?? 0).toBeGreaterThan(0);
    expect(mesh?.ports.map((p) => p.port)).toEqual([https]);
    expect(mesh?.from?.[0]?.namespaceSelector?.matchLabels).toEqual({ 'hopguard.io/mesh': 'true' });
    expect(prom?.ports.map((p) => p.port)).toEqual([admin]);
    expect(prom?.from?.[0]?.podSelector?.matchLabels).toEqual({ 'app.kubernetes.io/name': 'prometheus' });
    expect(prom?.from?.[0]?.namespaceSelector).toBeDefined();
  });

  it('certificate.yaml (cert-manager example): the Secret the pod mounts, server auth, the issuer\'s host as a DNS name', () => {
    const cert = parse(readFileSync(path.join(ROOT, 'deploy/sts/certificate.yaml'), 'utf8')) as {
      kind: string;
      spec: { secretName: string; dnsNames: string[]; usages: string[] };
    };
    expect(cert.kind).toBe('Certificate');
    expect(cert.spec.secretName).toBe('hopguard-sts-tls');
    expect(cert.spec.usages).toContain('server auth');
    const env = containerEnv(sts, { namespace: NAMESPACE, objects, podSpec: pod });
    const r = parseStsConfig(configText(), { env });
    if (!r.ok) throw new Error('config');
    expect(cert.spec.dnsNames).toContain(new URL(r.config.issuer).hostname);
  });
});
