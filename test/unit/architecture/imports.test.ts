/**
 * The import graph of src/: no cycle anywhere, and the layering the README's Development
 * section describes (core/ is pure, telemetry/ observes, runtime/ wires, cli/ prints).
 *
 * Type-only imports count. They vanish from the emitted JavaScript, but they couple the
 * source all the same: the cycle this test was written for (cli/reload.ts taking
 * `type Engine` from cli/app.ts, which imported reload.ts) was type-only, and a layer that
 * borrows another's types can no longer be changed, read or moved on its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** Every module specifier a file names: imports (type-only too), re-exports, dynamic imports. */
function specifiers(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.split(path.sep).join('/'))
    .sort();
}

interface Graph {
  /** src-relative file → src-relative files it imports. */
  readonly edges: ReadonlyMap<string, readonly string[]>;
  /** Relative specifiers that name no file of src/. */
  readonly unresolved: readonly string[];
}

function importGraph(): Graph {
  const files = sourceFiles(SRC);
  const known = new Set(files);
  const edges = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const out: string[] = [];
    for (const spec of specifiers(readFileSync(path.join(SRC, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue; // a package or node: builtin
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      if (known.has(target)) out.push(target);
      else unresolved.push(`${file} → ${spec}`);
    }
    edges.set(file, out);
  }
  return { edges, unresolved };
}

/** Strongly connected components that are cycles (Tarjan), each sorted. */
function cycles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** A file's layer: its folder under src/, or its own name for a file at the top. */
function layerOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? file : file.slice(0, slash);
}

/**
 * What each layer may import besides itself. A new folder must be added here on purpose:
 * where it sits is a design decision, not an accident of the first import someone writes.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  // The pure decision: no I/O, no clock, nothing of the layers that do those.
  core: [],
  // Shared mechanisms (bounded memo, timers and back-off, path watcher): leaves.
  lib: [],
  // Named defaults and the one validation; may use core's pure functions (canonical paths).
  config: ['core', 'lib'],
  // JWS, keys, JWKS sources (the path watcher is lib's).
  token: ['core', 'lib'],
  // The Envoy adapter.
  envoy: ['core', 'lib'],
  // The token endpoint's HTTP adapter (hopguard sts); config/: listen-address checks.
  sts: ['core', 'lib', 'config'],
  // The audit trail's mechanics: canonical JSON, the hash chain, checkpoint keys, verification.
  audit: ['lib', 'token'],
  // Observes, never decides, never wires.
  // Replay stores (memory, Redis): stateful, I/O; used by the authorizer, wired by runtime.
  replay: ['lib', 'config'],
  telemetry: ['core', 'lib', 'config', 'envoy', 'sts', 'token', 'replay', 'audit', 'version.ts'],
  // package.json's version, found through lib's package root.
  'version.ts': ['lib'],
  // Engines, hosts and server lifecycles: wires everything below it.
  runtime: ['core', 'lib', 'config', 'token', 'envoy', 'sts', 'telemetry', 'replay', 'audit', 'version.ts'],
  // Flags and printing.
  cli: ['core', 'lib', 'config', 'token', 'envoy', 'telemetry', 'replay', 'audit', 'runtime', 'version.ts'],
  'main.ts': ['cli', 'version.ts'],
};

const graph = importGraph();

describe('the import graph of src/', () => {
  it('has files, and every relative import names one of them', () => {
    expect(graph.edges.size).toBeGreaterThan(40);
    expect(graph.unresolved).toEqual([]);
  });

  it('has no import cycle (type-only imports included)', () => {
    expect(cycles(graph.edges)).toEqual([]);
  });

  it('every layer imports only what the layering allows', () => {
    const violations: string[] = [];
    for (const [file, targets] of graph.edges) {
      const from = layerOf(file);
      const allowed = MAY_IMPORT[from];
      if (allowed === undefined) {
        violations.push(`${file}: layer ${from} is not in MAY_IMPORT`);
        continue;
      }
      for (const target of targets) {
        const to = layerOf(target);
        if (to !== from && !allowed.includes(to)) violations.push(`${file} → ${target}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('cli commands do not import each other: shared flag helpers live in cli/flags.ts', () => {
    const sideways: string[] = [];
    for (const [file, targets] of graph.edges) {
      if (layerOf(file) !== 'cli') continue;
      for (const t of targets) if (layerOf(t) === 'cli' && t !== 'cli/flags.ts') sideways.push(`${file} → ${t}`);
    }
    expect(sideways).toEqual([]);
  });

  it('the config is consumed through its types: only config/load.ts imports the zod schemas', () => {
    const importers = [...graph.edges].filter(([, targets]) => targets.includes('config/schema.ts')).map(([file]) => file);
    // sts-schema.ts shares serve's building blocks (durations, issuer key options, events).
    expect(importers).toEqual(['config/load.ts', 'config/sts-schema.ts']);
    const stsImporters = [...graph.edges].filter(([, targets]) => targets.includes('config/sts-schema.ts')).map(([file]) => file);
    expect(stsImporters).toEqual(['config/load.ts']);
  });
});

/**
 * What a module loads when it is evaluated: static imports that are not type-only (a
 * dynamic import() loads only when it runs). Relative ones as src-relative files.
 */
function loadTimeImports(file: string): { readonly files: string[]; readonly packages: string[] } {
  const sf = ts.createSourceFile(file, readFileSync(path.join(SRC, file), 'utf8'), ts.ScriptTarget.Latest);
  const files: string[] = [];
  const packages: string[] = [];
  for (const st of sf.statements) {
    let spec: string | undefined;
    if (ts.isImportDeclaration(st) && !st.importClause?.isTypeOnly) {
      const named = st.importClause?.namedBindings;
      const onlyTypes =
        st.importClause !== undefined &&
        st.importClause.name === undefined &&
        named !== undefined &&
        ts.isNamedImports(named) &&
        named.elements.length > 0 &&
        named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) spec = (st.moduleSpecifier as ts.StringLiteral).text;
    } else if (ts.isExportDeclaration(st) && !st.isTypeOnly && st.moduleSpecifier !== undefined) {
      spec = (st.moduleSpecifier as ts.StringLiteral).text;
    }
    if (spec === undefined) continue;
    if (spec.startsWith('.')) files.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts'));
    else packages.push(spec);
  }
  return { files, packages };
}

