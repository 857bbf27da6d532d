import type { Memo } from './memo.js';
import { compilePattern, type PathPattern } from './path.js';

/**
 * Containment for grants (SPEC §7): `p ⊆ q` when everything the first allows, the second
 * allows too. This is what keeps the token exchange narrowing: a requested grant is issued
 * only when one grant the caller already holds contains it.
 *
 * Path patterns (SPEC §2): a pattern is `/` followed by segments, each a literal or `*`
 * (exactly one non-empty segment); a trailing `/**` matches the prefix itself and anything
 * below it. Canonical paths never have an empty segment except the last one (a trailing
 * slash, or `/` itself), so a literal `""` can only end a pattern. With `[p1..pm]` and
 * `[q1..qn]` the segments of p and q:
 *
 * | p \ q     | exact                         | prefix (`/**`)                 |
 * |-----------|-------------------------------|--------------------------------|
 * | exact     | m = n and each pi ⊆ qi        | m ≥ n and pi ⊆ qi for i ≤ n    |
 * | prefix    | never (p matches every depth) | m ≥ n and pi ⊆ qi for i ≤ n    |
 *
 * and for one segment: a ⊆ b when a = b, or b is `*` and a is not the empty literal (a
 * non-empty literal, or `*`). A `*` is never inside a literal: there are infinitely many
 * non-empty segments. Every valid pattern matches at least one path, so these conditions are
 * exact, not merely sufficient; test/unit/core/containment.test.ts holds them to a brute
 * force enumeration of concrete paths.
 */

const WILDCARD = '*';

function segmentContained(a: string, b: string): boolean {
  if (a === b) return true;
  return b === WILDCARD && a !== '';
}

/** Every path `p` matches, `q` matches (compiled patterns). */
export function patternContained(p: PathPattern, q: PathPattern): boolean {
  const ps = p.segments;
  const qs = q.segments;
  if (p.prefix && !q.prefix) return false;
  if (q.prefix ? ps.length < qs.length : ps.length !== qs.length) return false;
  for (let i = 0; i < qs.length; i++) {
    if (!segmentContained(ps[i] as string, qs[i] as string)) return false;
  }
  return true;
}

/**
 * `p ⊆ q` for pattern strings. An invalid `q` matches nothing, so nothing valid is in it;
 * an invalid `p` is never contained either (callers reject invalid requested patterns
 * before asking, and an empty language must not be mistaken for a harmless request).
 */
export function pathPatternContained(p: string, q: string, patterns?: Memo<string, PathPattern | null>): boolean {
  const cp = compilePattern(p, patterns);
  const cq = compilePattern(q, patterns);
  return cp !== undefined && cq !== undefined && patternContained(cp, cq);
}

/** The four members of a hop grant hopguard reads (SPEC §2); nothing else is carried. */
export interface Grant {
  readonly type: string;
  readonly locations: readonly string[];
  readonly actions: readonly string[];
  /** Absent: the grant covers routes with `context_extensions.action` only. */
  readonly paths?: readonly string[];
}

function subset(a: readonly string[], b: readonly string[]): boolean {
  for (const x of a) if (!b.includes(x)) return false;
  return true;
}

/**
 * `r ⊆ a` (SPEC §7): same type, locations ⊆, actions ⊆, and every path pattern of r
 * contained in ONE of a's, as SPEC words it: stricter than the union of a's patterns (a
 * request for every path is refused against "/" plus "/<star>/**", which together match
 * every path; test/unit/core/containment.test.ts). Then every hop r covers (workload,
 * method or route action, path), a covers: route-action hops do not consult paths, and
 * actions are a subset.
 */
export function grantContained(r: Grant, a: Grant, patterns?: Memo<string, PathPattern | null>): boolean {
  if (r.type !== a.type) return false;
  if (!subset(r.locations, a.locations) || !subset(r.actions, a.actions)) return false;
  const allowedPaths = a.paths ?? [];
  for (const p of r.paths ?? []) {
    let covered = false;
    for (const q of allowedPaths) {
      if (pathPatternContained(p, q, patterns)) {
        covered = true;
        break;
      }
    }
    if (!covered) return false;
  }
  return true;
}

/** Index of the first grant of `allowed` containing `r`, or -1. `patterns`: compiled patterns the caller keeps. */
export function containingGrant(r: Grant, allowed: readonly Grant[], patterns?: Memo<string, PathPattern | null>): number {
  for (let i = 0; i < allowed.length; i++) if (grantContained(r, allowed[i] as Grant, patterns)) return i;
  return -1;
}
