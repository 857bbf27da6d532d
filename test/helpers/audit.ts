/**
 * Builds real audit chains for tests: the production AuditLog writing into a capture sink,
 * with a fake clock, checkpoints where the test asks for them and an optional final one.
 */
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK } from 'jose';
import { signerFromJwk, type CheckpointSigner } from '../../src/audit/checkpoint.js';
import { AuditLog } from '../../src/telemetry/audit-log.js';
import { CaptureSink } from './capture-sink.js';

export interface ChainSpec {
  /** Decision-like events after the start event. */
  readonly events: number;
  readonly signer?: CheckpointSigner;
  /** A checkpoint after every this many events (needs a signer). */
  readonly checkpointEvery?: number;
  /** Close the chain with a final checkpoint (needs a signer). Default true with a signer. */
  readonly final?: boolean;
  readonly chainId?: string;
  readonly workload?: string;
}

export const T0 = Date.parse('2026-11-27T10:00:00.000Z');

/** The chain's lines (without '\n'), in emission order. */
export function makeChain(spec: ChainSpec): string[] {
  const sink = new CaptureSink();
  let now = T0;
  const log = new AuditLog({
    sinks: [sink],
    workload: spec.workload ?? 'spiffe://prod.example.org/ns/payments/sa/ledger',
    version: '0.0.0-test',
    now: () => now,
    ...(spec.signer !== undefined ? { signer: () => spec.signer } : {}),
    ...(spec.chainId !== undefined ? { chainId: spec.chainId } : {}),
    // Checkpoints only where the test asks for them.
    checkpointIntervalMs: 1e12,
    timers: { setTimeout: () => undefined, clearTimeout: () => undefined },
    onError: (err) => {
      throw err;
    },
  });
  log.start();
  for (let i = 1; i <= spec.events; i++) {
    now += 1;
    log.appendObject({
      event: 'hopguard.decision',
      v: 1,
      ts: new Date(now).toISOString(),
      decision: i % 3 === 0 ? 'deny' : 'allow',
      reason: i % 3 === 0 ? 'grant_mismatch' : 'granted',
      status: i % 3 === 0 ? 403 : 200,
      request_id: `req-${i}`,
    });
    if (spec.checkpointEvery !== undefined && i % spec.checkpointEvery === 0) log.checkpoint();
    log.write();
  }
  if (spec.signer !== undefined && spec.final !== false) {
    now += 1;
    void log.close(0);
  }
  return sink.lines.map((l) => l.slice(0, -1));
}

export async function newSigner(alg: 'ES256' | 'EdDSA' = 'ES256', kid = `cp-${alg}`): Promise<{ signer: CheckpointSigner; privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> }> {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const privateJwk = { ...(await exportJWK(pair.privateKey)), kid, alg, use: 'sig' } as Record<string, unknown>;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } as Record<string, unknown>;
  return { signer: await signerFromJwk(privateJwk), privateJwk, publicJwk };
}

export async function writeLines(file: string, lines: readonly string[], gzip = false): Promise<string> {
  const text = lines.map((l) => l + '\n').join('');
  await writeFile(file, gzip ? gzipSync(text) : text);
  return file;
}

export function parse(line: string): Record<string, unknown> {
  return JSON.parse(line) as Record<string, unknown>;
}
