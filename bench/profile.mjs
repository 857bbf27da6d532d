// Summarizes the .cpuprofile files `npm run bench -- --cpu-prof=DIR` leaves in DIR: self time
// by area (transport, codecs, hopguard's own modules, GC…) and the top functions, as a share
// of busy (non-idle) samples. Usage: node bench/profile.mjs DIR [top=25]
// Frames in the bundled CLI (dist/main.js, dist/chunks/) are mapped back to their source
// file and line (src/… or node_modules/…) through the bundle's source maps.
import { readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [dir, topArg] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: node bench/profile.mjs DIR [top]\n');
  process.exit(2);
}
const TOP = Number(topArg ?? 25);
// Piped into head: stop quietly when the reader goes away.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** First matching rule names the area of a frame's script URL / function name. */
const AREAS = [
  [/^\(garbage collector\)$/, 'gc', 'name'],
  [/^\(program\)$/, 'program (native, unattributed)', 'name'],
  [/node_modules\/@grpc\/grpc-js\//, 'grpc-js'],
  [/node_modules\/protobufjs\/|node_modules\/@protobufjs\//, 'protobufjs (proto-loader codecs)'],
  [/node_modules\/lru-cache\//, 'lru-cache'],
  [/node_modules\/prom-client\//, 'prom-client'],
  [/node_modules\/sonic-boom\//, 'sonic-boom'],
  [/node_modules\/jose\//, 'jose'],
  [/node_modules\//, 'other packages'],
  [/\/(dist|src)\/envoy\/(decode|strings)\.[jt]s$/, 'hopguard envoy: decode'],
  [/\/(dist|src)\/envoy\/encode\.[jt]s$/, 'hopguard envoy: encode'],
  [/\/(dist|src)\/envoy\//, 'hopguard envoy: adapter'],
  [/\/(dist|src)\/token\//, 'hopguard token'],
  [/\/(dist|src)\/core\//, 'hopguard core'],
  [/\/(dist|src)\/telemetry\//, 'hopguard telemetry'],
  [/\/(dist|src)\/runtime\//, 'hopguard runtime'],
  [/\/(dist|src)\/lib\//, 'hopguard lib (memos, timers)'],
  [/\/(dist|src)\//, 'hopguard other'],
  [/^node:internal\/http2|^node:http2/, 'node http2'],
  [/^node:internal\/(stream|streams)|^node:stream/, 'node streams'],
  [/^node:/, 'node other'],
  [/^$/, 'native / builtins'],
];

/** The bundle's maps, one per generated file (null: none readable). */
const maps = new Map();
/** A frame of the bundled CLI → its source file URL and line; any other frame unchanged. */
function original(url, lineNumber, columnNumber) {
  if (!/\/dist\/(main|chunks\/[^/]+)\.js$/.test(url)) return { url, lineNumber };
  if (!maps.has(url)) {
    try {
      maps.set(url, new SourceMap(JSON.parse(readFileSync(fileURLToPath(url) + '.map', 'utf8'))));
    } catch {
      maps.set(url, null);
    }
  }
  const e = maps.get(url)?.findEntry(lineNumber, columnNumber);
  if (!e?.originalSource) return { url, lineNumber };
  return { url: new URL(e.originalSource, url).href, lineNumber: e.originalLine };
}

/** node_modules/… from the last node_modules, else dist/… or src/… of hopguard's tree. */
const shortUrl = (url) =>
  url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 1) : url.replace(/^.*\/(dist|src)\//, '$1/');

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
if (files.length === 0) {
  process.stderr.write(`no .cpuprofile in ${dir}\n`);
  process.exit(1);
}
for (const f of files) {
  const prof = JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (const id of prof.samples) self.set(id, (self.get(id) ?? 0) + 1);
  let busy = 0;
  const areas = new Map();
  const fns = new Map();
  for (const [id, count] of self) {
    const frame = byId.get(id).callFrame;
    const { functionName } = frame;
    if (functionName === '(idle)') continue;
    const { url, lineNumber } = original(frame.url, frame.lineNumber, frame.columnNumber);
    busy += count;
    const area = AREAS.find(([re, , on]) => re.test(on === 'name' ? functionName : url))?.[1] ?? 'other';
    areas.set(area, (areas.get(area) ?? 0) + count);
    const key = `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + count);
  }
  const pct = (n) => ((100 * n) / busy).toFixed(1).padStart(5) + '%';
  process.stdout.write(`\n${f}: ${busy} busy samples of ${prof.samples.length}\n\nby area (self time):\n`);
  for (const [a, n] of [...areas].sort((x, y) => y[1] - x[1])) process.stdout.write(`  ${pct(n)}  ${a}\n`);
  process.stdout.write(`\ntop ${TOP} functions (self time):\n`);
  for (const [k, n] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, TOP)) process.stdout.write(`  ${pct(n)}  ${k}\n`);
}
