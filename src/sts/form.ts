/**
 * `application/x-www-form-urlencoded` bodies of the token endpoint, strictly: every name
 * at most once (RFC 6749 §3.2: a repeated parameter is an invalid request, never "the last
 * one wins"), `+` as space, percent-escapes that are valid and decode to valid UTF-8.
 * URLSearchParams is deliberately not used: it keeps repeats and passes bad escapes through.
 */

export type FormResult = { readonly ok: true; readonly params: ReadonlyMap<string, string> } | { readonly ok: false; readonly problem: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An escape, a `+`, or a raw non-ASCII byte (never valid form encoding). */
const NEEDS_DECODING = /[%+\u0080-\uffff]/;

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** One name or value: `+` → space, `%XX` → byte; undefined when an escape or the UTF-8 is bad. */
function decode(s: string): string | undefined {
  if (!NEEDS_DECODING.test(s)) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) bytes.push(0x20);
    else if (c === 0x25) {
      const hi = i + 2 < s.length ? hex(s.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < s.length ? hex(s.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) return undefined;
      bytes.push(hi * 16 + lo);
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else return undefined; // raw non-ASCII is not form encoding
  }
  try {
    return utf8.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

export function parseForm(body: string): FormResult {
  const params = new Map<string, string>();
  if (body === '') return { ok: true, params };
  for (const pair of body.split('&')) {
    if (pair === '') continue; // `a=1&&b=2`: an empty pair carries nothing
    const eq = pair.indexOf('=');
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = decode(eq === -1 ? '' : pair.slice(eq + 1));
    if (name === undefined || value === undefined) return { ok: false, problem: 'the form body has an invalid percent-escape or is not UTF-8' };
    if (params.has(name)) return { ok: false, problem: `parameter ${JSON.stringify(name.slice(0, 64))} appears more than once` };
    params.set(name, value);
  }
  return { ok: true, params };
}

/** `application/x-www-form-urlencoded`, parameters (charset) allowed, case-insensitive. */
export function isFormContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const type = header.split(';', 1)[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return false;
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(header)?.[1]?.toLowerCase();
  return charset === undefined || charset === 'utf-8' || charset === 'utf8';
}
