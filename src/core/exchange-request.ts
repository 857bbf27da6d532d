import { isPlainObject, own } from './json.js';
import { isSpiffeId } from './chain.js';
import type { Grant } from './containment.js';
import { exchangeError, type ExchangeError } from './exchange-errors.js';
import { canonicalProblem, compilePattern } from './path.js';

/**
 * The parameters of one RFC 8693 token-exchange request (SPEC §7 "Request"), checked and
 * typed. Pure: the form body has already been split into unique names by the HTTP layer.
 */

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const SUBJECT_TOKEN_TYPES: readonly string[] = Object.freeze([TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN]);

/** Bounds on `authorization_details` (the body is ≤ 64 KiB; these keep containment work small). */
export const MAX_REQUESTED_GRANTS = 64;
export const MAX_GRANT_LIST = 256;

export interface ExchangeRequest {
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  /** The next workload's SPIFFE ID. */
  readonly audience: string;
  /** `authorization_details` when given: exactly what the new token is to carry. */
  readonly requested?: readonly Grant[];
}

const GRANT_MEMBERS: readonly string[] = Object.freeze(['type', 'locations', 'actions', 'paths']);

function bad(description: string): ExchangeError {
  return exchangeError('bad_request', description);
}

/** A list of non-empty strings, bounded; a problem text, or the list. */
function stringList(v: unknown, what: string, allowEmpty: boolean): readonly string[] | string {
  if (!Array.isArray(v)) return `${what} must be an array of strings`;
  if (!allowEmpty && v.length === 0) return `${what} must not be empty`;
  if (v.length > MAX_GRANT_LIST) return `${what} has more than ${MAX_GRANT_LIST} entries`;
  for (const x of v) if (typeof x !== 'string' || x.length === 0) return `${what} must hold non-empty strings`;
  return v as string[];
}

/**
 * One requested grant: an object with exactly `type`, `locations`, `actions` and optional
 * `paths` (members hopguard does not read could not be checked for containment, so they are
 * refused rather than passed on); every path a canonical, valid pattern.
 */
export function parseGrant(v: unknown, at: string): Grant | string {
  if (!isPlainObject(v)) return `${at} must be an object`;
  for (const k of Object.keys(v)) if (!GRANT_MEMBERS.includes(k)) return `${at} has a member other than type, locations, actions, paths`;
  const type = own(v, 'type');
  if (typeof type !== 'string' || type.length === 0) return `${at}.type must be a non-empty string`;
  const locations = stringList(own(v, 'locations'), `${at}.locations`, false);
  if (typeof locations === 'string') return locations;
  const actions = stringList(own(v, 'actions'), `${at}.actions`, false);
  if (typeof actions === 'string') return actions;
  const rawPaths = own(v, 'paths');
  if (rawPaths === undefined) return { type, locations: [...locations], actions: [...actions] };
  const paths = stringList(rawPaths, `${at}.paths`, true);
  if (typeof paths === 'string') return paths;
  for (const p of paths) {
    const problem = canonicalProblem(p);
    if (problem !== undefined) return `${at}.paths: ${JSON.stringify(p)} is not canonical (${problem})`;
    if (compilePattern(p) === undefined) return `${at}.paths: ${JSON.stringify(p)} is not a valid pattern (* and a trailing /** only)`;
  }
  return { type, locations: [...locations], actions: [...actions], paths: [...paths] };
}

/** `authorization_details` text → grants, or why not. */
export function parseAuthorizationDetails(text: string): readonly Grant[] | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'authorization_details is not valid JSON';
  }
  if (!Array.isArray(v)) return 'authorization_details must be a JSON array';
  if (v.length === 0) return 'authorization_details must hold at least one grant';
  if (v.length > MAX_REQUESTED_GRANTS) return `authorization_details has more than ${MAX_REQUESTED_GRANTS} grants`;
  const out: Grant[] = [];
  for (let i = 0; i < v.length; i++) {
    const g = parseGrant(v[i], `authorization_details[${i}]`);
    if (typeof g === 'string') return g;
    out.push(g);
  }
  return out;
}

/**
 * Checks the request parameters in a fixed order, first problem wins. `params` holds each
 * name once (a repeated name was already refused). Unknown parameters are ignored
 * (RFC 6749 §3.2); `resource` and `actor_token` are refused: this exchange never acts on a
 * second token nor for a resource other than `audience`.
 */
export function parseExchangeRequest(params: ReadonlyMap<string, string>): ExchangeRequest | ExchangeError {
  const grantType = params.get('grant_type');
  if (grantType === undefined || grantType === '') return bad('grant_type is required');
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    return exchangeError('bad_request', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`, 'unsupported_grant_type');
  }
  if (params.has('resource')) return bad('resource is not supported: name the next workload in audience');
  if (params.has('actor_token') || params.has('actor_token_type')) {
    return bad('actor_token is not supported: the caller is the TLS client');
  }
  const subjectToken = params.get('subject_token');
  if (subjectToken === undefined || subjectToken === '') return bad('subject_token is required');
  const subjectTokenType = params.get('subject_token_type');
  if (subjectTokenType === undefined || subjectTokenType === '') return bad('subject_token_type is required');
  if (!SUBJECT_TOKEN_TYPES.includes(subjectTokenType)) {
    return bad(`subject_token_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_ACCESS_TOKEN}`);
  }
  const requestedType = params.get('requested_token_type');
  if (requestedType !== undefined && requestedType !== TOKEN_TYPE_JWT) {
    return bad(`requested_token_type must be ${TOKEN_TYPE_JWT}`);
  }
  const audience = params.get('audience');
  if (audience === undefined || audience === '') return bad('audience is required');
  if (!isSpiffeId(audience)) return bad('audience must be the SPIFFE ID of the next workload');
  const details = params.get('authorization_details');
  if (details === undefined) return { subjectToken, subjectTokenType, audience };
  const requested = parseAuthorizationDetails(details);
  if (typeof requested === 'string') return bad(requested);
  return { subjectToken, subjectTokenType, audience, requested };
}
