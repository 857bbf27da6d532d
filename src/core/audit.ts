/**
 * Best-effort audit facts from a (verified) payload, for decision events. Never decides,
 * never throws, only ever returns strings: the payload may have any shape, including ones
 * validateClaims rejected.
 */

/** Actors reported in an event; a chain this long is already denied, the rest is noise. */
const MAX_AUDIT_ACTORS = 16;

function get(o: unknown, key: string): unknown {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  return Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

export interface PayloadAudit {
  sub?: string;
  actors?: string[];
  jti?: string;
  txn?: string;
}

export function auditFromPayload(payload: unknown): PayloadAudit {
  const out: PayloadAudit = {};
  try {
    const sub = get(payload, 'sub');
    if (typeof sub === 'string') out.sub = sub;
    const jti = get(payload, 'jti');
    if (typeof jti === 'string') out.jti = jti;
    const txn = get(payload, 'txn');
    if (typeof txn === 'string') out.txn = txn;
    const actors: string[] = [];
    let node = get(payload, 'act');
    while (node !== undefined && actors.length < MAX_AUDIT_ACTORS) {
      const s = get(node, 'sub');
      if (typeof s !== 'string') break;
      actors.push(s);
      node = get(node, 'act');
    }
    if (actors.length > 0) out.actors = actors;
  } catch {
    // A hostile object (e.g. a throwing proxy) yields whatever was collected so far.
  }
  return out;
}
