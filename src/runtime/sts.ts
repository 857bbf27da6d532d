/**
 * The `hopguard sts` composition root: signing keys, subject-issuer key sources, the token
 * stage, the exchange, the token listener, the admin listener, events and metrics, wired
 * from a validated config and handed to one ServerLifecycle, which owns their stop (drain,
 * grace, shutdown) as it does serve's.
 */
import { fileReader } from '../lib/bounded-read.js';
import path from 'node:path';

import { stsSelfIssuerPolicy, subjectIssuerPolicy, toStsPolicy } from '../config/sts-policy.js';
import type { StsConfig } from '../config/types.js';
import { PathWatcher } from '../lib/path-watcher.js';
import type { Timers } from '../lib/timers.js';
import { HealthState } from '../envoy/health.js';
import { buildExchangeEvent, ExchangeEvents, StsMetrics } from '../telemetry/exchange.js';
import type { EventSink } from '../telemetry/sink.js';
import { Logger } from '../telemetry/log.js';
import { Readiness } from '../telemetry/readiness.js';
import { createAuditLog, eventFaultLogger, keyRefreshObserver, sinksFromConfig } from '../telemetry/setup.js';
import { KeyDirectory } from '../token/signing-keys.js';
import type { IssuerRuntime, KeySource } from '../token/types.js';
import { TokenVerifier } from '../token/verifier.js';
import { authorizationServerMetadata, startTokenServer, type TlsMaterial } from '../sts/server.js';
import { VERSION } from '../version.js';
import { systemClock, type Clock } from './clock.js';
import { Exchanger } from './exchanger.js';
import { checkJwksFiles, keySourceFor } from './keys.js';
import { ServerLifecycle } from './lifecycle.js';
import { checkSigningKeyFile, openSigningKey } from './audit.js';
import { runUntilSignal } from './signals.js';
import { openAdmin } from './admin.js';

export interface StsOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Replaces the sinks of `events.sinks` (tests). */
  readonly sinks?: readonly EventSink[];
  /** Key sources of subject issuers (tests); default: as configured. */
  readonly subjectKeys?: (issuer: StsConfig['subject_issuers'][number]) => KeySource;
  /** Timers for key-directory polling, TLS-file watching and JWKS refresh (tests fire them). */
  readonly timers?: Timers;
  /** Fallback re-check period of the key directory and TLS files (default 30 s). */
  readonly pollMs?: number;
  /** Random ids for jti/txn (tests). */
  readonly newId?: () => string;
  /** The audit chain's start event with the first event, not at start-up (`hopguard dev`). */
  readonly chainStartsAtFirstEvent?: boolean;
}

export interface RunningSts {
  readonly port: number;
  readonly protocol: 'https' | 'http';
  readonly adminPort: number;
  readonly readiness: Readiness;
  readonly metrics: StsMetrics;
  /** Exchange events not yet handed to the sinks are written by `events.drain()`. */
  readonly events: ExchangeEvents;
  readonly keys: KeyDirectory;
  readonly config: StsConfig;
  /** Re-reads the TLS files now (the watcher does this on change); resolves to whether new material applies. */
  reloadTls(): Promise<'applied' | 'unchanged' | 'rejected'>;
  /** Re-reads the key directory now. */
  reloadKeys(): Promise<void>;
  /** Not ready at once; keep answering for `drainMs`; then finish requests within `graceMs` and flush events. */
  stop(graceMs?: number, drainMs?: number): Promise<void>;
  /** stop() with `shutdown.grace` and `shutdown.drain` (SIGTERM). */
  shutdown(): Promise<void>;
  /** Ends a drain window early (a second signal). */
  endDrain(): void;
}

/** Least time the final event flush gets. */
const MIN_FLUSH_MS = 500;

/** A certificate, key or CA bundle is a few KiB; a CA bundle of a big mesh, some hundreds. */
const TLS_FILE_MAX_BYTES = 1024 * 1024;
const TLS_FILE_READ_TIMEOUT_MS = 5_000;

