import { deny } from './decision.js';
import type { DenyDecision, HopRequest, Policy } from './types.js';

/**
 * First two steps of SPEC §3: exempt routes, then picking exactly one token out of the
 * places Envoy may have put it.
 */

/** Exact method and exact query-less path of a configured `exempt` entry (no normalization). */
export function isExempt(req: HopRequest, policy: Policy): boolean {
  if (policy.exempt.length === 0) return false;
  const path = req.pathNoQuery;
  for (const route of policy.exempt) {
    if (route.method === req.method && route.path === path) return true;
  }
  return false;
}

function isBlank(v: string): boolean {
  return v.trim().length === 0;
}

/**
 * The single delegation token of the request, or missing_token / multiple_tokens.
 *
 * Envoy joins repeated header values with ",", and base64url never contains one, so a ","
 * means two tokens. The same header may also arrive in both `headers` and `header_map`; then
 * the values must be identical. A non-empty value is returned untrimmed: a token with stray
 * whitespace must fail later as malformed, not be silently repaired.
 */
export function selectToken(req: HopRequest, policy: Policy): { token: string } | DenyDecision {
  void policy; // header names are resolved by the adapter; kept for a stable signature
  const fromMap = req.tokenFromHeaderMap;
  const fromHeaders = req.tokenFromHeaders;
  if (fromMap.length > 1) return deny('multiple_tokens', 'token header appears more than once in header_map');
  if (fromHeaders.length > 1) return deny('multiple_tokens', 'more than one token header is present');
  const a = fromHeaders[0];
  const b = fromMap[0];
  if ((a !== undefined && a.includes(',')) || (b !== undefined && b.includes(','))) {
    return deny('multiple_tokens', 'token header carries more than one value');
  }
  if (a !== undefined && b !== undefined && a !== b) {
    return deny('multiple_tokens', 'headers and header_map carry different tokens');
  }
  const token = a ?? b;
  if (token === undefined || isBlank(token)) return deny('missing_token', 'no delegation token header');
  return { token };
}
