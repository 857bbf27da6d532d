/**
 * YAML text → validated HopguardConfig. Order matters for safety:
 *   1. parse YAML strictly (duplicate keys, multiple documents, unknown tags are errors;
 *      alias expansion bounded);
 *   2. expand `${VAR}` on string scalars of the parsed tree, so an environment value can
 *      never inject YAML structure and is never expanded twice;
 *   3. validate with the one schema (schema.ts).
 */
import { dirname } from 'node:path';
import { BoundedReadError, fileReader } from '../lib/bounded-read.js';
import { parseDocument, type YAMLError } from 'yaml';
import { LIMITS } from './defaults.js';
import { describeValue, formatPath, type ConfigIssue } from './issues.js';
import { validateConfig, type ValidateOptions } from './schema.js';
import { validateStsConfig } from './sts-schema.js';
import type { HopguardConfig, StsConfig } from './types.js';

/** A validated config of some command (`serve`, `sts`), or every problem with its key. */
export type ParsedConfig<T> = { readonly ok: true; readonly config: T } | { readonly ok: false; readonly errors: ConfigIssue[] };
export type ConfigResult = ParsedConfig<HopguardConfig>;

/** The one validation of a command's config (schema.ts for `serve`, sts-schema.ts for `sts`). */
export type ConfigValidator<T> = (data: unknown, opts: ValidateOptions) => ParsedConfig<T>;

export interface ParseConfigOptions {
  /** Variables for `${VAR}` expansion (normally process.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Display name of the config (a file path); callers pass it to formatIssues. */
  readonly source?: string;
  /** Directory that relative `jwks_file` paths are resolved against (default: left as is). */
  readonly baseDir?: string;
}

export function parseConfig(text: string, opts: ParseConfigOptions): ConfigResult {
  return parseConfigWith(text, opts, validateConfig);
}

