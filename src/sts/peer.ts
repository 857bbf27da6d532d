/**
 * Who is calling the token endpoint (SPEC §7 "Who is calling"): the single URI SAN of the
 * verified TLS client certificate, a SPIFFE ID in `trusted_domains`; or, behind a mesh
 * proxy on loopback, the `URI=` (and `Hash=`) of its `x-forwarded-client-cert`.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { isSpiffeId, trustDomainOf } from '../core/chain.js';
import type { Caller } from '../core/exchange.js';

export type PeerResult = { readonly ok: true; readonly caller: Caller } | { readonly ok: false; readonly problem: string };

/**
 * The entries of Node's `subjectAltName` text (`URI:spiffe://a/b, DNS:x`). Node quotes an
 * entry (JSON) when its value holds a separator or other special characters (the
 * CVE-2021-44532 fix), so a quoted entry is parsed as JSON and can never split into two.
 */
export function sanEntries(text: string): Array<{ type: string; value: string }> | undefined {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) return undefined;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // JSON string: find its closing quote (skipping escapes).
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        return undefined;
      }
      end = j + 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (end >= text.length) break;
    if (text.slice(end, end + 2) !== ', ') return undefined;
    i = end + 2;
  }
  return out;
}

function callerOf(uris: readonly string[], trustedDomains: readonly string[], what: string): PeerResult | string {
  if (uris.length === 0) return `${what} has no URI SAN`;
  if (uris.length > 1) return `${what} has more than one URI SAN`;
  const id = uris[0] as string;
  if (!isSpiffeId(id)) return `${what}'s URI SAN is not a SPIFFE ID`;
  const td = trustDomainOf(id) as string;
  if (!trustedDomains.includes(td)) return `${what}'s trust domain is not in delegation.trusted_domains`;
  return { ok: true, caller: { id } };
}

/** RFC 8705 `x5t#S256` of a DER certificate. */
export function thumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** The caller of a TLS connection whose client certificate OpenSSL verified against client_ca_file. */
export function callerFromCertificate(der: Uint8Array | undefined, trustedDomains: readonly string[]): PeerResult {
  if (der === undefined || der.length === 0) return { ok: false, problem: 'no client certificate' };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    return { ok: false, problem: 'the client certificate cannot be parsed' };
  }
  const entries = sanEntries(cert.subjectAltName ?? '');
  if (entries === undefined) return { ok: false, problem: 'the client certificate SAN cannot be read' };
  const r = callerOf(
    entries.filter((e) => e.type === 'URI').map((e) => e.value),
    trustedDomains,
    'the client certificate',
  );
  if (typeof r === 'string') return { ok: false, problem: r };
  return r.ok ? { ok: true, caller: { id: r.caller.id, x5t: thumbprint(cert.raw) } } : r;
}

/**
 * The elements of an `x-forwarded-client-cert` value: `,`-separated elements (one per
 * proxy), each `;`-separated `Key=value` pairs, values optionally double-quoted (then `,`
 * `;` `=` may appear inside, `\"` escapes a quote). Keys compare case-insensitively.
 */
export function parseXfcc(header: string): Array<Array<[string, string]>> | undefined {
  const elements: Array<Array<[string, string]>> = [];
  let pairs: Array<[string, string]> = [];
  let i = 0;
  const n = header.length;
  while (i < n) {
    const eq = header.indexOf('=', i);
    if (eq === -1) return undefined;
    const key = header.slice(i, eq).trim().toLowerCase();
    if (key === '' || /[,;"]/.test(key)) return undefined;
    let j = eq + 1;
    let value = '';
    if (header[j] === '"') {
      j++;
      while (j < n && header[j] !== '"') {
        if (header[j] === '\\' && j + 1 < n) j++;
        value += header[j];
        j++;
      }
      if (j >= n) return undefined;
      j++; // closing quote
    } else {
      while (j < n && header[j] !== ';' && header[j] !== ',') value += header[j++];
    }
    pairs.push([key, value]);
    if (j >= n) break;
    if (header[j] === ';') i = j + 1;
    else if (header[j] === ',') {
      elements.push(pairs);
      pairs = [];
      i = j + 1;
    } else return undefined;
  }
  if (pairs.length > 0) elements.push(pairs);
  return elements;
}

/**
 * The caller from the mesh proxy's `x-forwarded-client-cert`: exactly one element (the
 * proxy in front of us sets it; several mean a chain of proxies we cannot attribute), one
 * `URI=`, and one `Hash=` (hex SHA-256 of the client certificate's DER) when binding.
 */
export function callerFromXfcc(header: string | undefined, trustedDomains: readonly string[], needHash: boolean): PeerResult {
  if (header === undefined || header === '') return { ok: false, problem: 'no x-forwarded-client-cert' };
  const elements = parseXfcc(header);
  if (elements === undefined) return { ok: false, problem: 'x-forwarded-client-cert is malformed' };
  if (elements.length !== 1) return { ok: false, problem: 'x-forwarded-client-cert must hold exactly one element' };
  const pairs = elements[0] as Array<[string, string]>;
  const uris = pairs.filter(([k]) => k === 'uri').map(([, v]) => v);
  const hashes = pairs.filter(([k]) => k === 'hash').map(([, v]) => v);
  const r = callerOf(uris, trustedDomains, 'x-forwarded-client-cert');
  if (typeof r === 'string') return { ok: false, problem: r };
  if (!r.ok) return r;
  if (hashes.length > 1) return { ok: false, problem: 'x-forwarded-client-cert has more than one Hash' };
  const hash = hashes[0];
  if (hash === undefined) {
    return needHash ? { ok: false, problem: 'x-forwarded-client-cert has no Hash to bind the token to' } : r;
  }
  if (!/^[0-9a-fA-F]{64}$/.test(hash)) return { ok: false, problem: 'x-forwarded-client-cert Hash is not a hex SHA-256' };
  return { ok: true, caller: { id: r.caller.id, x5t: Buffer.from(hash, 'hex').toString('base64url') } };
}
