/**
 * `hopguard audit verify`: rebuilds every hash chain found in NDJSON files and classifies
 * what it finds (SPEC §8):
 *
 * - gap: a seq range no input holds (events a sink dropped, or lines deleted). The event
 *   after a gap cannot have its `prev` checked, so a gap is never a broken link.
 * - tampering (reported as broken links, each with what was found where): a `prev` that
 *   does not match the previous event's hash; a different event with a seq already seen; an
 *   event out of chain order within one file (a capture is written in chain order, so a line
 *   moved backwards means the file was edited); an event after the final checkpoint; a seq 0
 *   that is not a chain start, or a `prev: null` after it.
 * - bad signature: a checkpoint without a JWS, with one of another profile, whose signed
 *   claims are not the event's chain/seq/prev/ts/finality, signed with a key the JWKS does
 *   not have, or whose signature does not verify.
 * - ignored: lines that are not chain events (logs, garbage, truncated lines) and exact
 *   duplicates of an event (the http sink delivers at least once).
 *
 * Memory does not grow with the number of events (see `ChainState`): a chain is held as
 * its contiguous runs of seqs with the hashes at their ends, so a 1 GB single chain takes
 * the same memory as a small one. What does grow: one run per gap or per place where the
 * inputs join out of order, a window of the last 1024 event hashes per chain, and one pending
 * comparison per stretch of duplicated events that cannot be compared in the first read
 * (those are settled by a second read of the inputs, done only when needed).
 */
import type { JwkSet } from '../token/jwks.js';
import { CHAIN_EVENT, CHECKPOINT_EVENT, sha256Hex } from './chain.js';
import { checkCheckpoint, type CheckpointProblem } from './checkpoint.js';
import { canonicalize } from './jcs.js';
import { forEachLine } from './lines.js';

export type TamperKind =
  | 'prev_mismatch' // `prev` is not the hash of the event before it
  | 'conflict' // a different event with a seq already seen
  | 'out_of_order' // within one file, after a later event of its chain
  | 'after_final' // an event after the chain's final checkpoint
  | 'bad_start'; // seq 0 that is not a chain start, or `prev: null` after seq 0

export type FindingKind = TamperKind | CheckpointProblem | 'malformed';

export interface Finding {
  readonly seq: number | null;
  readonly kind: FindingKind;
  readonly file: string;
  readonly line: number;
  readonly detail: string;
}

export interface ChainReport {
  readonly chain: string;
  /** Distinct events of the chain found (exact duplicates counted once). */
  readonly events: number;
  readonly first_seq: number | null;
  readonly last_seq: number | null;
  /** Missing seq ranges, inclusive; one from 0 when the start of the chain is missing. */
  readonly gaps: [number, number][];
  /** Seqs where tampering was found (see `findings` for what and where). */
  readonly broken_links: number[];
  /** Checkpoint seqs whose signature is missing, malformed, mismatched, unknown or invalid. */
  readonly bad_signatures: number[];
  /** Checkpoint events found. */
  readonly checkpoints: number;
  /** Ends with a final checkpoint (whose signature verified, when a JWKS was given). */
  readonly closed: boolean;
  // Extensions (docs/CONTRACT-EXTENSIONS.md)
  readonly ok: boolean;
  readonly workload: string | null;
  readonly version: string | null;
  /** Seq of the last checkpoint whose signature verified (null: none, or no JWKS given). */
  readonly signed_through: number | null;
  /** Exact duplicate lines ignored. */
  readonly duplicates: number;
  /** Lines naming this chain whose chain fields are invalid or that have no canonical form. */
  readonly malformed: number;
  readonly findings: Finding[];
  /** Findings beyond the reported ones (the lists are bounded). */
  readonly findings_omitted: number;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly chains: ChainReport[];
  // Extensions
  readonly strict: boolean;
  /** Whether checkpoint signatures were checked (a JWKS was given). */
  readonly signatures_checked: boolean;
  readonly files: { readonly file: string; readonly lines: number; readonly error?: string }[];
  /** Lines that are not chain events (other events, logs, garbage, overlong lines). */
  readonly ignored_lines: number;
  /** Whether a second read of the inputs settled duplicated stretches. */
  readonly second_pass: boolean;
}

export interface VerifyOptions {
  /** Keys that verify checkpoint signatures; without them signatures are not checked. */
  readonly keys?: JwkSet;
  readonly strict?: boolean;
  readonly maxLineBytes?: number;
}

