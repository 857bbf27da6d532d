import { isPlainObject, own } from './json.js';
import { deny } from './decision.js';
import type { DenyDecision, Policy } from './types.js';

/**
 * The RFC 8693 actor chain (SPEC §2 "Chain"): `act.sub` is the current actor, each nested
 * `act` a prior one. Every actor must be a SPIFFE ID in a trusted domain, none may repeat,
 * and there may be at most `max_chain_depth` of them.
 */

const SCHEME = 'spiffe://';
/** SPIFFE ID spec: the whole ID is at most 2048 bytes (ASCII here), the trust domain at most 255. */
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

/**
 * Levels walked before giving up: the walk must be bounded whatever the token holds. A chain
 * longer than this is certainly too deep (config keeps max_chain_depth far below it), while a
 * bad actor or a cycle within these levels is still reported as chain_invalid.
 */
const HARD_CAP = 64;

/** Trust domain character set: lowercase letters, digits, ".", "-", "_". */
function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d || c === 0x5f;
}

/** Path segment character set: letters, digits, ".", "-", "_". */
function isPathSegmentChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2e ||
    c === 0x2d ||
    c === 0x5f
  );
}

/** Index of the end of the trust domain (the first "/" or the end), or -1 when the id is not a SPIFFE ID. */
function trustDomainEnd(s: string): number {
  if (s.length > MAX_ID_LENGTH || !s.startsWith(SCHEME)) return -1;
  const n = s.length;
  let i = SCHEME.length;
  while (i < n && s.charCodeAt(i) !== 0x2f) {
    if (!isTrustDomainChar(s.charCodeAt(i))) return -1; // also rejects ":" (port), "@" (userinfo), "%", "?", "#"
    i++;
  }
  const tdEnd = i;
  const tdLen = tdEnd - SCHEME.length;
  if (tdLen === 0 || tdLen > MAX_TRUST_DOMAIN_LENGTH) return -1;
  // Path: zero or more "/" segment, each non-empty, not "." or "..", no trailing slash.
  while (i < n) {
    const segStart = ++i; // skip the "/"
    while (i < n && s.charCodeAt(i) !== 0x2f) {
      if (!isPathSegmentChar(s.charCodeAt(i))) return -1;
      i++;
    }
    const len = i - segStart;
    if (len === 0) return -1; // empty segment or trailing slash
    if (s.charCodeAt(segStart) === 0x2e && (len === 1 || (len === 2 && s.charCodeAt(segStart + 1) === 0x2e))) {
      return -1; // "." or ".."
    }
  }
  return tdEnd;
}

/** True when `s` is a well-formed SPIFFE ID (strict form: lowercase trust domain, no percent-encoding). */
export function isSpiffeId(s: unknown): s is string {
  return typeof s === 'string' && trustDomainEnd(s) !== -1;
}

/** The trust domain of a SPIFFE ID, or undefined when `s` is not one. */
export function trustDomainOf(s: string): string | undefined {
  const end = trustDomainEnd(s);
  return end === -1 ? undefined : s.slice(SCHEME.length, end);
}

/**
 * Walk the actor chain starting at the (already shape-checked) top-level `act`. Returns the
 * actors, current first; or chain_invalid / chain_too_deep. Iterative and bounded: token
 * content must not be able to drive recursion or unbounded work.
 */
export function parseChain(act: unknown, policy: Pick<Policy, 'trustedDomains' | 'maxChainDepth'>): { actors: string[] } | DenyDecision {
  const actors: string[] = [];
  // Beyond this many levels the chain is too deep whatever remains; never below HARD_CAP so
  // that every configured depth is still judged exactly.
  const walkCap = Math.max(HARD_CAP, policy.maxChainDepth + 1);
  let node: unknown = act;
  let truncated = false;
  while (node !== undefined) {
    if (actors.length >= walkCap) {
      truncated = true;
      break;
    }
    const level = actors.length + 1;
    if (!isPlainObject(node)) return deny('chain_invalid', `act at level ${level} is not an object`);
    const sub = own(node, 'sub');
    if (typeof sub !== 'string' || sub.length === 0) {
      return deny('chain_invalid', `act at level ${level} has no sub`);
    }
    const td = trustDomainOf(sub);
    if (td === undefined) return deny('chain_invalid', `actor at level ${level} is not a SPIFFE ID`);
    if (!policy.trustedDomains.includes(td)) {
      return deny('chain_invalid', `actor at level ${level} is outside the trusted domains`);
    }
    // Linear scan: chains are a handful of entries, cheaper than allocating a Set.
    if (actors.includes(sub)) return deny('chain_invalid', `actor at level ${level} repeats an earlier actor (cycle)`);
    actors.push(sub);
    node = own(node, 'act');
  }
  if (truncated || actors.length > policy.maxChainDepth) {
    return deny(
      'chain_too_deep',
      truncated
        ? `chain longer than ${walkCap} actors (max ${policy.maxChainDepth})`
        : `chain has ${actors.length} actors (max ${policy.maxChainDepth})`,
    );
  }
  return { actors };
}
