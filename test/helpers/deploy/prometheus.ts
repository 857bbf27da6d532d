/**
 * Prometheus's own tools for the deploy tests: `promtool` and the `prometheus` server
 * (Debian's `prometheus` package; .ci/run installs it). A missing binary is an error that
 * fails the test, never a skip: these tests are how CI knows the alerts work.
 *
 * Also: the PrometheusRule groups under deploy/ (found by kind, wherever they live, so a
 * new rule file is picked up without touching the tests) and the real hopguard binary
 * started on port 0, as Kubernetes runs it.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { ROOT } from './k8s.js';

export const DEPLOY = path.join(ROOT, 'deploy');
/** promtool unit-test files: `<group>.test.yaml` or `<group>-<topic>.test.yaml`. */
export const RULE_TESTS_DIR = path.join(DEPLOY, 'prometheus');

const INSTALL_HINT = 'install Debian\'s "prometheus" package (apt-get install prometheus; .ci/run does it)';

export interface ToolResult {
  readonly status: number;
  /** stdout and stderr together, as promtool prints its report on either. */
  readonly output: string;
}

/** Runs promtool; throws (failing the test) when it is not installed. */
export function promtool(args: readonly string[], opts: { cwd?: string; input?: string } = {}): ToolResult {
  const r = spawnSync('promtool', args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: 120_000 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`promtool is required by the deploy tests: ${INSTALL_HINT}`);
    throw r.error;
  }
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** promtool without blocking the event loop (mutation runs go in parallel). */
export function promtoolAsync(args: readonly string[], opts: { cwd?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { cwd: opts.cwd });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`promtool is required by the deploy tests: ${INSTALL_HINT}`) : err),
    );
    child.on('close', (code) => resolve({ status: code ?? -1, output }));
  });
}

/** Throws unless the Prometheus server binary is installed (same package as promtool). */
export function requirePrometheus(): void {
  const r = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  if (r.error) throw new Error(`the prometheus server is required by the deploy tests: ${INSTALL_HINT}`);
}

// ---- rule groups --------------------------------------------------------------------------

export interface RuleDef {
  readonly alert?: string;
  readonly record?: string;
  expr: string;
  for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: RuleDef[];
  readonly interval?: string;
}

export interface FoundGroup {
  /** The file (relative to the repository) holding the PrometheusRule. */
  readonly file: string;
  readonly group: RuleGroup;
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

/** Every rule group of every PrometheusRule under deploy/. */
export function prometheusRuleGroups(): FoundGroup[] {
  const found: FoundGroup[] = [];
  for (const file of yamlFiles(DEPLOY)) {
    if (file.startsWith(RULE_TESTS_DIR + path.sep)) continue;
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const o = doc.toJS() as { kind?: string; spec?: { groups?: RuleGroup[] } } | null;
      if (o?.kind !== 'PrometheusRule') continue;
      for (const group of o.spec?.groups ?? []) found.push({ file: path.relative(ROOT, file), group });
    }
  }
  return found;
}

/** The file name promtool unit tests load for a group (`rule_files: [<group>.rules.yaml]`). */
export function ruleFileName(group: string): string {
  return `${group}.rules.yaml`;
}

/** Writes each group as a plain Prometheus rule file into `dir`. */
export function writeRuleFiles(dir: string, groups: readonly RuleGroup[]): string[] {
  return groups.map((g) => {
    const file = path.join(dir, ruleFileName(g.name));
    writeFileSync(file, stringify({ groups: [g] }));
    return file;
  });
}

// ---- the real hopguard binary -------------------------------------------------------------

export const MAIN = path.join(ROOT, 'dist', 'main.js');

export interface HopguardProcess {
  readonly grpc: number;
  readonly admin: number;
  readonly stderr: () => string;
  stop(): Promise<void>;
}

/**
 * `node dist/main.js <command> --config FILE` (built by `npm test`), until it logs its
 * `msg` line on stderr; `ports` reads the ports from that line.
 */
async function startCommand<P>(
  command: 'serve' | 'sts',
  configFile: string,
  msg: string,
  ports: (line: Record<string, unknown>) => P,
): Promise<P & { readonly stderr: () => string; stop(): Promise<void> }> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [MAIN, command, '--config', configFile], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  let err = '';
  child.stdout.resume(); // events: not read here
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const found = await new Promise<P>((resolve, reject) => {
    const onData = (): void => {
      const line = err.split('\n').find((l) => l.includes(`"msg":"${msg}"`));
      if (line === undefined) return;
      child.stderr.off('data', onData);
      resolve(ports(JSON.parse(line) as Record<string, unknown>));
    };
    child.stderr.on('data', onData);
    child.on('close', (code) => reject(new Error(`hopguard ${command} exited (${code}) before "${msg}": ${err}`)));
  });
  return {
    ...found,
    stderr: () => err,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** `node dist/main.js serve --config FILE`, until it logs "serving". */
export function startHopguard(configFile: string): Promise<HopguardProcess> {
  return startCommand('serve', configFile, 'serving', (j) => ({ grpc: j['grpc'] as number, admin: j['admin'] as number }));
}

export interface StsProcess {
  readonly https: number;
  readonly admin: number;
  readonly stderr: () => string;
  stop(): Promise<void>;
}

/** `node dist/main.js sts --config FILE`, until it logs "sts serving". */
export function startStsProcess(configFile: string): Promise<StsProcess> {
  return startCommand('sts', configFile, 'sts serving', (j) => ({ https: j['https'] as number, admin: j['admin'] as number }));
}
