/**
 * The replay store a server runs with (SPEC §9), made once from the config and kept for the
 * server's life: a config reload hands it to every new engine (a fresh one would accept
 * replays of tokens already seen), and changing its kind or target needs a restart
 * (config/reload.ts). The server lifecycle closes it in the `engines` stage, after the
 * last Check.
 */
import { LIMITS } from '../config/defaults.js';
import { parseRedisUrl } from '../config/redis-url.js';
import type { HopguardConfig } from '../config/types.js';
import { MemoryReplayStore } from '../replay/memory.js';
import { loadRedisModule, RedisReplayStore, type OpsLog, type RedisTlsFiles } from '../replay/redis.js';
import type { ReplayObserver, ReplayStore } from '../replay/store.js';
import { BoundedReadError, fileReader } from '../lib/bounded-read.js';
import type { Clock } from './clock.js';

export interface ServerReplayStore {
  readonly store: ReplayStore;
  /** Connects in the background; resolves once the first attempt ended (never rejects). */
  start(): Promise<void>;
  /** The part of a new config that applies in place (`replay.redis.timeout`). */
  reconfigure(config: HopguardConfig): void;
  /** For the start-up log line: kind, and for Redis the redacted URL. */
  describe(): Record<string, unknown>;
}

export interface ReplayStoreDeps {
  readonly clock: Clock;
  readonly log: OpsLog;
  readonly observe: ReplayObserver;
}

/**
 * Builds the configured store. Rejects (start-up fails, naming the key) only when a
 * `replay.redis` file cannot be read; an unreachable Redis never stops start-up.
 */
export async function openReplayStore(config: HopguardConfig, deps: ReplayStoreDeps): Promise<ServerReplayStore> {
  const r = config.replay;
  if (r.store === 'memory') {
    const store = new MemoryReplayStore(r.max_entries, deps.clock.now, deps.observe);
    return { store, start: () => Promise.resolve(), reconfigure: () => {}, describe: () => ({ store: 'memory' }) };
  }
  const parsed = parseRedisUrl(r.redis.url ?? '');
  // The schema has validated it; this guards a config built without the schema.
  if (!parsed.ok) throw new Error(`replay.redis.url: ${parsed.problem}`);
  const [redis, tls] = await Promise.all([loadRedisModule(), readTlsFiles(r.redis)]);
  const store = new RedisReplayStore({
    redis,
    target: parsed.target,
    keyPrefix: r.redis.key_prefix,
    timeoutMs: r.redis.timeout,
    tls,
    log: deps.log,
    observe: deps.observe,
  });
  return {
    store,
    start: () => store.start(),
    reconfigure: (c) => store.setTimeout(c.replay.redis.timeout),
    describe: () => ({ store: 'redis', url: store.display, connected: store.connected(), timeout_ms: r.redis.timeout }),
  };
}

/**
 * The `replay.redis` PEM files, by the process's bounded reader (src/lib/bounded-read.ts): a
 * regular file, at most LIMITS.replay_tls_file_max_bytes, within the config read timeout.
 */
async function readTlsFiles(r: HopguardConfig['replay']['redis']): Promise<RedisTlsFiles | undefined> {
  const read = async (key: 'ca_file' | 'cert_file' | 'key_file'): Promise<Buffer | undefined> => {
    const file = r[key];
    if (file === undefined) return undefined;
    try {
      const bytes = await fileReader.read(file, { maxBytes: LIMITS.replay_tls_file_max_bytes, timeoutMs: LIMITS.config_read_timeout_ms });
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      const why =
        err instanceof BoundedReadError
          ? err.code === 'not_regular'
            ? 'not a regular file'
            : err.code === 'too_large'
              ? `larger than ${LIMITS.replay_tls_file_max_bytes} bytes`
              : err.message
          : 'error';
      throw new Error(`replay.redis.${key}: cannot read ${file}: ${why}`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read('ca_file'), read('cert_file'), read('key_file')]);
  return ca === undefined && cert === undefined && key === undefined ? undefined : { ca, cert, key };
}
