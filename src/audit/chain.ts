/**
 * The hash chain of SPEC §8 over emitted events: every event carries `chain` (this run's
 * random id), `seq` (consecutive from 0) and `prev`, the lowercase hex SHA-256 of the JCS
 * form of the previous event (its own chain/seq/prev included). Seq 0 is the
 * `hopguard.chain` start event, with `prev: null`.
 *
 * Every line the chain hands out IS the JCS form of its event (keys in JCS order) plus
 * '\n', so the hash of an event is the SHA-256 of its line's bytes as written: one
 * serialization per event, and a collector that keeps lines byte-for-byte lets anyone check
 * a link with standard tools. Producers with a fixed schema (the decision pipeline) write
 * that form directly; others hand an object to `appendObject`.
 *
 * Pure apart from the random id and hashing: no clock, no I/O. Not shared between
 * processes; one chain per running process (a restart starts a new chain).
 */
import { hash, randomUUID } from 'node:crypto';
import { canonicalize } from './jcs.js';

/** The chain fields the next event must carry. */
export interface ChainLink {
  readonly chain: string;
  readonly seq: number;
  /** Hash of the previous event; null only for seq 0. */
  readonly prev: string | null;
}

export const CHAIN_EVENT = 'hopguard.chain';
export const CHECKPOINT_EVENT = 'hopguard.checkpoint';

/** Lowercase hex SHA-256 of a canonical text (UTF-8). */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** Quotes a string exactly as JSON.stringify (and so JCS) does. */
export function jsonString(s: string): string {
  return JSON.stringify(s);
}

export class HashChain {
  readonly id: string;
  private nextSeq = 0;
  private prevHash: string | null = null;

  constructor(id: string = randomUUID()) {
    this.id = id;
  }

  /** The fields of the next event (read-only preview; `append` assigns them). */
  peek(): ChainLink {
    return { chain: this.id, seq: this.nextSeq, prev: this.prevHash };
  }

  /** Seq the next appended event gets (= number of events appended so far). */
  get length(): number {
    return this.nextSeq;
  }

  /** Hash of the last appended event (null before the first). */
  get head(): string | null {
    return this.prevHash;
  }

  /**
   * Appends one event. `build` receives the chain fields and returns the event's canonical
   * JSON text (JCS, no trailing newline) with exactly those fields; the text is hashed and
   * becomes the next event's `prev`. Returns the line to write (text + '\n').
   * If `build` throws, nothing is appended.
   */
  append(build: (link: ChainLink) => string): string {
    const text = build({ chain: this.id, seq: this.nextSeq, prev: this.prevHash });
    this.prevHash = sha256Hex(text);
    this.nextSeq++;
    return text + '\n';
  }

  /**
   * Appends an event given as a plain JSON object (any producer: exchange events, the
   * start event, checkpoints). `chain`/`seq`/`prev` are set on a copy; the line is its JCS form.
   */
  appendObject(event: Readonly<Record<string, unknown>>): string {
    return this.append((link) => canonicalize({ ...event, chain: link.chain, seq: link.seq, prev: link.prev }));
  }
}
