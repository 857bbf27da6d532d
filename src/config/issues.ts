/**
 * Config problems as data: every issue names the key (a readable path such as
 * `issuers[0].clock_skew`) and the problem, so an operator can fix the file without
 * reading source code.
 */

export interface ConfigIssue {
  /**
   * Readable key path (`issuers[0].clock_skew`, `token.headers[1]`), or `(root)` for the
   * document as a whole, `(yaml)` for YAML syntax errors, `(file)` when it cannot be read.
   */
  readonly key: string;
  readonly message: string;
  /** 1-based position, only for `(yaml)` issues. */
  readonly line?: number;
  readonly col?: number;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['issuers', 0, 'clock_skew']` → `issuers[0].clock_skew`; `[]` → `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') {
      out += `[${seg}]`;
    } else {
      const s = String(seg);
      if (PLAIN_KEY.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/**
 * A config that validated but cannot be used as it stands (a key file that does not load…),
 * found while starting: reported like a validation error, naming the key.
 */
export class ConfigIssuesError extends Error {
  override readonly name = 'ConfigIssuesError';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.key}: ${i.message}`).join('; '));
  }
}

/** One line per issue: `config.yaml: issuers[0].clock_skew: expected a duration ...`. */
export function formatIssues(issues: readonly ConfigIssue[], source: string): string {
  return issues.map((i) => `${source}: ${i.key}: ${i.message}`).join('\n');
}

/** A short, bounded rendering of an offending value for messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (typeof v === 'string') {
    const s = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    return JSON.stringify(s);
  }
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}