/** Per-chain bounds: findings listed with detail, seqs listed per category. */
export const MAX_FINDINGS = 1000;
export const MAX_LISTED = 100_000;
/** Distinct chain ids held at once; more means the input is not a set of audit logs. */
export const MAX_CHAINS = 100_000;
const MAX_CHAIN_ID = 256;
const WINDOW = 1024;
const HASH_RE = /^[0-9a-f]{64}$/;

interface Loc {
  readonly file: number;
  readonly line: number;
}

/** A contiguous seq range of first occurrences, linked and checked inside. */
interface Run {
  lo: number;
  hi: number;
  /** `prev` of event `lo` (checked when lo - 1 arrives). */
  loPrev: string | null;
  loHash: string;
  /** Hash of event `hi` (what hi + 1's prev must be). */
  hiHash: string;
}

/** One file's view of a chain: order checks and the duplicated stretch being read. */
interface Cursor {
  file: number;
  lastSeq: number;
  lastHash: string;
  maxSeq: number;
  /** Last event of a duplicated stretch not yet compared with its first occurrence. */
  pending: { seq: number; hash: string; loc: Loc } | undefined;
}

interface Deferred {
  readonly hash: string;
  readonly loc: Loc;
}

class ChainState {
  readonly runs: Run[] = [];
  events = 0;
  duplicates = 0;
  malformed = 0;
  checkpoints = 0;
  workload: string | null = null;
  version: string | null = null;
  /** Seq of a final checkpoint whose check passed (the earliest). */
  finalSeq: number | undefined;
  /** Seq of the earliest final checkpoint, valid or not (events after it are tampering). */
  anyFinalSeq: number | undefined;
  signedThrough: number | null = null;
  readonly broken = new Set<number>();
  readonly badSigs = new Set<number>();
  readonly findings: Finding[] = [];
  omitted = 0;
  cursor: Cursor | undefined;
  /** Duplicated events to compare with their first occurrence in a second read. */
  readonly deferred = new Map<number, Deferred[]>();
  private readonly winSeq = new Float64Array(WINDOW).fill(-1);
  private readonly winHash: string[] = new Array<string>(WINDOW);

  constructor(readonly id: string) {}

  /** Index of the last run with lo <= s, or -1. */
  runBefore(s: number): number {
    const runs = this.runs;
    const n = runs.length;
    if (n === 0) return -1;
    if ((runs[n - 1] as Run).lo <= s) return n - 1; // the common case: appending
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((runs[mid] as Run).lo <= s) lo = mid;
      else hi = mid - 1;
    }
    return (runs[lo] as Run).lo <= s ? lo : -1;
  }

  seen(s: number): boolean {
    const i = this.runBefore(s);
    return i >= 0 && (this.runs[i] as Run).hi >= s;
  }

  /** Hash of the first occurrence of `s`, when still known in the first read. */
  knownHash(s: number): string | undefined {
    const w = s % WINDOW;
    if (this.winSeq[w] === s) return this.winHash[w];
    const i = this.runBefore(s);
    if (i < 0) return undefined;
    const r = this.runs[i] as Run;
    if (r.hi === s) return r.hiHash;
    if (r.lo === s) return r.loHash;
    return undefined;
  }

  remember(s: number, hash: string): void {
    const w = s % WINDOW;
    this.winSeq[w] = s;
    this.winHash[w] = hash;
  }

  /** Adds a first occurrence; returns the tampering its links show. */
  link(s: number, prev: string | null, hash: string): { seq: number; detail: string }[] {
    const out: { seq: number; detail: string }[] = [];
    const i = this.runBefore(s);
    const left = i >= 0 ? this.runs[i] : undefined;
    const right = this.runs[i + 1];
    const joinLeft = left !== undefined && left.hi === s - 1;
    const joinRight = right !== undefined && right.lo === s + 1;
    if (joinLeft && prev !== left.hiHash) out.push({ seq: s, detail: mismatch(s) });
    if (joinRight && right.loPrev !== hash) out.push({ seq: s + 1, detail: mismatch(s + 1) });
    if (joinLeft && joinRight) {
      left.hi = right.hi;
      left.hiHash = right.hiHash;
      this.runs.splice(i + 1, 1);
    } else if (joinLeft) {
      left.hi = s;
      left.hiHash = hash;
    } else if (joinRight) {
      right.lo = s;
      right.loPrev = prev;
      right.loHash = hash;
    } else {
      const run: Run = { lo: s, hi: s, loPrev: prev, loHash: hash, hiHash: hash };
      if (i + 1 === this.runs.length) this.runs.push(run);
      else this.runs.splice(i + 1, 0, run);
    }
    this.remember(s, hash);
    this.events++;
    return out;
  }

  /** The smallest seq held that is greater than `s`, if any. */
  nextHeldAfter(s: number): number | undefined {
    const i = this.runBefore(s);
    if (i >= 0 && (this.runs[i] as Run).hi > s) return s + 1;
    const next = this.runs[i + 1];
    return next?.lo;
  }

  gaps(): [number, number][] {
    const out: [number, number][] = [];
    let expect = 0;
    for (const r of this.runs) {
      if (r.lo > expect) out.push([expect, r.lo - 1]);
      expect = r.hi + 1;
    }
    return out;
  }
}

