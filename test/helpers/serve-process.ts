/**
 * `hopguard serve` as a real process (`node dist/main.js serve`), the way Kubernetes runs
 * it. Runs the BUILT CLI: `npm test` builds first; alone, run `npm run build` before the
 * tests that use this.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from './collector.js';
import type { OfficialCheckResponse } from './envoy.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = path.join(ROOT, 'dist', 'main.js');

export class Serve {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** `env`: added to a minimal environment (PATH only), never the test runner's own. */
  constructor(configFile: string, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [MAIN, 'serve', '--config', configFile], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    });
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }
  lines(stream: 'stdout' | 'stderr'): Record<string, unknown>[] {
    return this[stream]
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  /** The decision events on stdout (not the audit chain's start event or checkpoints). */
  events(): Record<string, unknown>[] {
    return this.lines('stdout').filter((e) => e['event'] === 'hopguard.decision');
  }
  async ports(): Promise<{ grpc: number; admin: number }> {
    let found: { grpc: number; admin: number } | undefined;
    await until(() => {
      const l = this.stderr.split('\n').find((x) => x.includes('"msg":"serving"'));
      if (l !== undefined) {
        const j = JSON.parse(l) as { grpc: number; admin: number };
        found = { grpc: j.grpc, admin: j.admin };
      }
      return found;
    }, `the serving log line (stderr: ${this.stderr})`);
    return found as { grpc: number; admin: number };
  }
  /** Waits for the exit; SIGKILL after `ms` so a hang fails the test instead of the run. */
  async exit(ms = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

/** The decision's reason, from the dynamic metadata Envoy would log. */
export function reasonOf(res: OfficialCheckResponse): unknown {
  return res.dynamic_metadata?.fields?.['reason']?.stringValue;
}

/** One sample of a Prometheus text exposition, by its exact `name{labels}`. */
export function metric(text: string, key: string): number {
  const line = text.split('\n').find((l) => l.startsWith(key + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(key.length + 1));
}