/** YAML text → a config validated by `validate`: the same YAML rules and `${VAR}` expansion for every command. */
export function parseConfigWith<T>(text: string, opts: ParseConfigOptions, validate: ConfigValidator<T>): ParsedConfig<T> {
  if (Buffer.byteLength(text, 'utf8') > LIMITS.config_max_bytes) {
    return fail('(file)', `config is larger than ${LIMITS.config_max_bytes} bytes`);
  }
  const doc = parseDocument(text, {
    uniqueKeys: true,
    // `<<: *defaults` lets issuers share settings; still bounded by maxAliasCount.
    merge: true,
    strict: true,
    prettyErrors: true,
  });
  // Warnings (e.g. an unresolved `!tag`) are errors too: a config must mean exactly one thing.
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length > 0) return { ok: false, errors: yamlProblems.map(yamlIssue) };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: LIMITS.yaml_max_alias_count });
  } catch (e) {
    return fail('(yaml)', `cannot build the document: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return fail('(root)', 'the config is empty; expected a mapping');
  if (typeof data !== 'object' || Array.isArray(data)) {
    return fail('(root)', `the config must be a mapping, got ${describeValue(data)}`);
  }

  const envErrors: ConfigIssue[] = [];
  const expanded = expandTree(data, [], opts.env, envErrors);
  const result = validate(expanded, opts.baseDir === undefined ? {} : { baseDir: opts.baseDir });
  if (envErrors.length === 0) return result;
  // Report the unset variables, plus schema problems elsewhere (the unexpanded text at
  // the env-error keys would only add confusing duplicates).
  const envKeys = new Set(envErrors.map((e) => e.key));
  const others = result.ok ? [] : result.errors.filter((e) => !envKeys.has(e.key));
  return { ok: false, errors: [...envErrors, ...others] };
}

/** Reads and parses a config file; read problems are reported under the key `(file)`. */
export async function loadConfigFile(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ConfigResult> {
  return loadConfigFileWith(path, env, validateConfig);
}

/** `hopguard sts`: the STS config file (SPEC §7), with serve's YAML and `${VAR}` rules. */
export function loadStsConfigFile(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ParsedConfig<StsConfig>> {
  return loadConfigFileWith(path, env, validateStsConfig);
}

/** STS config text (dev, tests). */
export function parseStsConfig(text: string, opts: ParseConfigOptions): ParsedConfig<StsConfig> {
  return parseConfigWith(text, opts, validateStsConfig);
}

export async function loadConfigFileWith<T>(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  validate: ConfigValidator<T>,
): Promise<ParsedConfig<T>> {
  const read = await readConfigText(path);
  if ('error' in read) return fail('(file)', read.error);
  return parseConfigWith(read.text, { env, source: path, baseDir: dirname(path) }, validate);
}

/**
 * Reads a config file (through symlinks) by the process's bounded reader
 * (src/lib/bounded-read.ts): a regular file only (a FIFO or device is refused at once, never
 * a blocked thread), at most LIMITS.config_max_bytes whatever stat says, within
 * LIMITS.config_read_timeout_ms. Used at start-up and by every reload.
 */
export async function readConfigText(file: string): Promise<{ text: string } | { error: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await fileReader.read(file, { maxBytes: LIMITS.config_max_bytes, timeoutMs: LIMITS.config_read_timeout_ms });
  } catch (e) {
    if (!(e instanceof BoundedReadError)) return { error: `cannot read ${file}: error` };
    switch (e.code) {
      case 'not_regular':
        return { error: `${file} is not a regular file` };
      case 'too_large':
        return { error: `${file} is larger than ${LIMITS.config_max_bytes} bytes` };
      default: // ENOENT, EACCES…; a timeout
        return { error: `cannot read ${file}: ${e.message}` };
    }
  }
  return { text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8') };
}

function fail<T>(key: string, message: string): ParsedConfig<T> {
  return { ok: false, errors: [{ key, message }] };
}

function yamlIssue(e: YAMLError): ConfigIssue {
  // With prettyErrors the message carries " at line L, column C:" and a source excerpt;
  // keep the first clause and report the position as data.
  const text = e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? e.message;
  const pos = e.linePos?.[0];
  if (pos === undefined) return { key: '(yaml)', message: text };
  return { key: '(yaml)', message: `line ${pos.line}, column ${pos.col}: ${text}`, line: pos.line, col: pos.col };
}

// ---------------------------------------------------------------------------------------
// ${VAR} expansion.

const VAR_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Rebuilds the tree with every string value expanded; mapping keys are left alone. */
function expandTree(
  v: unknown,
  path: PropertyKey[],
  env: Readonly<Record<string, string | undefined>>,
  errors: ConfigIssue[],
): unknown {
  if (typeof v === 'string') {
    const r = expandString(v, env);
    if (typeof r === 'string') return r;
    errors.push({ key: formatPath(path), message: r.error });
    return v;
  }
  if (Array.isArray(v)) return v.map((item, i) => expandTree(item, [...path, i], env, errors));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, child] of Object.entries(v)) {
      // defineProperty: a `__proto__` key stays an ordinary (and later rejected) key.
      Object.defineProperty(out, k, {
        value: expandTree(child, [...path, k], env, errors),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

/**
 * `${VAR}`, `${VAR:-default}` (default when unset or empty, taken literally) and `$$` for a
 * literal `$`. Any other `$` is an error, so `$HOME` is never silently kept as text.
 * Exported for tests.
 */
export function expandString(
  s: string,
  env: Readonly<Record<string, string | undefined>>,
): string | { error: string } {
  if (!s.includes('$')) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const dollar = s.indexOf('$', i);
    if (dollar < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, dollar);
    const next = s[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
      continue;
    }
    if (next !== '{') {
      return { error: 'unescaped "$": write $$ for a literal $, or ${VAR} for a variable' };
    }
    const close = s.indexOf('}', dollar + 2);
    if (close < 0) return { error: 'unterminated "${": expected ${VAR} or ${VAR:-default}' };
    const body = s.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!VAR_NAME_RE.test(name)) {
      return { error: `invalid variable reference \${${body}}: expected \${VAR} or \${VAR:-default}` };
    }
    const value = Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
    if (sep >= 0) {
      out += value === undefined || value === '' ? body.slice(sep + 2) : value;
    } else if (value === undefined) {
      return { error: `environment variable ${name} is not set (use \${${name}:-default} for a default)` };
    } else {
      out += value;
    }
    i = close + 1;
  }
  return out;
}