/** Verifies a set of files as one body of evidence. */
export class AuditVerifier {
  private readonly chains = new Map<string, ChainState>();
  private readonly files: { file: string; lines: number; error?: string }[] = [];
  private ignored = 0;
  private secondPass = false;
  private touched: ChainState[] = [];

  constructor(private readonly opts: VerifyOptions = {}) {}

  async verifyFiles(paths: readonly string[]): Promise<VerifyReport> {
    for (let f = 0; f < paths.length; f++) {
      const file = paths[f] as string;
      const entry: { file: string; lines: number; error?: string } = { file, lines: 0 };
      this.files.push(entry);
      try {
        entry.lines = await forEachLine(file, (text, line) => this.line(text, f, line), this.opts.maxLineBytes);
      } catch (err) {
        entry.error = errorText(err);
      }
      this.endFile();
    }
    await this.settleDeferred(paths);
    return this.report();
  }

  // ---- first read ------------------------------------------------------------------

  private line(text: string | undefined, file: number, line: number): void | Promise<void> {
    if (text === undefined) {
      this.ignored++;
      return;
    }
    const ev = parseChainLine(text);
    if (ev === undefined) {
      this.ignored++;
      return;
    }
    const loc: Loc = { file, line };
    const id = ev['chain'] as string;
    if (id.length === 0 || id.length > MAX_CHAIN_ID) {
      this.ignored++;
      return;
    }
    const st = this.chainState(id);
    const seq = ev['seq'];
    const prev = ev['prev'];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
      return this.malformed(st, null, loc, '"seq" is not a non-negative integer');
    }
    if (!(prev === null || (typeof prev === 'string' && HASH_RE.test(prev)))) {
      return this.malformed(st, seq, loc, '"prev" is neither null nor a lowercase hex SHA-256');
    }
    let hash: string;
    try {
      hash = sha256Hex(canonicalize(ev));
    } catch (err) {
      return this.malformed(st, seq, loc, `no canonical form: ${errorText(err)}`);
    }
    return this.occurrence(st, ev, seq, prev, hash, loc);
  }

  private chainState(id: string): ChainState {
    let st = this.chains.get(id);
    if (st === undefined) {
      if (this.chains.size >= MAX_CHAINS) throw new Error(`more than ${MAX_CHAINS} distinct chains: not a set of audit logs`);
      st = new ChainState(id);
      this.chains.set(id, st);
    }
    return st;
  }

  private cursorOf(st: ChainState, file: number): Cursor {
    let c = st.cursor;
    if (c === undefined || c.file !== file) {
      c = { file, lastSeq: -1, lastHash: '', maxSeq: -1, pending: undefined };
      st.cursor = c;
      this.touched.push(st);
    }
    return c;
  }

  private occurrence(
    st: ChainState,
    ev: Record<string, unknown>,
    seq: number,
    prev: string | null,
    hash: string,
    loc: Loc,
  ): void | Promise<void> {
    const cur = this.cursorOf(st, loc.file);
    if (cur.lastSeq === seq && cur.lastHash === hash) {
      st.duplicates++; // the same line again, right after itself
      return;
    }
    const follows = cur.lastSeq === seq - 1 && cur.lastSeq >= 0;
    if (!st.seen(seq)) {
      // First occurrence of this seq.
      if (cur.maxSeq > seq) {
        this.tamper(st, seq, 'out_of_order', loc, `found after seq ${cur.maxSeq} of its chain in the same file`);
      }
      // The duplicated stretch this file was reading ends here. Settled before linking: if
      // it ended at seq - 1, that seq is still the end of its run, whose hash is known.
      if (cur.pending !== undefined) this.settlePending(st, cur);
      for (const t of st.link(seq, prev, hash)) this.tamper(st, t.seq, 'prev_mismatch', loc, t.detail);
      if (seq === 0 && (prev !== null || ev['event'] !== CHAIN_EVENT)) {
        this.tamper(st, 0, 'bad_start', loc, `seq 0 is not a ${CHAIN_EVENT} event with "prev": null`);
      } else if (seq > 0 && prev === null) {
        this.tamper(st, seq, 'bad_start', loc, '"prev" is null after the start of the chain');
      }
      this.advance(cur, seq, hash);
      return this.firstOccurrence(st, ev, seq, loc);
    }
    // A seq already seen: an exact duplicate, or tampering.
    st.duplicates++;
    if (follows && prev !== cur.lastHash) {
      // Within this file it does not link to the line before it: one of them is not the
      // event first seen with its seq.
      this.tamper(st, seq, 'conflict', loc, `differs from the event first seen with seq ${seq} (its prev does not link to the line before it)`);
      cur.pending = undefined;
    } else if (!follows && cur.pending !== undefined) {
      this.settlePending(st, cur);
    }
    const known = st.knownHash(seq);
    if (known !== undefined) {
      if (known !== hash) this.tamper(st, seq, 'conflict', loc, `differs from the event first seen with seq ${seq}`);
      // Equal: every duplicate linked before it in this stretch is the original too.
      cur.pending = undefined;
    } else {
      cur.pending = { seq, hash, loc };
    }
    this.advance(cur, seq, hash);
  }

  private advance(cur: Cursor, seq: number, hash: string): void {
    cur.lastSeq = seq;
    cur.lastHash = hash;
    if (seq > cur.maxSeq) cur.maxSeq = seq;
  }

  private settlePending(st: ChainState, cur: Cursor): void {
    const p = cur.pending;
    cur.pending = undefined;
    if (p === undefined) return;
    if (st.knownHash(p.seq) !== undefined) this.compare(st, p);
    else this.defer(st, p);
  }

  private compare(st: ChainState, p: { seq: number; hash: string; loc: Loc }): void {
    const known = st.knownHash(p.seq);
    if (known !== undefined && known !== p.hash) {
      this.tamper(st, p.seq, 'conflict', p.loc, `differs from the event first seen with seq ${p.seq}`);
    }
  }

  private defer(st: ChainState, p: { seq: number; hash: string; loc: Loc }): void {
    let list = st.deferred.get(p.seq);
    if (list === undefined) {
      list = [];
      st.deferred.set(p.seq, list);
    }
    if (!list.some((d) => d.hash === p.hash)) list.push({ hash: p.hash, loc: p.loc });
  }

  /** Semantics of an event read for the first time: the start event, checkpoints, finality. */
  private firstOccurrence(st: ChainState, ev: Record<string, unknown>, seq: number, loc: Loc): void | Promise<void> {
    const kind = ev['event'];
    if (kind === CHAIN_EVENT && seq === 0) {
      st.workload = typeof ev['workload'] === 'string' ? ev['workload'] : null;
      st.version = typeof ev['version'] === 'string' ? ev['version'] : null;
      return;
    }
    if (kind !== CHECKPOINT_EVENT) return;
    st.checkpoints++;
    if (ev['final'] === true && (st.anyFinalSeq === undefined || seq < st.anyFinalSeq)) st.anyFinalSeq = seq;
    return checkCheckpoint(ev, this.opts.keys).then(
      (r) => {
        if (!r.ok) {
          this.badSignature(st, seq, r.problem, loc, r.detail);
          return;
        }
        if (r.final && (st.finalSeq === undefined || seq < st.finalSeq)) st.finalSeq = seq;
        if (r.verified && (st.signedThrough === null || seq > st.signedThrough)) st.signedThrough = seq;
      },
      (err: unknown) => this.badSignature(st, seq, 'bad_signature', loc, `cannot be checked: ${errorText(err)}`),
    );
  }

  /** At the end of a file, each chain's duplicated stretch ends too. */
  private endFile(): void {
    for (const st of this.touched) {
      if (st.cursor !== undefined) this.settlePending(st, st.cursor);
      st.cursor = undefined;
    }
    this.touched = [];
  }

  // ---- second read: duplicated stretches the first read could not compare -----------

  private async settleDeferred(paths: readonly string[]): Promise<void> {
    let open = 0;
    for (const st of this.chains.values()) open += st.deferred.size;
    if (open === 0) return;
    this.secondPass = true;
    for (let f = 0; f < paths.length && open > 0; f++) {
      try {
        await forEachLine(
          paths[f] as string,
          (text) => {
            if (text === undefined || open === 0) return;
            const ev = parseChainLine(text);
            if (ev === undefined) return;
            const st = this.chains.get(ev['chain'] as string);
            const seq = ev['seq'];
            if (st === undefined || typeof seq !== 'number') return;
            const list = st.deferred.get(seq);
            if (list === undefined) return;
            let hash: string;
            try {
              hash = sha256Hex(canonicalize(ev));
            } catch {
              return; // malformed in the first read too: not a first occurrence
            }
            // The first valid line with this seq, in the same order as the first read: the
            // first occurrence.
            st.deferred.delete(seq);
            open--;
            for (const d of list) {
              if (d.hash !== hash) this.tamper(st, seq, 'conflict', d.loc, `differs from the event first seen with seq ${seq}`);
            }
          },
          this.opts.maxLineBytes,
        );
      } catch {
        // Reported by the first read.
      }
    }
  }

  // ---- findings ----------------------------------------------------------------------

  private tamper(st: ChainState, seq: number, kind: TamperKind, loc: Loc, detail: string): void {
    if (st.broken.size < MAX_LISTED) st.broken.add(seq);
    this.note(st, { seq, kind, file: this.fileName(loc), line: loc.line, detail });
  }

  private badSignature(st: ChainState, seq: number, kind: CheckpointProblem, loc: Loc, detail: string): void {
    if (st.badSigs.size < MAX_LISTED) st.badSigs.add(seq);
    this.note(st, { seq, kind, file: this.fileName(loc), line: loc.line, detail });
  }

  private malformed(st: ChainState, seq: number | null, loc: Loc, detail: string): void {
    st.malformed++;
    this.note(st, { seq, kind: 'malformed', file: this.fileName(loc), line: loc.line, detail });
  }

  private note(st: ChainState, f: Finding): void {
    if (st.findings.length < MAX_FINDINGS) st.findings.push(f);
    else st.omitted++;
  }

  private fileName(loc: Loc): string {
    return this.files[loc.file]?.file ?? '?';
  }

  // ---- report ------------------------------------------------------------------------

  private report(): VerifyReport {
    const strict = this.opts.strict === true;
    const chains: ChainReport[] = [];
    for (const st of this.chains.values()) chains.push(this.chainReport(st, strict));
    // Sorted for a stable report whatever the order of the files.
    chains.sort((a, b) => (a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0));
    const readErrors = this.files.some((f) => f.error !== undefined);
    return {
      ok: chains.length > 0 && !readErrors && chains.every((c) => c.ok),
      chains,
      strict,
      signatures_checked: this.opts.keys !== undefined,
      files: this.files,
      ignored_lines: this.ignored,
      second_pass: this.secondPass,
    };
  }

  private chainReport(st: ChainState, strict: boolean): ChainReport {
    const first = st.runs[0];
    const last = st.runs[st.runs.length - 1];
    const lastSeq = last?.hi ?? null;
    // Nothing follows a final checkpoint: whatever does was added to the log.
    if (st.anyFinalSeq !== undefined) {
      const after = st.nextHeldAfter(st.anyFinalSeq);
      if (after !== undefined) {
        if (st.broken.size < MAX_LISTED) st.broken.add(after);
        this.note(st, {
          seq: after,
          kind: 'after_final',
          file: '',
          line: 0,
          detail: `seq ${after} follows the final checkpoint at seq ${st.anyFinalSeq}`,
        });
      }
    }
    const gaps = st.gaps();
    const closed = st.finalSeq !== undefined && st.finalSeq === lastSeq;
    const broken = [...st.broken].sort((a, b) => a - b);
    const badSigs = [...st.badSigs].sort((a, b) => a - b);
    const sound = broken.length === 0 && badSigs.length === 0;
    return {
      chain: st.id,
      events: st.events,
      first_seq: first?.lo ?? null,
      last_seq: lastSeq,
      gaps,
      broken_links: broken,
      bad_signatures: badSigs,
      checkpoints: st.checkpoints,
      closed,
      ok: sound && (!strict || (gaps.length === 0 && closed)),
      workload: st.workload,
      version: st.version,
      signed_through: st.signedThrough,
      duplicates: st.duplicates,
      malformed: st.malformed,
      findings: [...st.findings].sort((a, b) => (a.seq ?? -1) - (b.seq ?? -1)),
      findings_omitted: st.omitted,
    };
  }
}

function mismatch(s: number): string {
  return `its prev is not the hash of seq ${s - 1} (seq ${s - 1} or this event was altered)`;
}

/** A line's JSON if it is an object naming a chain (a string `chain`); else undefined. */
function parseChainLine(text: string): Record<string, unknown> | undefined {
  // Cheap pre-filter: most non-chain lines (logs, blank lines) never reach JSON.parse.
  if (text.length === 0 || text.indexOf('"chain"') === -1) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const rec = v as Record<string, unknown>;
  return typeof rec['chain'] === 'string' ? rec : undefined;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Verifies `files` as one body of evidence. */
export function verifyAuditFiles(files: readonly string[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  return new AuditVerifier(opts).verifyFiles(files);
}
