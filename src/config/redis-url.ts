/**
 * `replay.redis.url`: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
 * (the IANA `redis`/`rediss` schemes). Parsed here, once, so the config can name what is
 * wrong and the store gets plain parts. The password never appears in an error message or
 * in `display`, the only form of the URL that may be logged.
 */
export interface RedisTarget {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly database: number;
  /** The URL with any password replaced by `***`. */
  readonly display: string;
}

export const DEFAULT_REDIS_PORT = 6379;

export type RedisUrlResult = { readonly ok: true; readonly target: RedisTarget } | { readonly ok: false; readonly problem: string };

export function parseRedisUrl(url: string): RedisUrlResult {
  const bad = (problem: string): RedisUrlResult => ({ ok: false, problem });
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not echoed: the text may hold a password.
    return bad('must be a URL redis://[user[:password]@]host[:port][/db] (or rediss:// for TLS)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return bad('must start with redis:// or rediss:// (TLS)');
  if (u.hostname === '') return bad('must name a host');
  if (u.search !== '' || u.hash !== '') return bad('must not have a ?query or #fragment (nothing there would be applied)');
  const path = u.pathname;
  let database = 0;
  if (path !== '' && path !== '/') {
    const m = /^\/(\d{1,9})$/.exec(path);
    if (m === null) return bad('path must be a database number, like /0');
    database = Number(m[1]);
  }
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = u.username === '' ? undefined : decodeURIComponent(u.username);
    password = u.password === '' ? undefined : decodeURIComponent(u.password);
  } catch {
    return bad('user or password has invalid percent-encoding');
  }
  const port = u.port === '' ? DEFAULT_REDIS_PORT : Number(u.port);
  // WHATWG URL keeps IPv6 literals bracketed; the socket wants them bare.
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const auth = username === undefined && password === undefined ? '' : `${u.username}${password === undefined ? '' : ':***'}@`;
  const display = `${u.protocol}//${auth}${u.hostname}:${port}/${database}`;
  return { ok: true, target: { tls: u.protocol === 'rediss:', host, port, username, password, database, display } };
}
