import { startAdminServer, type AdminServer, type MetricsSource } from '../telemetry/admin.js';
import type { Logger } from '../telemetry/log.js';
import type { Readiness } from '../telemetry/readiness.js';
import type { ServerLifecycle } from './lifecycle.js';

/**
 * Opens a server's admin listener (/metrics /healthz /readyz) on its lifecycle, in the
 * `admin` stage: it stops last, so probes and scrapes answer until the very end. A bad
 * address fails start-up and closes what was opened before it.
 */
export function openAdmin(
  lifecycle: ServerLifecycle,
  opts: { readonly address: string; readonly metrics: MetricsSource; readonly readiness: Readiness; readonly logger: Logger },
): Promise<AdminServer> {
  return lifecycle.open(
    'admin listener',
    'admin',
    () =>
      startAdminServer({
        address: opts.address,
        metrics: opts.metrics,
        readiness: opts.readiness,
        onError: (err) => opts.logger.error('admin server error', { err }),
      }),
    (a) => a.close(),
  );
}