/** Every package the given entry module loads at evaluation, and the files that load each. */
function packagesLoadedBy(entry: string): Map<string, string[]> {
  const seen = new Set<string>();
  const out = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const { files, packages } = loadTimeImports(file);
    for (const p of packages) out.set(p, [...(out.get(p) ?? []), file]);
    files.forEach(visit);
  };
  visit(entry);
  return out;
}

// The sidecar's footprint (issue 17, bench/RESULTS.md "Footprint and rate"): what `serve`
// loads stays in every pod. Client-side and CLI-only code is loaded by the commands that use it.
describe('what `serve` loads', () => {
  it('main.ts loads no command until it runs (each command imports its own graph)', () => {
    expect(loadTimeImports('main.ts').files.sort()).toEqual(['cli/flags.ts', 'version.ts']);
  });

  it('serve parses no .proto (the server runs on the lean codecs) and loads jose by entry point only', () => {
    const loaded = packagesLoadedBy('cli/serve.ts');
    const offending = ['@grpc/proto-loader', 'protobufjs', 'jose'].filter((p) => loaded.has(p)).map((p) => `${p} ← ${loaded.get(p)!.join(', ')}`);
    expect(offending).toEqual([]);
    expect(loaded.has('@grpc/grpc-js')).toBe(true); // the walk does see packages
  });
});

describe('the checks themselves', () => {
  it('read type-only imports, re-exports and dynamic imports', () => {
    const text = [
      "import type { A } from './a.js';",
      "import { type B, c } from './b.js';",
      "export { d } from './d.js';",
      "export * from './e.js';",
      "export type { F } from './f.js';",
      "const g = await import('./g.js');",
      "import 'node:fs';",
    ].join('\n');
    expect(specifiers(text)).toEqual(['./a.js', './b.js', './d.js', './e.js', './f.js', './g.js', 'node:fs']);
  });

  it('find a cycle of any length, and a self-import', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
    expect(cycles(new Map([['a', ['a']]]))).toEqual([['a']]);
    expect(cycles(new Map([['a', ['b']], ['b', []]]))).toEqual([]);
  });
});
