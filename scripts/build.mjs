#!/usr/bin/env node
// `npm run build`: the two outputs of one source tree.
//
//   1. tsc (tsconfig.build.json) → dist/**: every module on its own, with declarations and
//      source maps: what tests, the bench and scripts import.
//   2. esbuild → dist/main.js + dist/chunks/: the CLI as it ships, one bundle per command
//      (main.ts imports each command lazily, so `serve` loads only its own chunks). It
//      replaces tsc's dist/main.js. Why: a sidecar in every pod pays for what it loads. As
//      ~500 separate ES/CommonJS modules, `serve` spent most of its start-up resolving and
//      compiling modules and kept every file's text (comments, unused exports, zod's 60 locales)
//      on its heap; bundled and tree-shaken it starts ~25% sooner on ~5 MB less RSS
//      (bench/RESULTS.md, "Footprint and rate").
//
// Usage: node scripts/build.mjs [--outDir DIR]   (default dist/)
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--outDir');
const outDir = path.resolve(i > 0 ? process.argv[i + 1] : path.join(root, 'dist'));

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', outDir], { cwd: root, stdio: 'inherit' });

rmSync(path.join(outDir, 'chunks'), { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: { main: 'src/main.ts' },
  outdir: outDir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Whitespace and syntax only: identifiers stay, so stack traces keep every function's name
  // (`node --enable-source-maps` maps them to src/). Not keepNames: it wraps every function
  // and closure in a __name() call, which closures created per request would pay each time.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  // Loaded from node_modules at run time, as before, not bundled:
  //  - @grpc/proto-loader: grpc-js require()s it only for channelz/ORCA, which serve never
  //    starts; external, its ~170 kB (with protobufjs) are read only by the commands using it;
  //  - @redis/client: import()ed only when a config names the Redis replay store; a bundled
  //    CommonJS module behind import() would lose its named exports (esbuild's split chunk
  //    exports only `default`), and its 770 kB stay out of every other process.
  external: ['@grpc/proto-loader', '@redis/client'],
  // The CommonJS dependencies (grpc-js, prom-client, yaml, …) call require(): give the ESM
  // bundle one.
  banner: { js: "import { createRequire as __hopguardRequire } from 'node:module'; const require = __hopguardRequire(import.meta.url);" },
  logLevel: 'warning',
});
