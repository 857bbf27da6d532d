import { isPlainObject, own } from '../core/json.js';
import { decodeCanonical } from './base64url.js';
import { parseStrictJson } from './json.js';

/** A compact JWS split and decoded by the strict pre-checks; nothing here is verified yet. */
export interface ParsedJws {
  /** Protected header; only `alg`, `typ`, `kid` members can be present (values unchecked). */
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  /** ASCII bytes of `b64header.b64payload`: exactly what the signature covers. */
  readonly signingInput: Uint8Array;
  /** Decoded signature; may be empty (the `alg` check decides what that means). */
  readonly signature: Uint8Array;
}

export interface JwsParseFailure {
  readonly reason: 'malformed_token' | 'forbidden_header';
  readonly detail: string;
  /** Unverified, for audit only (set once the segments parsed). */
  readonly iss?: string;
  readonly kid?: string;
}

/** The only header parameters our token profile allows (SPEC §2). */
export const ALLOWED_HEADER_PARAMS: ReadonlySet<string> = new Set(['alg', 'typ', 'kid']);

/**
 * Registered JOSE header names (RFC 7515/7516/7797/8555/9864…): safe to name in a deny
 * detail. Any other name is attacker text and is not echoed into logs.
 */
const REGISTERED_HEADER_PARAMS: ReadonlySet<string> = new Set([
  'jku', 'jwk', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit', 'cty', 'b64', 'zip', 'enc', 'epk',
  'apu', 'apv', 'iv', 'tag', 'p2s', 'p2c', 'url', 'nonce', 'ppt', 'svt', 'iss', 'sub', 'aud',
]);

/** Longest unverified `iss`/`kid` we copy into audit fields. */
const AUDIT_FIELD_MAX = 256;

/** An unverified string for audit fields: strings only, bounded length. */
export function auditString(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  return v.length > AUDIT_FIELD_MAX ? v.slice(0, AUDIT_FIELD_MAX) : v;
}

const asciiEncoder = new TextEncoder();

/**
 * Splits a compact JWS into exactly three canonical base64url segments and parses header
 * and payload as strict JSON objects. Malformation is reported before forbidden headers,
 * so a token is `forbidden_header` only when it is otherwise well formed.
 */
export function parseCompact(token: string): ParsedJws | JwsParseFailure {
  const d1 = token.indexOf('.');
  const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
  if (d1 < 0 || d2 < 0 || token.indexOf('.', d2 + 1) >= 0) {
    return { reason: 'malformed_token', detail: 'not three dot-separated segments' };
  }
  const headerBytes = decodeCanonical(token.slice(0, d1));
  if (headerBytes === undefined) return { reason: 'malformed_token', detail: 'header is not canonical base64url' };
  const payloadBytes = decodeCanonical(token.slice(d1 + 1, d2));
  if (payloadBytes === undefined) return { reason: 'malformed_token', detail: 'payload is not canonical base64url' };
  const signature = decodeCanonical(token.slice(d2 + 1));
  if (signature === undefined) return { reason: 'malformed_token', detail: 'signature is not canonical base64url' };

  const h = parseStrictJson(headerBytes);
  if (!h.ok) return { reason: 'malformed_token', detail: `header: ${h.problem}` };
  if (!isPlainObject(h.value)) return { reason: 'malformed_token', detail: 'header is not a JSON object' };
  const p = parseStrictJson(payloadBytes);
  if (!p.ok) return { reason: 'malformed_token', detail: `payload: ${p.problem}` };
  if (!isPlainObject(p.value)) return { reason: 'malformed_token', detail: 'payload is not a JSON object' };
  const header = h.value;
  const payload = p.value;

  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADER_PARAMS.has(name)) {
      const failure: { reason: 'forbidden_header'; detail: string; iss?: string; kid?: string } = {
        reason: 'forbidden_header',
        detail: REGISTERED_HEADER_PARAMS.has(name)
          ? `header parameter "${name}" is not allowed`
          : 'an unknown header parameter is not allowed',
      };
      const iss = auditString(own(payload, 'iss'));
      const kid = auditString(own(header, 'kid'));
      if (iss !== undefined) failure.iss = iss;
      if (kid !== undefined) failure.kid = kid;
      return failure;
    }
  }

  // Segments are validated base64url, hence ASCII: UTF-8 encoding is the ASCII bytes.
  return { header, payload, signingInput: asciiEncoder.encode(token.slice(0, d2)), signature };
}

export function isParseFailure(r: ParsedJws | JwsParseFailure): r is JwsParseFailure {
  return 'reason' in r;
}