/** Why a file could not be read, in the OS's words (ENOENT…) or the bounded reader's. */
function readProblem(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The three TLS files, by the bounded reader (regular files only, bounded size and time). */
async function readTls(c: NonNullable<StsConfig['tls']>): Promise<TlsMaterial> {
  const read = async (f: string): Promise<string> =>
    Buffer.from(await fileReader.read(f, { maxBytes: TLS_FILE_MAX_BYTES, timeoutMs: TLS_FILE_READ_TIMEOUT_MS })).toString('utf8');
  const [cert, key, ca] = await Promise.all([read(c.cert_file), read(c.key_file), read(c.client_ca_file)]);
  return { cert, key, ca };
}

export async function startSts(config: StsConfig, opts: StsOptions = {}): Promise<RunningSts> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? new Logger(config.log.level);
  const subjectNames = config.subject_issuers.map((i) => i.issuer);

  // ---- signing keys -------------------------------------------------------------------
  let metrics: StsMetrics | undefined;
  const keys = new KeyDirectory({
    dir: config.signing.keys_dir,
    publishAheadMs: config.signing.publish_ahead,
    now: clock.now,
    timers: opts.timers,
    pollMs: opts.pollMs,
    onLoad: (r) => {
      metrics?.signingKeyLoad(r.ok ? 'ok' : 'invalid');
      if (r.ok) logger.info('signing keys loaded', { kids: r.kids, active: keys.active()?.kid ?? null });
      else logger.error('signing key directory rejected; the previous keys stay', { code: r.code, error: r.message, kept: r.keptKids });
      readiness?.update();
    },
  });
  metrics = new StsMetrics({
    version: VERSION,
    issuers: subjectNames,
    signingKeys: () => {
      const active = keys.active();
      return {
        active: active === undefined ? 0 : 1,
        published: keys.keys().length,
        ...(active !== undefined ? { activeCreatedS: active.createdAtMs / 1000 } : {}),
      };
    },
  });
  const m = metrics;
  // The checkpoint key before anything is emitted or listens: one that cannot be used stops
  // start-up naming audit.signing_key_file (ConfigIssuesError), as in serve.
  const auditKey = await openSigningKey(config, { logger, metrics: m, timers: opts.timers });
  const sinks = opts.sinks ?? sinksFromConfig(config, m, logger);
  // Exchange events are links of the process's audit chain (SPEC §8), as serve's decisions.
  const log = createAuditLog({
    sinks,
    workload: config.issuer,
    now: clock.now,
    signer: auditKey === undefined ? undefined : () => auditKey.current(),
    checkpointIntervalMs: config.audit.checkpoint_interval,
    timers: opts.timers,
    metrics: m,
    onError: eventFaultLogger(logger, 'exchange event fault'),
    startNow: opts.chainStartsAtFirstEvent !== true,
  });
  const events = new ExchangeEvents(log);

  // ---- the token stage: our own keys (hop) and each subject issuer's (edge) -----------
  const subjectSources = config.subject_issuers.map((i) => {
    const onRefresh = keyRefreshObserver({ issuer: i.issuer, metrics: m, logger, nowMs: clock.now });
    const source = opts.subjectKeys?.(i) ?? keySourceFor(i, clock, { onRefresh, timers: opts.timers });
    return { config: i, source };
  });
  const runtimes: IssuerRuntime[] = [
    { policy: stsSelfIssuerPolicy(config), keys: keys.keySource() },
    ...subjectSources.map(({ config: i, source }) => ({ policy: subjectIssuerPolicy(i), keys: source, typs: i.typ })),
  ];
  const verifier = new TokenVerifier({ issuers: runtimes, maxBytes: config.token.max_bytes });
  const exchanger = new Exchanger({
    policy: toStsPolicy(config),
    verifier,
    signer: keys,
    now: clock.now,
    ...(opts.newId !== undefined ? { newId: opts.newId } : {}),
  });

  // Ready: keys can sign and we are not draining. Subject issuers' keys do not count: an IdP
  // that is down fails edge exchanges (503) but must not take hop exchanges with it.
  const health = new HealthState();
  let readiness: Readiness | undefined;
  readiness = new Readiness({ health, issuers: () => [{ issuer: 'signing_keys', ready: () => keys.ready() }] });
  const ready = readiness;

  const lifecycle = new ServerLifecycle({
    onDrainStart: () => ready.startDraining(),
    onDrainWindow: (drainMs) => logger.info('draining: not ready, still answering exchanges', { drain_ms: drainMs }),
    onCloseError: (part, err) => logger.error('shutdown fault', { part, err }),
    onStopped: () => logger.info('stopped', { events_dropped: events.dropped() }),
  });
  if (auditKey !== undefined) lifecycle.add('checkpoint key watcher', 'intake', () => auditKey.close());
  lifecycle.add('signing keys', 'engines', () => keys.close());
  lifecycle.add('subject issuer keys', 'engines', () => {
    for (const { source } of subjectSources) source.close();
  });
  lifecycle.add('readiness', 'engines', () => ready.close());

  // Keys first: the first request must find them (and readiness reports them at once).
  await keys.start();
  if (!keys.ready()) logger.warn('no usable signing key: not ready, /token answers 503', { keys_dir: config.signing.keys_dir });

  const admin = await openAdmin(lifecycle, { address: config.listen.admin, metrics: m, readiness: ready, logger });

  let tlsText: string | undefined;
  let tls: TlsMaterial | undefined;
  if (config.tls !== undefined) {
    const files = config.tls;
    tls = await lifecycle.open('tls files', 'intake', () => readTls(files), () => undefined).catch((err: unknown) => {
      throw new Error(`tls: cannot read the certificate files: ${readProblem(err)}`, { cause: err });
    });
    tlsText = JSON.stringify(tls);
  }

  const metadata = Object.freeze(authorizationServerMetadata(config.issuer, config.delegation.grant_type, config.token.bind_certificate));
  const server = await lifecycle.open(
    'token listener',
    'listeners',
    () =>
      startTokenServer({
        address: config.listen.https ?? (config.listen.http as string),
        ...(tls !== undefined ? { tls } : {}),
        trustForwardedClientCert: config.trust_forwarded_client_cert,
        trustedDomains: config.delegation.trusted_domains,
        bindCertificate: config.token.bind_certificate,
        issuer: config.issuer,
        exchange: (params, caller) => exchanger.exchange(params, caller),
        metadata: () => metadata,
        jwks: () => keys.jwksJson(),
        onExchange: (facts, requestId, latencyNs) => {
          const latencyUs = Number(latencyNs) / 1000;
          m.exchange(facts.kind ?? 'unknown', facts.error === undefined, facts.reason, latencyUs / 1e6);
          events.emit(buildExchangeEvent(facts, { tsMs: clock.now(), requestId, latencyUs }));
        },
        onError: (err) => logger.error('token endpoint fault', { err }),
      }),
    // Requests in flight finish within the grace; then every connection is closed.
    (s, b) => s.close(b.remainingMs()),
  );
  // Once no request is left: the last events, then the final checkpoint closes the chain.
  lifecycle.add('audit chain', 'chain', () => events.finish());
  // Events get what is left of the grace, and a floor so a slow last request cannot leave
  // the flush no time at all.
  lifecycle.add('exchange events', 'events', (b) => events.close(Math.max(MIN_FLUSH_MS, b.remainingMs())));

  // ---- certificate reload: new files apply to new connections, open ones keep theirs ---
  const reloadTls = async (): Promise<'applied' | 'unchanged' | 'rejected'> => {
    if (config.tls === undefined) return 'unchanged';
    let next: TlsMaterial;
    try {
      next = await readTls(config.tls);
    } catch (err) {
      logger.error('tls files unreadable; the previous certificate stays', { err: readProblem(err) });
      return 'rejected';
    }
    const text = JSON.stringify(next);
    if (text === tlsText) return 'unchanged';
    try {
      server.setTls(next); // throws on a key that does not match, unparsable PEM…
    } catch (err) {
      logger.error('new tls files rejected; the previous certificate stays', { err });
      tlsText = text; // report a bad version once, not once per poll
      return 'rejected';
    }
    tlsText = text;
    logger.info('tls certificate reloaded', {});
    return 'applied';
  };
  if (config.tls !== undefined) {
    const dirs = new Set([config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file].map((f) => path.dirname(f)));
    for (const dir of dirs) {
      // A name inside the directory: PathWatcher watches the directory holding it.
      const w = new PathWatcher(path.join(dir, '..data'), {
        onChange: () => void reloadTls(),
        pollMs: opts.pollMs ?? 30_000,
        ...(opts.timers !== undefined ? { timers: opts.timers } : {}),
      });
      w.start();
      lifecycle.add('tls watcher', 'intake', () => w.close());
    }
  }

  ready.setConfigLoaded(true);
  // Subject issuers' keys load after the port is open (an IdP down must not stop start-up).
  await Promise.all(subjectSources.map(({ source }) => source.start()));
  ready.update();
  logger.info('sts serving', {
    [server.protocol]: server.port,
    admin: admin.port,
    issuer: config.issuer,
    subject_issuers: subjectNames,
    signing_key: keys.active()?.kid ?? null,
    ready: ready.status().ready,
  });

  const stop = (graceMs = config.shutdown.grace, drainMs = 0): Promise<void> => lifecycle.stop(graceMs, drainMs);
  return {
    port: server.port,
    protocol: server.protocol,
    adminPort: admin.port,
    readiness: ready,
    metrics: m,
    events,
    keys,
    config,
    reloadTls,
    reloadKeys: () => keys.check(),
    stop,
    shutdown: () => stop(config.shutdown.grace, config.shutdown.drain),
    endDrain: () => lifecycle.endDrain(),
  };
}

