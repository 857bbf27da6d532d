/**
 * No Docker engine here: the Dockerfile is checked as text for what the issue requires
 * (multi-stage, LTS slim base, `npm ci --omit=dev`, non-root numeric user, `hopguard serve`
 * as the entry point, nothing but dist/ proto/ package*.json in the final stage), and
 * against what the rest of deploy/ assumes. package-install.test.ts runs the same
 * production install for real.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../helpers/deploy/k8s.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Dockerfile → instructions per stage (comments dropped, `\` continuations joined). */
function stages(text: string): Instruction[][] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const out: Instruction[][] = [];
  const preamble: Instruction[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ins = { op: (m[1] as string).toUpperCase(), args: m[2] as string };
    if (ins.op === 'FROM') out.push([ins]);
    else (out[out.length - 1] ?? preamble).push(ins);
  }
  return out;
}

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const all = stages(dockerfile);
const final = all[all.length - 1] ?? [];
const ops = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op).map((i) => i.args);

describe('Dockerfile', () => {
  it('is multi-stage on one pinned Node LTS slim image: tag and digest, the Node major CI tests on', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const s of all) expect(s[0]?.args).toMatch(/^\$\{NODE_IMAGE\} AS \w+$/);
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1] ?? '';
    const m = /^node:(\d+)\.\d+\.\d+-[a-z]+-slim@sha256:[0-9a-f]{64}$/.exec(image);
    expect(m, image).not.toBeNull();
    const major = Number(m?.[1]);
    expect(major % 2, 'even Node majors are the LTS lines').toBe(0);
    // Built and tested on the same major: the image runs what this suite runs on.
    expect(major, `the image's Node major vs the Node running the tests (${process.version})`).toBe(Number(process.versions.node.split('.')[0]));
    const engines = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node as string;
    expect(major).toBeGreaterThanOrEqual(Number(/\d+/.exec(engines)?.[0]));
  });

  it('builds in a separate stage with npm ci + npm run build', () => {
    const build = all[0] ?? [];
    expect(ops(build, 'RUN')).toContain('npm ci --ignore-scripts --no-audit --no-fund');
    expect(ops(build, 'RUN')).toContain('npm run build');
  });

  it('final stage: production dependencies only, and only dist/, proto/ and package*.json', () => {
    expect(ops(final, 'RUN').join('\n')).toContain('npm ci --omit=dev --ignore-scripts');
    expect(ops(final, 'COPY')).toEqual(['package.json package-lock.json ./', '--from=build /app/dist/main.js /app/dist/main.js.map ./dist/', '--from=build /app/dist/chunks ./dist/chunks', 'proto ./proto']);
    expect(ops(final, 'ENV')).toContain('NODE_ENV=production');
  });

  it('preloads jemalloc from one path on every architecture, installed before dropping root', () => {
    const runs = ops(final, 'RUN').join('\n');
    expect(runs).toContain('apt-get install -y --no-install-recommends libjemalloc2');
    expect(runs).toContain('rm -rf /var/lib/apt/lists/*');
    const link = /ln -s "\$\(dpkg -L libjemalloc2 \| grep '([^']+)'\)" (\S+)/.exec(runs);
    expect(link?.[2]).toBe('/usr/local/lib/libjemalloc.so.2');
    expect(ops(final, 'ENV')).toContain(`LD_PRELOAD=${link?.[2]} MALLOC_CONF=background_thread:true`);
    const order = final.map((i) => i.op);
    expect(order.indexOf('RUN')).toBeLessThan(order.indexOf('USER'));
    // The grep picks exactly the library out of the package's file list (x86_64 and arm64).
    const pick = new RegExp(link?.[1] ?? '^$');
    const listing = ['/.', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/share/doc/libjemalloc2/copyright', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'];
    expect(listing.filter((f) => pick.test(f))).toEqual(['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2']);
  });

  it('runs as a numeric non-root user', () => {
    const users = ops(final, 'USER');
    expect(users).toHaveLength(1);
    const [uid, gid] = (users[0] as string).split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
  });

  it('runs `hopguard serve --config /etc/hopguard/hopguard.yaml`', () => {
    expect(ops(final, 'ENTRYPOINT')).toEqual(['["node", "dist/main.js"]']);
    expect(ops(final, 'CMD')).toEqual(['["serve", "--config", "/etc/hopguard/hopguard.yaml"]']);
  });

  it('agrees with the Kubernetes manifests: same user, same command, config where the ConfigMap is mounted', () => {
    const dep = parse(readFileSync(path.join(ROOT, 'deploy/base/deployment.yaml'), 'utf8')) as {
      spec: { template: { spec: { initContainers: { name: string; args: string[]; securityContext: { runAsUser: number }; volumeMounts: { mountPath: string }[] }[] } } };
    };
    const hg = dep.spec.template.spec.initContainers.find((c) => c.name === 'hopguard');
    expect(JSON.stringify(hg?.args)).toBe(JSON.stringify(JSON.parse(ops(final, 'CMD')[0] as string)));
    expect(String(hg?.securityContext.runAsUser)).toBe((ops(final, 'USER')[0] as string).split(':')[0]);
    expect(hg?.volumeMounts.map((m) => m.mountPath)).toContain('/etc/hopguard');
  });
});

describe('.dockerignore', () => {
  const rules = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  /** Docker's rule: the last matching pattern wins; `!` re-includes. Enough for our patterns. */
  function included(file: string): boolean {
    let inc = true;
    for (const r of rules) {
      const neg = r.startsWith('!');
      const pat = (neg ? r.slice(1) : r).replace(/\/$/, '');
      const re = new RegExp(
        '^' +
          pat
            .split('**/')
            .map((p) => p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
            .join('(?:.*/)?') +
          '(?:/.*)?$',
      );
      if (re.test(file)) inc = neg;
    }
    return inc;
  }

  it('sends the build exactly what the Dockerfile copies from the context', () => {
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/main.ts', 'proto/grpc/health/v1/health.proto']) {
      expect(included(f), f).toBe(true);
    }
    for (const f of ['node_modules/jose/package.json', 'dist/main.js', '.git/HEAD', 'test/helpers/deploy/k8s.ts', 'deploy/base/deployment.yaml', '.env', 'src/x.test.ts']) {
      expect(included(f), f).toBe(false);
    }
  });

  it('every COPY source exists in the context', () => {
    const sources = all.flatMap((s) => ops(s, 'COPY')).filter((a) => !a.startsWith('--from')).flatMap((a) => a.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const src of sources) expect(included(src), src).toBe(true);
  });
});
