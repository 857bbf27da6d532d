import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/audit/chain.js';
import type { CheckpointSigner } from '../../../src/audit/checkpoint.js';
import { canonicalize } from '../../../src/audit/jcs.js';
import { verifyAuditFiles, type ChainReport, type VerifyReport } from '../../../src/audit/verify.js';
import { parseJwks, type JwkSet } from '../../../src/token/jwks.js';
import { makeChain, newSigner, parse, writeLines } from '../../helpers/audit.js';

let dir: string;
let n = 0;
let signer: CheckpointSigner;
let keys: JwkSet;
/**
 * 30 decisions with a checkpoint after every 10 and a final one:
 * seq 0 start, 1–10, cp 11, 12–21, cp 22, 23–32, cp 33, final 34.
 */
let base: string[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hg-verify-'));
  const k = await newSigner('ES256', 'audit-1');
  signer = k.signer;
  const set = parseJwks({ keys: [k.publicJwk] });
  if (!set.ok) throw new Error(set.problem);
  keys = set.keys;
  base = makeChain({ events: 30, signer, checkpointEvery: 10, chainId: 'chain-a' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function verify(files: readonly (readonly string[])[], opts: { keys?: boolean; strict?: boolean; gzip?: boolean } = {}): Promise<VerifyReport> {
  const paths: string[] = [];
  for (const lines of files) paths.push(await writeLines(path.join(dir, `f${++n}.ndjson`), lines, opts.gzip));
  return verifyAuditFiles(paths, { ...(opts.keys !== false ? { keys } : {}), strict: opts.strict === true });
}

function chain(r: VerifyReport, id = 'chain-a'): ChainReport {
  const c = r.chains.find((x) => x.chain === id);
  if (c === undefined) throw new Error(`no chain ${id} in ${JSON.stringify(r.chains.map((x) => x.chain))}`);
  return c;
}

/** The SPEC's per-chain shape, for table assertions. */
function shape(c: ChainReport) {
  return {
    events: c.events,
    first_seq: c.first_seq,
    last_seq: c.last_seq,
    gaps: c.gaps,
    broken_links: c.broken_links,
    bad_signatures: c.bad_signatures,
    checkpoints: c.checkpoints,
    closed: c.closed,
  };
}

/** Line of seq s, as an object. */
const at = (lines: readonly string[], s: number): Record<string, unknown> => parse(lines[s] as string);
const line = (o: Record<string, unknown>): string => canonicalize(o);
const without = (lines: readonly string[], ...seqs: number[]): string[] => lines.filter((_, i) => !seqs.includes(i));
const replace = (lines: readonly string[], s: number, l: string): string[] => lines.map((x, i) => (i === s ? l : x));
/** What an attacker computes: a correctly linked event after `prevLine`. */
const linkedAfter = (prevLine: string, o: Record<string, unknown>): string => line({ ...o, prev: sha256Hex(prevLine) });

const INTACT = { events: 35, first_seq: 0, last_seq: 34, gaps: [], broken_links: [], bad_signatures: [], checkpoints: 4, closed: true };

describe('audit verify: an intact chain', () => {
  it('verifies every link and checkpoint, closed by the final checkpoint', async () => {
    const r = await verify([base]);
    expect(r.ok).toBe(true);
    expect(shape(chain(r))).toEqual(INTACT);
    expect(chain(r)).toMatchObject({ ok: true, signed_through: 34, workload: 'spiffe://prod.example.org/ns/payments/sa/ledger', findings: [] });
    expect(r.signatures_checked).toBe(true);
    expect((await verify([base], { strict: true })).ok).toBe(true);
  });

  it.each([
    ['one file', (l: string[]) => [l]],
    ['three files in order', (l: string[]) => [l.slice(0, 12), l.slice(12, 23), l.slice(23)]],
    ['three files in reverse order', (l: string[]) => [l.slice(23), l.slice(12, 23), l.slice(0, 12)]],
    ['three files, middle first', (l: string[]) => [l.slice(12, 23), l.slice(0, 12), l.slice(23)]],
    ['interleaved with another chain in each file', (l: string[]) => {
      const other = makeChain({ events: 5, chainId: 'chain-b' });
      return [[...l.slice(20), ...other.slice(3)], [...other.slice(0, 3), ...l.slice(0, 20)]];
    }],
  ])('reports the same whatever the files: %s (no gap where files join)', async (_what, split) => {
    const r = await verify(split(base));
    expect(shape(chain(r))).toEqual(INTACT);
    expect(r.ok).toBe(true);
  });

  it('reads gzip files (by their magic bytes)', async () => {
    const r = await verify([base.slice(0, 20), base.slice(20)], { gzip: true });
    expect(shape(chain(r))).toEqual(INTACT);
  });

  it('accepts a re-serialized capture (other key order, escapes, spacing): the hash is over the JCS form', async () => {
    const reformatted = base.map((l) => {
      const o = parse(l);
      const reversed = Object.fromEntries(Object.entries(o).reverse());
      return JSON.stringify(reversed, null, 0).replace(/"v":1/, '"v":1.0').replace(/hopguard/g, 'hop\\u0067uard');
    });
    const r = await verify([reformatted]);
    expect(shape(chain(r))).toEqual(INTACT);
  });
});

describe('audit verify: classification of bad input (SPEC §8, issue 15)', () => {
  it('an edited field is tampering: the next link breaks', async () => {
    const edited = replace(base, 6, line({ ...at(base, 6), decision: 'allow', reason: 'granted', status: 200 }));
    const c = chain(await verify([edited]));
    expect(c.broken_links).toEqual([7]);
    expect(c.gaps).toEqual([]);
    expect(c.findings[0]).toMatchObject({ seq: 7, kind: 'prev_mismatch', line: 8 });
    expect(c.ok).toBe(false);
  });

  it('an edited prev breaks its own link and the next one', async () => {
    const edited = replace(base, 5, line({ ...at(base, 5), prev: 'f'.repeat(64) }));
    expect(chain(await verify([edited])).broken_links).toEqual([5, 6]);
  });

  it('a deleted line is a gap, not tampering', async () => {
    const r = await verify([without(base, 5)]);
    expect(shape(chain(r))).toEqual({ ...INTACT, events: 34, gaps: [[5, 5]] });
    expect(r.ok).toBe(true);
    expect((await verify([without(base, 5)], { strict: true })).ok).toBe(false);
  });

  it('a deleted chain start is a gap from 0', async () => {
    const c = chain(await verify([without(base, 0)]));
    expect(c.gaps).toEqual([[0, 0]]);
    expect(c.first_seq).toBe(1);
    expect(c.workload).toBeNull();
  });

  it('two swapped lines are tampering: an event out of chain order in its file', async () => {
    const swapped = [...base];
    [swapped[5], swapped[6]] = [swapped[6] as string, swapped[5] as string];
    const c = chain(await verify([swapped]));
    expect(c.broken_links).toEqual([5]);
    expect(c.gaps).toEqual([]);
    expect(c.findings).toEqual([expect.objectContaining({ seq: 5, kind: 'out_of_order', line: 7 })]);
  });

  it('a duplicated line is ignored (the http sink is at-least-once), next to it or far from it', async () => {
    const dup = [...base.slice(0, 6), base[5] as string, ...base.slice(6), base[3] as string];
    const r = await verify([dup], { strict: true });
    expect(shape(chain(r))).toEqual(INTACT);
    expect(chain(r).duplicates).toBe(2);
    expect(r.ok).toBe(true);
  });

  it('a re-sent batch (lines repeated after a retry) is ignored', async () => {
    const resent = [...base.slice(0, 20), ...base.slice(10, 20), ...base.slice(20)];
    const r = await verify([resent], { strict: true });
    expect(r.ok).toBe(true);
    expect(chain(r).duplicates).toBe(10);
  });

  it('a different event with a seq already seen is tampering', async () => {
    const forged = line({ ...at(base, 7), request_id: 'forged' });
    const c = chain(await verify([[...base, forged]]));
    expect(c.broken_links).toEqual([7]);
    expect(c.findings).toEqual([expect.objectContaining({ seq: 7, kind: 'conflict', line: 36 })]);
  });

  it('a line spliced in from another chain stays in its own chain (a fragment with a gap)', async () => {
    const other = makeChain({ events: 10, chainId: 'chain-b' });
    const spliced = [...base.slice(0, 9), other[6] as string, ...base.slice(9)];
    const r = await verify([spliced]);
    expect(shape(chain(r))).toEqual(INTACT);
    expect(shape(chain(r, 'chain-b'))).toMatchObject({ events: 1, first_seq: 6, gaps: [[0, 5]], broken_links: [], closed: false });
    expect(r.ok).toBe(true);
    expect((await verify([spliced], { strict: true })).ok).toBe(false);
  });

  it('an event relabelled into another chain is tampering', async () => {
    const other = makeChain({ events: 10, chainId: 'chain-b' });
    const relabelled = line({ ...at(other, 6), chain: 'chain-a' });
    const inserted = [...base.slice(0, 9), relabelled, ...base.slice(9)];
    const c = chain(await verify([inserted]));
    expect(c.broken_links).toContain(6);
    expect(c.ok).toBe(false);
  });

  it('a truncated tail leaves the chain open; --strict fails it', async () => {
    const cut = base.slice(0, 20);
    const partial = (base[20] as string).slice(0, 40);
    const r = await verify([[...cut, partial]]);
    expect(shape(chain(r))).toEqual({ ...INTACT, events: 20, last_seq: 19, checkpoints: 1, closed: false });
    expect(r.ok).toBe(true);
    expect(r.ignored_lines).toBe(1);
    expect(chain(r).signed_through).toBe(11);
    const strict = await verify([[...cut, partial]], { strict: true });
    expect(strict.ok).toBe(false);
    expect(chain(strict).ok).toBe(false);
  });

  it('a checkpoint forged with another key is a bad signature (and breaks the link after it)', async () => {
    const forger = await newSigner('ES256', 'audit-1');
    const cp = at(base, 22);
    const jws = forger.signer.sign({ chain: 'chain-a', seq: 22, hash: cp['prev'] as string, ts: cp['ts'] as string });
    const c = chain(await verify([replace(base, 22, line({ ...cp, jws }))]));
    expect(c.bad_signatures).toEqual([22]);
    expect(c.broken_links).toEqual([23]);
    expect(c.findings.find((f) => f.seq === 22)).toMatchObject({ kind: 'bad_signature' });
  });

  it('a truncated chain "closed" with a forged final checkpoint is not closed', async () => {
    const cut = base.slice(0, 20);
    const forger = await newSigner('EdDSA', 'attacker');
    const last = cut[19] as string;
    const ts = '2026-11-27T10:05:00.000Z';
    const hash = sha256Hex(last);
    const fake = line({ event: 'hopguard.checkpoint', v: 1, ts, chain: 'chain-a', seq: 20, prev: hash, final: true, jws: forger.signer.sign({ chain: 'chain-a', seq: 20, hash, ts, final: true }) });
    const c = chain(await verify([[...cut, fake]]));
    expect(shape(c)).toMatchObject({ bad_signatures: [20], broken_links: [], closed: false });
    expect(c.findings[0]).toMatchObject({ kind: 'unknown_key' });
  });

  it('a checkpoint whose signed hash does not match is a bad signature, even without --jwks', async () => {
    const cp = at(base, 22);
    const jws = signer.sign({ chain: 'chain-a', seq: 22, hash: 'e'.repeat(64), ts: cp['ts'] as string });
    const edited = replace(base, 22, line({ ...cp, jws }));
    for (const withKeys of [true, false]) {
      const c = chain(await verify([edited], { keys: withKeys }));
      expect(c.bad_signatures).toEqual([22]);
      expect(c.findings.find((f) => f.seq === 22)).toMatchObject({ kind: 'checkpoint_mismatch' });
    }
  });

  it('a checkpoint without its jws is a missing signature', async () => {
    const { jws: _j, ...cp } = at(base, 11);
    const c = chain(await verify([replace(base, 11, line(cp))]));
    expect(c.bad_signatures).toEqual([11]);
    expect(c.findings.find((f) => f.seq === 11)).toMatchObject({ kind: 'missing_signature' });
  });

  it('an event after the final checkpoint is tampering, even correctly linked', async () => {
    const extra = linkedAfter(base[34] as string, { ...at(base, 5), seq: 35, request_id: 'late' });
    const c = chain(await verify([[...base, extra]]));
    expect(c.broken_links).toEqual([35]);
    expect(c.closed).toBe(false);
    expect(c.findings).toEqual([expect.objectContaining({ seq: 35, kind: 'after_final' })]);
  });

  it('a chain start that is not one, and a prev: null mid-chain, are tampering', async () => {
    const c1 = chain(await verify([replace(base, 0, line({ ...at(base, 0), event: 'hopguard.decision' }))]));
    expect(c1.broken_links).toEqual([0, 1]);
    const c2 = chain(await verify([replace(base, 5, line({ ...at(base, 5), prev: null }))]));
    expect(c2.broken_links).toEqual([5, 6]);
  });

  it('never crashes on garbage lines; they are ignored and counted', async () => {
    const garbage = [
      '',
      'not json',
      '{',
      '[1,2,3]',
      'null',
      '"chain"',
      '{"chain": 5, "seq": 1}',
      '{"event":"hopguard.log","level":"info","msg":"serving"}',
      '\u0000\u0001\ufffd binary \u00ff',
      '{"chain":"chain-a","seq":-1,"prev":null}',
      '{"chain":"chain-a","seq":1.5,"prev":null}',
      '{"chain":"chain-a","seq":3,"prev":"XYZ"}',
      '{"chain":"chain-a","seq":3,"prev":"' + 'a'.repeat(64) + '","x":1e999}',
      '{"chain":"' + 'x'.repeat(300) + '","seq":1,"prev":null}',
      '{"chain":"chain-a","seq":3,"prev":null,"s":"\\ud800"}',
    ];
    const mixed: string[] = [];
    base.forEach((l, i) => mixed.push(garbage[i % garbage.length] as string, l));
    const r = await verify([mixed]);
    expect(shape(chain(r))).toEqual(INTACT);
    expect(r.ok).toBe(true);
    expect(chain(r).malformed).toBe(10); // five kinds, each twice
    expect(chain(r).findings.every((f) => f.kind === 'malformed')).toBe(true);
  });

  it('skips an overlong line without buffering it', async () => {
    const file = path.join(dir, 'long.ndjson');
    await writeFile(file, base.slice(0, 10).join('\n') + '\n' + 'x'.repeat(3 * 1024 * 1024) + '\n' + base.slice(10).join('\n'));
    const r = await verifyAuditFiles([file], { keys, maxLineBytes: 64 * 1024 });
    expect(shape(chain(r))).toEqual(INTACT);
    expect(r.ignored_lines).toBe(1);
    expect(r.files[0]?.lines).toBe(36);
  });

  it('a batch the collector acknowledged and then lost is exactly that gap', async () => {
    const collector = without(base, ...Array.from({ length: 10 }, (_, i) => 12 + i));
    const r = await verify([collector]);
    expect(shape(chain(r))).toEqual({ ...INTACT, events: 25, gaps: [[12, 21]] });
    expect(r.ok).toBe(true);
    // With the stdout capture beside it, nothing is missing and the duplicates agree.
    const both = await verify([base, collector], { strict: true });
    expect(both.ok).toBe(true);
    expect(shape(chain(both))).toEqual(INTACT);
    const reversed = await verify([collector, base], { strict: true });
    expect(shape(chain(reversed))).toEqual(INTACT);
  });

  it('an unreadable input makes the report incomplete (not ok) and names the file', async () => {
    const good = await writeLines(path.join(dir, 'good.ndjson'), base);
    const r = await verifyAuditFiles([good, path.join(dir, 'missing.ndjson')], { keys });
    expect(r.ok).toBe(false);
    expect(r.files[1]).toMatchObject({ file: path.join(dir, 'missing.ndjson'), error: expect.stringMatching(/ENOENT/) });
    expect(shape(chain(r))).toEqual(INTACT);
  });

  it('a corrupt gzip tail verifies what it could read and reports the error', async () => {
    const file = path.join(dir, 'cut.ndjson.gz');
    await writeLines(file, base, true);
    const { readFile, writeFile: wf } = await import('node:fs/promises');
    const bytes = await readFile(file);
    await wf(file, bytes.subarray(0, bytes.length - 30));
    const r = await verifyAuditFiles([file], { keys });
    expect(r.files[0]?.error).toBeDefined();
    expect(r.ok).toBe(false);
  });
});

describe('audit verify: long chains (duplicated stretches beyond the hash window)', () => {
  let long: string[];
  beforeAll(() => {
    long = makeChain({ events: 3000, signer, checkpointEvery: 1000, chainId: 'chain-l' });
  });

  it('settles a duplicated prefix in a second read: equal copies pass', async () => {
    const r = await verify([long, long.slice(0, 101)], { strict: true });
    expect(r.second_pass).toBe(true);
    expect(r.ok).toBe(true);
    expect(chain(r, 'chain-l').duplicates).toBe(101);
  });

  it('finds an altered copy at the end of a duplicated stretch in the second read', async () => {
    const copy = long.slice(0, 101);
    copy[100] = line({ ...at(long, 100), request_id: 'forged' });
    const r = await verify([long, copy]);
    expect(r.second_pass).toBe(true);
    const c = chain(r, 'chain-l');
    expect(c.broken_links).toEqual([100]);
    expect(c.findings[0]).toMatchObject({ kind: 'conflict', seq: 100, line: 101 });
  });

  it('finds an altered copy inside a duplicated stretch in the first read', async () => {
    const copy = long.slice(0, 101);
    copy[50] = line({ ...at(long, 50), request_id: 'forged' });
    const c = chain(await verify([long, copy]), 'chain-l');
    expect(c.broken_links).toEqual([51]);
  });
});
