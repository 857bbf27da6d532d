/**
 * Offline Kubernetes checks for deploy/: render with `kubectl kustomize` (kustomize is built
 * into kubectl), then validate every object against its schema with kubernetes-models and
 * the prometheus-operator / Istio model packages, and, since those JSON schemas allow
 * unknown fields (as the API server's OpenAPI does), also type-check every object against
 * the same packages' TypeScript interfaces, where an unknown field is an excess-property
 * error: a misspelled `readOnlyRootFileSystem` fails here instead of being silently dropped
 * by the API server.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { AuthorizationPolicy, PeerAuthentication } from '@kubernetes-models/istio/security.istio.io/v1';
import { ServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1';

export const ROOT = path.resolve(import.meta.dirname, '../../..');

export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [k: string]: unknown };
};

/** `kubectl kustomize <dir>` → objects. Throws with kubectl's message if rendering fails. */
export function render(dir: string): K8sObject[] {
  let out: string;
  try {
    out = execFileSync('kubectl', ['kustomize', path.join(ROOT, dir)], { encoding: 'utf8', timeout: 60_000, stdio: 'pipe' });
  } catch (err) {
    const e = err as { code?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('kubectl is required for the deploy tests (kustomize is built into it)', { cause: err });
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr ?? String(err)}`, { cause: err });
  }
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${dir}: ${doc.errors[0]?.message}`);
    return doc.toJS() as K8sObject;
  });
}

interface ModelClass {
  new (data: never): { validate(): void };
}

interface Schema {
  readonly model: ModelClass;
  /** Module and interface for the strict TypeScript check. */
  readonly module: string;
  readonly iface: string;
}

