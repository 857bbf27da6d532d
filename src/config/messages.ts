/**
 * Config messages: short, operator-facing, always saying what was expected and what was
 * found; an unknown key suggests the known one it is a typo of (edit distance).
 */
import type { z } from 'zod';
import { describeValue, formatPath, type ConfigIssue } from './issues.js';

const EXPECTED_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** zod's issues in operator words; undefined keeps the message a check gave itself. */
export function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      return `expected ${expected}, got ${describeValue(iss.input)}`;
    }
    case 'invalid_value':
      return `expected one of ${iss.values.map(String).join(', ')}, got ${describeValue(iss.input)}`;
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `must have at least ${min} entr${min === 1 ? 'y' : 'ies'}`;
      if (iss.origin === 'string') return min === 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}, got ${describeValue(iss.input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `must have at most ${max} entries`;
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}, got ${describeValue(iss.input)}`;
    }
    case 'not_multiple_of':
      return `expected an integer, got ${describeValue(iss.input)}`;
    default:
      return undefined;
  }
}

/**
 * zod issues → ConfigIssues naming the key; an unknown key gets the closest of `knownKeys`
 * (the known keys of each object, by path pattern such as `issuers[]`) as a suggestion.
 */
export function toConfigIssues(
  issues: readonly z.core.$ZodIssue[],
  knownKeys: Readonly<Record<string, readonly string[]>>,
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) {
        out.push({ key: formatPath([...iss.path, k]), message: `unknown key${suggest(knownKeys, iss.path, k)}` });
      }
    } else {
      out.push({ key: formatPath(iss.path), message: iss.message });
    }
  }
  return out;
}

function suggest(knownKeys: Readonly<Record<string, readonly string[]>>, objectPath: readonly PropertyKey[], key: string): string {
  const pattern =
    objectPath.length === 0
      ? '(root)'
      : objectPath.map((s) => (typeof s === 'number' ? '[]' : `.${String(s)}`)).join('').slice(1);
  const known = knownKeys[pattern];
  if (known === undefined || key.length < 3) return '';
  // Short keys tolerate one edit, longer ones two: enough for typos, not for noise.
  let best: string | undefined;
  let bestDist = key.length <= 4 ? 2 : 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/** Optimal-string-alignment distance: a swapped pair of letters (`mdoe`) counts as one edit. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 3;
}