/** `hopguard sts` until SIGTERM/SIGINT (drain and grace as serve). Rejects only when start-up fails. */
export async function stsUntilStopped(config: StsConfig, opts: StsOptions & { readonly logger: Logger }): Promise<void> {
  await runUntilSignal(opts.logger, config.shutdown, async () => {
    const running = await startSts(config, opts);
    return {
      shutdown: () => running.shutdown(),
      stopNow: () => running.stop(config.shutdown.grace, 0),
      endDrain: () => running.endDrain(),
    };
  });
}

/**
 * What `hopguard validate --sts` checks offline: the signing keys load as at start-up (a key
 * may sign), the TLS files can be read, each subject issuer's jwks_file is an acceptable JWKS,
 * and audit.signing_key_file is a usable checkpoint key.
 */
export async function checkStsFiles(
  c: StsConfig,
): Promise<{ problems: { key: string; message: string }[]; keys: number; signingKid: string | undefined }> {
  const problems: { key: string; message: string }[] = [];
  let keyProblem: string | undefined;
  const keys = new KeyDirectory({
    dir: c.signing.keys_dir,
    publishAheadMs: c.signing.publish_ahead,
    now: Date.now,
    watch: false,
    onLoad: (r) => {
      if (!r.ok) keyProblem = r.message;
    },
  });
  await keys.start();
  keys.close();
  if (keyProblem !== undefined) problems.push({ key: 'signing.keys_dir', message: keyProblem });
  for (const k of ['cert_file', 'key_file', 'client_ca_file'] as const) {
    const f = c.tls?.[k];
    if (f === undefined) continue;
    try {
      await fileReader.read(f, { maxBytes: TLS_FILE_MAX_BYTES, timeoutMs: TLS_FILE_READ_TIMEOUT_MS });
    } catch (err) {
      problems.push({ key: `tls.${k}`, message: `cannot read ${f}: ${readProblem(err)}` });
    }
  }
  problems.push(...(await checkJwksFiles(c.subject_issuers, 'subject_issuers')));
  problems.push(...(await checkSigningKeyFile(c.audit.signing_key_file)));
  return { problems, keys: keys.keys().length, signingKid: keys.active()?.kid };
}
