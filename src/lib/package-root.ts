import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface PackageJson {
  readonly name?: unknown;
  readonly version?: string;
}

/**
 * The package's root directory (where package.json and proto/ live) and its package.json,
 * read once at start-up. Found by walking up from this module, which runs from src/lib/
 * (tests), dist/lib/ (the tsc build, which tests and the bench import) or dist/chunks/ (the
 * bundled CLI, scripts/build.mjs): no fixed number of `..` fits all three. Falls back to the
 * current directory and `{}` if no hopguard package.json is found.
 */
const FOUND: { readonly root: string; readonly pkg: PackageJson } = findRoot(path.dirname(fileURLToPath(import.meta.url)));

export const PACKAGE_ROOT: string = FOUND.root;
export const PACKAGE_JSON: { readonly version?: string } = FOUND.pkg;

function findRoot(from: string): { root: string; pkg: PackageJson } {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
      if (pkg.name === 'hopguard') return { root: dir, pkg };
    } catch {
      // no package.json here (or not ours): keep walking up
    }
    if (path.dirname(dir) === dir) return { root: process.cwd(), pkg: {} };
  }
}
