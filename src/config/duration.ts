/**
 * Config durations: an integer amount and one unit, `500ms`, `10s`, `5m`, `1h`, `0s`.
 * Deliberately small: no fractions, signs, spaces, compound forms or bare numbers, so a
 * typo can never silently mean something else (is `10` seconds or milliseconds?).
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
type Unit = keyof typeof UNIT_MS;

// No leading zeros except a lone `0`; at most 16 digits keeps Number() exact before the
// safe-integer check below.
const DURATION_RE = /^(0|[1-9][0-9]{0,15})(ms|s|m|h)$/;

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(s: string): number | undefined {
  if (typeof s !== 'string') return undefined;
  const m = DURATION_RE.exec(s);
  if (m === null) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2] as Unit];
  return Number.isSafeInteger(ms) ? ms : undefined;
}
