/**
 * The audit trail's start-up part for a running server: the checkpoint key
 * (`audit.signing_key_file`), loaded before any listener opens — a missing, unreadable,
 * invalid or public-only key stops start-up, naming the key — then watched like a
 * `jwks_file`: a valid new version signs the next checkpoint, an invalid one is rejected
 * (logged, counted) and the previous key keeps signing.
 */
import { loadSigningKey } from '../audit/checkpoint.js';
import { SigningKeyFile, type KeyReload } from '../audit/key-file.js';
import { ConfigIssuesError } from '../config/issues.js';
import type { AuditChainConfig } from '../config/types.js';
import type { Timers } from '../lib/timers.js';
import type { Logger } from '../telemetry/log.js';
import type { CommonMetrics } from '../telemetry/metrics.js';

export const SIGNING_KEY_KEY = 'audit.signing_key_file';

export interface AuditKeyHooks {
  readonly logger: Logger;
  readonly metrics?: CommonMetrics;
  /** Timers for the file watch's periodic re-check (tests). */
  readonly timers?: Timers | undefined;
  /** Each new version of the key file, after metrics and logs saw it (tests). */
  readonly onReload?: (r: KeyReload) => void;
}

/**
 * Loads and watches `audit.signing_key_file`; undefined when none is configured. Throws
 * ConfigIssuesError naming the key when it cannot be used. The caller closes it.
 */
export async function openSigningKey(config: { readonly audit: AuditChainConfig }, hooks: AuditKeyHooks): Promise<SigningKeyFile | undefined> {
  const file = config.audit.signing_key_file;
  if (file === undefined) return undefined;
  const { logger, metrics } = hooks;
  const key = new SigningKeyFile({
    file,
    timers: hooks.timers,
    onWatchError: (err) => logger.warn('cannot watch the checkpoint key directory; re-checking periodically', { key: SIGNING_KEY_KEY, err }),
    onReload: (r) => {
      metrics?.auditKeyReload(r.result);
      if (r.result === 'applied') logger.info('checkpoint signing key reloaded', { key: SIGNING_KEY_KEY, kid: r.kid });
      else logger.error('new checkpoint signing key rejected; the previous key keeps signing', { key: SIGNING_KEY_KEY, error: r.error.message });
      hooks.onReload?.(r);
    },
  });
  try {
    const signer = await key.load();
    logger.info('audit checkpoints signed', { key: SIGNING_KEY_KEY, kid: signer.kid, alg: signer.alg, interval_ms: config.audit.checkpoint_interval });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ConfigIssuesError([{ key: SIGNING_KEY_KEY, message }]);
  }
  key.watch();
  return key;
}

/**
 * What `validate` (and `validate --sts`) says of `audit.signing_key_file` offline: the key
 * loads as start-up loads it — a private ES256/EdDSA JWK whose private part matches its
 * public part — or one problem naming the key.
 */
export async function checkSigningKeyFile(file: string | undefined): Promise<{ key: string; message: string }[]> {
  if (file === undefined) return [];
  try {
    await loadSigningKey(file);
    return [];
  } catch (err) {
    return [{ key: SIGNING_KEY_KEY, message: err instanceof Error ? err.message : String(err) }];
  }
}
