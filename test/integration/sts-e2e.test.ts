/**
 * End to end, both directions: a user's access token from an IdP, the gateway's edge
 * exchange at a real STS over real mTLS, the gateway → orders hop judged by orders' real
 * sidecar (serve, real gRPC, keys by discovery from the STS over the mesh PKI via
 * issuers[].ca_file), orders' hop exchange, the orders → ledger hop judged by the ledger's
 * sidecar. What the STS issues is allowed where it was meant to be used and nowhere else;
 * what it refuses is never issued. Then a signing-key rotation with no unknown_key at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { parseConfig } from '../../src/config/load.js';
import { Logger } from '../../src/telemetry/log.js';
import type { RefreshResult } from '../../src/token/key-source-results.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { CaptureSink, startJwksServer, type JwksServer } from '../helpers/server.js';
import {
  claimsOf,
  exchange,
  freePort,
  GATEWAY,
  headerOf,
  idpYaml,
  LEDGER,
  makeIdp,
  makeMeshPki,
  ORDERS,
  startTestSts,
  stsYaml,
  TD,
  writeSigningKey,
  type Idp,
  type MeshPki,
  type TestSts,
} from '../helpers/sts.js';
import { jwksOf } from '../helpers/tokens.js';
import { ManualTimers } from '../helpers/lifecycle.js';
import path from 'node:path';
import { rmSync } from 'node:fs';

const NOW_S = 1_800_000_000;
const clock = { ms: NOW_S * 1000 };
const MIN = 60_000;

let pki: MeshPki;
let idp: Idp;
let idpJwks: JwksServer;
let sts: TestSts;
let issuer: string;
let keysDir: string;

interface Sidecar {
  readonly running: RunningServer;
  readonly client: EnvoyLikeClient;
  readonly sink: CaptureSink;
  readonly timers: ManualTimers;
  readonly refreshes: RefreshResult[];
}
let orders: Sidecar;
let ledger: Sidecar;

async function sidecar(workload: string): Promise<Sidecar> {
  const parsed = parseConfig(
    `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
workload: { id: "${workload}" }
issuers:
  - issuer: ${issuer}
    discovery: true
    ca_file: ${pki.caFile}
    algorithms: [ES256]
    max_lifetime: 60s
    refresh_interval: 5m
delegation: { trusted_domains: [${TD}] }
`,
    { env: {} },
  );
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const sink = new CaptureSink();
  const timers = new ManualTimers();
  const refreshes: RefreshResult[] = [];
  const running = await startServer(parsed.config, {
    clock: { now: () => clock.ms },
    sinks: [sink],
    timers,
    logger: new Logger('error', { write: () => undefined }),
    onJwksRefresh: (_i, r) => void refreshes.push(r),
  });
  sink.pending = () => running.events.drain();
  return { running, client: officialClient(`127.0.0.1:${running.grpcPort}`), sink, timers, refreshes };
}

beforeAll(async () => {
  pki = makeMeshPki();
  idp = await makeIdp(NOW_S);
  idpJwks = await startJwksServer(jwksOf(idp.key));
  const port = await freePort();
  issuer = `https://127.0.0.1:${port}`;
  keysDir = path.join(pki.dir, 'keys');
  await writeSigningKey(keysDir, '2026-01-k1');
  const yaml = stsYaml(pki, keysDir, idpYaml(idpJwks.url))
    .replace('https: 127.0.0.1:0', `https: 127.0.0.1:${port}`)
    .replace(/^issuer: .*$/m, `issuer: ${issuer}`);
  sts = await startTestSts(yaml, clock.ms, { pollMs: 3_600_000 });
  sts.clock.ms = clock.ms;
  // One clock for the STS and both sidecars.
  Object.defineProperty(sts.clock, 'ms', { get: () => clock.ms, set: (v: number) => (clock.ms = v) });
  orders = await sidecar(ORDERS);
  ledger = await sidecar(LEDGER);
});

afterAll(async () => {
  for (const s of [orders, ledger]) {
    s?.client.close();
    await s?.running.stop(500);
  }
  await sts?.stop();
  await idpJwks?.close();
});

async function check(
  s: Sidecar,
  token: string,
  caller: { id: string; certPem: string },
  method: string,
  p: string,
): Promise<{ allowed: boolean; reason: unknown; res: OfficialCheckResponse }> {
  const res = await s.client.check(
    envoyCheckRequest({ method, path: p, principal: caller.id, certificatePem: caller.certPem, headers: { 'delegation-token': token } }),
  );
  return { allowed: (res.status?.code ?? 0) === 0, reason: res.dynamic_metadata?.fields?.['reason']?.stringValue, res };
}

async function edge(): Promise<string> {
  const r = await exchange(sts.url, pki.pki.caPem, pki.gateway, { subject_token: await idp.token({ iat: clock.ms / 1000 - 10, exp: clock.ms / 1000 + 600 }), audience: ORDERS });
  expect(r.status, r.text).toBe(200);
  return r.json()['access_token'] as string;
}

async function hop(t1: string, details?: unknown): Promise<string> {
  const r = await exchange(sts.url, pki.pki.caPem, pki.orders, {
    subject_token: t1,
    audience: LEDGER,
    ...(details === undefined ? {} : { authorization_details: JSON.stringify(details) }),
  });
  expect(r.status, r.text).toBe(200);
  return r.json()['access_token'] as string;
}

describe('the three-workload chain through real sidecars and a real STS', () => {
  it('gateway → orders → ledger: each issued token is allowed where it was meant to be used', async () => {
    const t1 = await edge();
    const first = await check(orders, t1, pki.gateway, 'POST', '/v1/orders');
    expect(first).toMatchObject({ allowed: true, reason: 'granted' });
    const t2 = await hop(t1);
    const second = await check(ledger, t2, pki.orders, 'POST', '/v1/ledger/entries');
    expect(second).toMatchObject({ allowed: true, reason: 'granted' });
    // The ledger's sidecar vouches for the original user and the transaction upstream.
    const up = Object.fromEntries((second.res.ok_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value]));
    expect(up).toMatchObject({ 'x-hopguard-sub': 'user:alice', 'x-hopguard-actor': ORDERS, 'x-hopguard-txn': claimsOf(t1)['txn'] });
    expect(ledger.sink.events().at(-1)).toMatchObject({ decision: 'allow', actors: [ORDERS, GATEWAY], iss: issuer, kid: headerOf(t2)['kid'] });
  });

  it('and nowhere else: wrong workload, wrong caller, wrong certificate, wrong path, consumed location', async () => {
    const t1 = await edge();
    const t2 = await hop(t1);
    const denials: Array<[Sidecar, string, { id: string; certPem: string }, string, string, string]> = [
      [ledger, t1, pki.gateway, 'POST', '/v1/ledger/entries', 'audience_mismatch'], // T1 was issued to orders
      [orders, t2, pki.orders, 'POST', '/v1/orders', 'audience_mismatch'], // T2 was issued to the ledger
      [ledger, t2, pki.gateway, 'POST', '/v1/ledger/entries', 'actor_mismatch'], // the gateway replays T2
      [ledger, t2, { id: ORDERS, certPem: pki.gateway.certPem }, 'POST', '/v1/ledger/entries', 'cnf_mismatch'], // bound to orders' cert
      [ledger, t2, pki.orders, 'POST', '/v1/ledger/entries/x/y', 'grant_mismatch'], // /v1/ledger/* is one segment
      [ledger, t2, pki.orders, 'DELETE', '/v1/ledger/entries', 'grant_mismatch'],
      [orders, t1, pki.gateway, 'POST', '/v1/payments', 'grant_mismatch'],
    ];
    for (const [s, t, caller, method, p, reason] of denials) {
      const r = await check(s, t, caller, method, p);
      expect({ allowed: r.allowed, reason: r.reason }, `${method} ${p} as ${caller.id}`).toEqual({ allowed: false, reason });
    }
  });

  it('a narrowed hop token allows exactly the narrower grant at the ledger', async () => {
    const t2 = await hop(await edge(), [{ type: 'hop', locations: [LEDGER], actions: ['POST'], paths: ['/v1/ledger/entries'] }]);
    expect(await check(ledger, t2, pki.orders, 'POST', '/v1/ledger/entries')).toMatchObject({ allowed: true });
    expect(await check(ledger, t2, pki.orders, 'POST', '/v1/ledger/other')).toMatchObject({ allowed: false, reason: 'grant_mismatch' });
  });

  it('what the STS refuses is never issued; the chain cannot go past the last granted workload', async () => {
    const t1 = await edge();
    const before = sts.events().length;
    const widen = await exchange(sts.url, pki.pki.caPem, pki.orders, {
      subject_token: t1,
      audience: LEDGER,
      authorization_details: JSON.stringify([{ type: 'hop', locations: [LEDGER], actions: ['POST', 'DELETE'] }]),
    });
    expect(widen.status).toBe(400);
    expect(widen.json()).not.toHaveProperty('access_token');
    const t2 = await hop(t1);
    const third = await exchange(sts.url, pki.pki.caPem, pki.ledger, { subject_token: t2, audience: ORDERS });
    expect([third.status, third.json()['reason']]).toEqual([400, 'audience_not_granted']);
    expect(sts.events().slice(before).map((e) => e['result'])).toEqual(['denied', 'issued', 'denied']);
  });
});

describe('signing-key rotation with sidecars on discovery: not a single unknown_key', () => {
  it('a new key is published, fetched by the sidecars, and signs only after publish_ahead', async () => {
    const checks: Array<{ allowed: boolean; reason: unknown }> = [];
    const chain = async (): Promise<string> => {
      const t1 = await edge();
      checks.push(await check(orders, t1, pki.gateway, 'POST', '/v1/orders'));
      const t2 = await hop(t1);
      checks.push(await check(ledger, t2, pki.orders, 'POST', '/v1/ledger/entries'));
      return headerOf(t2)['kid'] as string;
    };
    const refreshSidecars = async () => {
      for (const s of [orders, ledger]) {
        s.timers.fireAll(); // the background refresh_interval timer
        await (s.running.engine.issuers[0]?.keys as unknown as { refresh(): Promise<void> }).refresh();
      }
    };

    expect(await chain()).toBe('2026-01-k1');
    await writeSigningKey(keysDir, '2026-02-k2');
    await sts.running.reloadKeys();
    expect(await chain()).toBe('2026-01-k1'); // published, not signing

    clock.ms += 5 * MIN; // a sidecar refresh_interval
    await refreshSidecars();
    expect(await chain()).toBe('2026-01-k1');

    clock.ms += 5 * MIN; // publish_ahead (10m) reached: the new key signs
    expect(await chain()).toBe('2026-02-k2');

    clock.ms += 2 * MIN; // old tokens have expired: the old key goes
    rmSync(path.join(keysDir, '2026-01-k1.json'));
    await sts.running.reloadKeys();
    clock.ms += 5 * MIN;
    await refreshSidecars();
    expect(await chain()).toBe('2026-02-k2');

    expect(checks.every((c) => c.allowed), JSON.stringify(checks)).toBe(true);
    for (const s of [orders, ledger]) {
      expect(s.sink.events().filter((e) => e['reason'] === 'unknown_key')).toEqual([]);
      // Every key arrived by the background refresh: none had to be fetched on a miss.
      expect(s.refreshes.filter((r) => r.trigger === 'unknown_kid')).toEqual([]);
      expect(s.refreshes.every((r) => r.ok)).toBe(true);
    }
  });
});

describe('issuers[].ca_file', () => {
  async function sidecarWith(extra: string): Promise<RunningServer> {
    const parsed = parseConfig(
      `
listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }
workload: { id: "${LEDGER}" }
issuers:
  - issuer: ${issuer}
    discovery: true
    fetch_timeout: 2s
${extra}
delegation: { trusted_domains: [${TD}] }
`,
      { env: {} },
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    return startServer(parsed.config, { clock: { now: () => clock.ms }, sinks: [new CaptureSink()], logger: new Logger('error', { write: () => undefined }) });
  }

  it('without it, the system roots do not trust the mesh CA: no keys, keys_unavailable', async () => {
    const s = await sidecarWith('');
    try {
      expect(s.issuersWithoutKeys()).toEqual([issuer]);
      const c = officialClient(`127.0.0.1:${s.grpcPort}`);
      const t2 = await hop(await edge());
      const res = await c.check(envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: ORDERS, certificatePem: pki.orders.certPem, headers: { 'delegation-token': t2 } }));
      expect(res.dynamic_metadata?.fields?.['reason']?.stringValue).toBe('keys_unavailable');
      c.close();
    } finally {
      await s.stop(500);
    }
  });

  it('an unreadable ca_file fails start-up naming the key', async () => {
    await expect(sidecarWith(`    ca_file: ${path.join(pki.dir, 'missing.pem')}`)).rejects.toThrow(/issuers\[\]\.ca_file: cannot read .*missing\.pem: ENOENT/);
  });

  it('a file without a certificate fails start-up naming the key', async () => {
    await expect(sidecarWith(`    ca_file: ${pki.server.keyFile}`)).rejects.toThrow(/issuers\[\]\.ca_file: .*no PEM CERTIFICATE/);
  });
});
