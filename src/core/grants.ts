import type { AuthorizationDetail, DelegationClaims } from './claims.js';
import { allow, deny } from './decision.js';
import type { Memo } from './memo.js';
import { compilePattern, matchPattern, type PathPattern } from './path.js';
import type { Decision, HopRequest, Policy } from './types.js';

/**
 * RFC 9396 grant matching (SPEC §2): a grant covers the hop when its `locations` name this
 * workload, its `actions` hold the route's `context_extensions.action` (or else the request
 * method, exactly), and — only without a route action — one of its `paths` matches the
 * query-less request path. All comparisons are exact: no case folding, no Unicode
 * normalization, no trimming.
 */

/** The route's action from Envoy's `context_extensions.action`, when set and non-empty. */
function routeAction(req: HopRequest): string | undefined {
  const ext = req.contextExtensions;
  const a = Object.hasOwn(ext, 'action') ? ext['action'] : undefined;
  return typeof a === 'string' && a.length > 0 ? a : undefined;
}

type Miss = 'location' | 'action' | 'path';

/** Why `g` does not cover the hop, or undefined when it does. */
function missOf(
  g: AuthorizationDetail,
  workloadId: string,
  action: string | undefined,
  method: string,
  path: string,
  patterns: Memo<string, PathPattern | null> | undefined,
): Miss | undefined {
  if (!(g.locations ?? []).includes(workloadId)) return 'location';
  if (!(g.actions ?? []).includes(action ?? method)) return 'action';
  if (action !== undefined) return undefined; // a route action replaces the path check
  for (const source of g.paths ?? []) {
    const p = compilePattern(source, patterns);
    if (p !== undefined && matchPattern(p, path)) return undefined;
  }
  return 'path';
}

/**
 * granted (with the index of the first covering grant), grant_missing or grant_mismatch.
 * `patterns`: the caller's memo of compiled path patterns (see compilePattern).
 */
export function matchGrant(
  claims: DelegationClaims,
  req: HopRequest,
  policy: Policy,
  patterns?: Memo<string, PathPattern | null>,
): Decision {
  const action = routeAction(req);
  const path = req.pathNoQuery;
  // decide() rejects non-canonical paths before getting here (whatever the route action);
  // re-checked (the request's fact, computed once) so that no caller can ever have a
  // pattern match a path a backend would read differently.
  const problem = req.pathProblem;
  if (problem !== undefined) return deny('path_not_canonical', problem);
  const details = claims.authorization_details;
  let seen = 0;
  for (let i = 0; i < details.length; i++) {
    const g = details[i] as AuthorizationDetail;
    if (g.type !== policy.grantType) continue;
    seen++;
    if (missOf(g, policy.workloadId, action, req.method, path, patterns) === undefined) return allow('granted', i);
  }
  if (seen === 0) return deny('grant_missing', `no authorization_details entry of type ${JSON.stringify(policy.grantType)}`);
  return deny('grant_mismatch', `none of ${seen} grant(s) covers this request`);
}

/**
 * One line per grant of the grant type saying why it does or does not cover the hop (for
 * `hopguard check`). Token strings are JSON-quoted so that control characters cannot reach a
 * terminal unescaped.
 */
export function explainGrants(claims: DelegationClaims, req: HopRequest, policy: Policy): string[] {
  const action = routeAction(req);
  const path = req.pathNoQuery;
  const q = (s: string): string => JSON.stringify(s);
  const problem = req.pathProblem;
  if (problem !== undefined) return [`path ${q(path)} is not canonical: ${problem} (path_not_canonical; no grant consulted)`];
  const lines: string[] = [];
  const details = claims.authorization_details;
  for (let i = 0; i < details.length; i++) {
    const g = details[i] as AuthorizationDetail;
    if (g.type !== policy.grantType) continue;
    const miss = missOf(g, policy.workloadId, action, req.method, path, undefined);
    let why: string;
    if (miss === undefined) {
      why =
        action !== undefined
          ? `matches (action ${q(action)} from context_extensions.action; paths not consulted)`
          : `matches (method ${q(req.method)}, path ${q(path)})`;
    } else if (miss === 'location') {
      why = `locations do not include ${q(policy.workloadId)}`;
    } else if (miss === 'action') {
      why =
        action !== undefined
          ? `actions do not include ${q(action)} (context_extensions.action)`
          : `actions do not include method ${q(req.method)}`;
    } else {
      const invalid = (g.paths ?? []).filter((p) => compilePattern(p) === undefined);
      why =
        (g.paths ?? []).length === 0
          ? 'paths is empty or absent'
          : `no path pattern matches ${q(path)}`;
      if (invalid.length > 0) why += `; invalid pattern(s): ${invalid.map(q).join(', ')}`;
    }
    lines.push(`grant #${i}: ${why}`);
  }
  if (lines.length === 0) lines.push(`no grant of type ${q(policy.grantType)} (grant_missing)`);
  return lines;
}
