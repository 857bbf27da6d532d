import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's root directory: where package.json and proto/ live. Found by walking up from
 * this module, which runs from src/lib/ (tests), dist/lib/ (the tsc build, which tests and the
 * bench import) or dist/chunks/ (the bundled CLI, scripts/build.mjs): no fixed number of `..`
 * fits all three. Falls back to the current directory if no hopguard package.json is found.
 */
export const PACKAGE_ROOT: string = findRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'hopguard') return dir;
    } catch {
      // no package.json here (or not ours): keep walking up
    }
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

/** package.json's fields, read once at start-up (`{}` if unreadable). */
export const PACKAGE_JSON: { readonly version?: string } = (() => {
  try {
    return JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: string };
  } catch {
    return {};
  }
})();
