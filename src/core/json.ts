/**
 * Reading untrusted JSON values (claims, token headers and payloads, JWKS documents): one
 * definition of "a JSON object" and of reading its members, for every module that needs
 * them (the token stage imports them from here).
 */

/**
 * A JSON object: not null, not an array, and with a plain (or null) prototype — what the
 * strict parser (src/token/json.ts) builds for `{…}`. Anything else (a Date, a Map, a class
 * instance, an object inheriting members) is not one, so a caller handing hopguard such a
 * value gets the "not a JSON object" answer rather than a guess.
 */
export function isPlainObject(v: unknown): v is Readonly<Record<string, unknown>> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** An own member's value; undefined when absent (inherited, possibly polluted, members never count). */
export function own(o: Readonly<Record<string, unknown>>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}
