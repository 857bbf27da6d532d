/**
 * Checks of single config values, as pure functions: the schema (schema.ts) applies them,
 * and the program reuses them where it handles the same values (listen addresses).
 */
import { isIPv6 } from 'node:net';
import { canonicalProblem } from '../core/path.js';

const HOSTNAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const PORT_RE = /^(?:0|[1-9][0-9]{0,4})$/;

/**
 * Splits a validated `host:port` (IPv6 bracketed). The returned host has no brackets, ready
 * for `net.Server.listen`; grpc-js takes the original string as is.
 */
export function splitHostPort(addr: string): { host: string; port: number } | undefined {
  return parseHostPort(addr).value;
}

/** A `host:port` and its parts, or why it is not one (the message names the problem). */
export function parseHostPort(addr: string): { value?: { host: string; port: number }; problem?: string } {
  let host: string;
  let portText: string;
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0 || addr[end + 1] !== ':') return { problem: 'expected [ipv6]:port' };
    host = addr.slice(1, end);
    portText = addr.slice(end + 2);
    if (!isIPv6(host)) return { problem: `${JSON.stringify(host)} is not an IPv6 address` };
  } else {
    const colon = addr.lastIndexOf(':');
    if (colon < 0) return { problem: 'missing :port' };
    host = addr.slice(0, colon);
    portText = addr.slice(colon + 1);
    if (host === '') return { problem: 'missing host' };
    if (host.includes(':')) return { problem: 'IPv6 hosts must be bracketed, as [::1]:9191' };
    if (host.length > 253 || !HOSTNAME_RE.test(host)) {
      return { problem: `${JSON.stringify(host)} is not a host name or IP address` };
    }
  }
  if (!PORT_RE.test(portText) || Number(portText) > 65535) {
    return { problem: `port must be an integer 0..65535, got ${JSON.stringify(portText)}` };
  }
  return { value: { host, port: Number(portText) } };
}

// RFC 9110 token characters.
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Z]+$/;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
// Media-type restricted-name characters, optional `application/` prefix.
const TYP_RE = /^(?:application\/)?[A-Za-z0-9!#$&^_.+-]+$/i;
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const NO_SPACE_RE = /^[^\s\x00-\x1f\x7f]+$/;

/** An HTTP header name (RFC 9110 token). */
export function isHeaderName(s: string): boolean {
  return HEADER_NAME_RE.test(s);
}

/** An upper-case HTTP method (RFC 9110 token, no lower-case letters). */
export function isMethodName(s: string): boolean {
  return METHOD_RE.test(s);
}

/** A SPIFFE trust domain name (lowercase letters, digits, `.`, `-`, `_`; at most 255). */
export function isTrustDomain(s: string): boolean {
  return s.length <= 255 && TRUST_DOMAIN_RE.test(s);
}

/** A media type name such as `delegation+jwt`, optionally `application/`-prefixed. */
export function isMediaTypeName(s: string): boolean {
  return TYP_RE.test(s);
}

// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL_RE = /[\x00-\x1f\x7f]/;

/** Contains a C0 control character or DEL. */
export function hasControlCharacter(s: string): boolean {
  return CONTROL_RE.test(s);
}

/** Non-empty, without whitespace or control characters. */
export function hasNoSpace(s: string): boolean {
  return NO_SPACE_RE.test(s);
}

/**
 * Why an exempt path is unacceptable, or undefined. Exempt matching is exact and comes
 * before the canonical-path check of requests (SPEC §3), so an entry that is not canonical
 * would let through exactly a spelling that a backend may decode or normalize into another
 * route (`/health%7Az` is `/healthzz` to most). Entries are therefore held to the very rule
 * request paths are held to (core/path.ts canonicalProblem).
 */
export function exemptPathProblem(p: string): string | undefined {
  // The common mistakes first, with their own words.
  if (!p.startsWith('/')) return 'must start with /';
  if (p.includes('?')) return 'must not contain a query (?): the query is never matched';
  if (p.includes('#')) return 'must not contain #';
  if (!NO_SPACE_RE.test(p)) return 'must not contain spaces or control characters';
  if (p.includes('*')) return 'exempt paths match exactly; wildcards are not supported';
  const problem = canonicalProblem(p);
  if (problem !== undefined) return `must be a canonical path, as request paths must be (${problem})`;
  return undefined;
}

/** Leading or trailing whitespace (values are compared byte for byte). */
export function surroundingSpace(s: string): boolean {
  return s.trim() !== s;
}

/** Why `issuer` cannot be used for discovery, or undefined. */
export function discoveryIssuerProblem(issuer: string, allowInsecureHttp: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    return 'with discovery: true the issuer must be an https URL';
  }
  if (u.protocol === 'http:' && !allowInsecureHttp) {
    return 'with discovery: true the issuer must be https (set allow_insecure_http: true to allow http, for loopback or dev only)';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'with discovery: true the issuer must be an https URL';
  if (u.username !== '' || u.password !== '') return 'must not contain credentials (user:password@)';
  if (u.search !== '' || u.hash !== '') return 'with discovery: true the issuer must not have a query or #fragment';
  return undefined;
}

/** True for a host that only this machine can reach (the STS's plain-HTTP listener). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(host);
}