/** Every kind deploy/ may render. A kind missing here fails the test (no unvalidated objects). */
export const SCHEMAS: Readonly<Record<string, Schema>> = {
  'v1/ServiceAccount': { model: ServiceAccount, module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
  'v1/ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/Secret': { model: Secret, module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  'v1/Service': { model: Service, module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'apps/v1/Deployment': { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'networking.k8s.io/v1/NetworkPolicy': {
    model: NetworkPolicy,
    module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
    iface: 'INetworkPolicy',
  },
  'policy/v1/PodDisruptionBudget': {
    model: PodDisruptionBudget,
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    iface: 'IPodDisruptionBudget',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    model: ServiceMonitor,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    iface: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    model: PrometheusRule,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    iface: 'IPrometheusRule',
  },
  'security.istio.io/v1/AuthorizationPolicy': {
    model: AuthorizationPolicy,
    module: '@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy',
    iface: 'IAuthorizationPolicy',
  },
  'security.istio.io/v1/PeerAuthentication': {
    model: PeerAuthentication,
    module: '@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication',
    iface: 'IPeerAuthentication',
  },
  'networking.istio.io/v1/ServiceEntry': {
    model: ServiceEntry,
    module: '@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry',
    iface: 'IServiceEntry',
  },
};

export function schemaKey(o: { apiVersion: string; kind: string }): string {
  return `${o.apiVersion}/${o.kind}`;
}

/** Schema validation (kubernetes-models' validate()); returns the error message or undefined. */
export function validateObject(o: K8sObject): string | undefined {
  const schema = SCHEMAS[schemaKey(o)];
  if (!schema) return `no schema registered for ${schemaKey(o)}`;
  try {
    new schema.model(o as never).validate();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Type-checks each object as an object literal of its kind's TypeScript interface.
 * Returns one message per problem, prefixed with `kind/name`.
 */
export function strictTypeCheck(objects: readonly K8sObject[]): string[] {
  const aliases = new Map<string, string>();
  const body: string[] = [];
  const bodyOwner: string[] = [];
  objects.forEach((o, i) => {
    const schema = SCHEMAS[schemaKey(o)];
    if (!schema) return;
    if (!aliases.has(schema.module)) aliases.set(schema.module, `T${aliases.size}`);
    // apiVersion/kind are declared by some interfaces and not by others: allow both.
    const decl = `export const o${i}: ${aliases.get(schema.module)}.${schema.iface} & { apiVersion?: string; kind?: string } = ${JSON.stringify(o, null, 1)};`;
    for (const line of decl.split('\n')) {
      body.push(line);
      bodyOwner.push(`${o.kind}/${o.metadata.name}`);
    }
  });
  const imports = [...aliases].map(([mod, alias]) => `import type * as ${alias} from '${mod}';`);
  const flat = [...imports, ...body];
  const lineOwner = [...imports.map(() => '(imports)'), ...bodyOwner];
  const source = flat.join('\n');

  const fileName = path.join(ROOT, 'test/deploy/__rendered_k8s_objects__.ts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name === fileName ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError, create);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  const program = ts.createProgram([fileName], options, host);
  const sf = program.getSourceFile(fileName);
  const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  return diags.map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const snippet = line >= 0 ? (flat[line] ?? '').trim() : '';
    return `${lineOwner[line] ?? '(imports)'}: ${text}${snippet ? ` [at: ${snippet}]` : ''}`;
  });
}

// ------------------------------------------------------------------------------------------
// Pod environment, the way the kubelet builds it.

export interface PodContext {
  readonly namespace: string;
  readonly objects: readonly K8sObject[];
  readonly podSpec: Record<string, unknown>;
  /** Secrets the operator creates outside kustomize (`kubectl create secret`), by name. */
  readonly externalSecrets?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: { name: string; key: string };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
};

/**
 * A container's environment as Kubernetes computes it: downward-API fields, ConfigMap keys
 * from the rendered ConfigMaps, Secret keys from the rendered Secrets or the operator's own
 * (an `optional` key of a missing Secret is left unset, as the kubelet does), and `$(VAR)` references to variables defined EARLIER in the
 * list (`$$` escapes, unknown references stay as written), the rules of dependent
 * environment variables.
 */
export function containerEnv(container: { env?: EnvVar[] }, ctx: PodContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    let value: string | undefined;
    if (v.value !== undefined) {
      value = v.value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
        m === '$$' ? '$' : name !== undefined && name in env ? (env[name] as string) : m,
      );
    } else if (v.valueFrom?.fieldRef) {
      const f = v.valueFrom.fieldRef.fieldPath;
      if (f === 'metadata.namespace') value = ctx.namespace;
      else if (f === 'spec.serviceAccountName') value = String(ctx.podSpec['serviceAccountName'] ?? 'default');
      else throw new Error(`fieldRef ${f} not simulated`);
    } else if (v.valueFrom?.configMapKeyRef) {
      const ref = v.valueFrom.configMapKeyRef;
      const cm = ctx.objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.name);
      if (!cm) throw new Error(`env ${v.name}: ConfigMap ${ref.name} is not in the rendered objects`);
      const data = (cm['data'] ?? {}) as Record<string, string>;
      if (!(ref.key in data)) throw new Error(`env ${v.name}: ConfigMap ${ref.name} has no key ${ref.key}`);
      value = data[ref.key];
    } else if (v.valueFrom?.secretKeyRef) {
      const ref = v.valueFrom.secretKeyRef;
      const secret = ctx.objects.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name);
      let data: Record<string, string> | undefined;
      if (secret !== undefined) {
        const encoded = (secret['data'] ?? {}) as Record<string, string>;
        data = { ...Object.fromEntries(Object.entries(encoded).map(([k, b64]) => [k, Buffer.from(b64, 'base64').toString('utf8')])), ...((secret['stringData'] ?? {}) as Record<string, string>) };
      } else {
        data = ctx.externalSecrets?.[ref.name];
      }
      if (data === undefined || !(ref.key in data)) {
        if (ref.optional === true) continue;
        throw new Error(`env ${v.name}: Secret ${ref.name} (key ${ref.key}) is neither rendered nor created by the operator, and not optional`);
      }
      value = data[ref.key];
    } else {
      throw new Error(`env ${v.name}: source not simulated`);
    }
    env[v.name] = value as string;
  }
  return env;
}
