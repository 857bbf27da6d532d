/**
 * Streams the lines of an NDJSON file, plain or gzip (recognized by its magic bytes, not its
 * name; concatenated gzip members included), in bounded memory: one read buffer plus at
 * most `maxLineBytes` of a line split across reads. A longer line is skipped whole and
 * reported as such, never buffered.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

/** Called per line (without '\n' or a trailing '\r'); `text` is undefined for an overlong line. */
export type LineHandler = (text: string | undefined, lineNo: number) => void | Promise<void>;

async function isGzip(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * Calls `onLine` for every line of `file`, awaiting it only when it returns a promise.
 * Resolves with the number of lines; rejects on a read or decompression error (after the
 * lines read until then were handled).
 */
export async function forEachLine(file: string, onLine: LineHandler, maxLineBytes = DEFAULT_MAX_LINE_BYTES): Promise<number> {
  const gz = await isGzip(file);
  const raw = createReadStream(file, { highWaterMark: READ_CHUNK });
  const stream: Readable = gz ? raw.pipe(createGunzip({ chunkSize: 256 * 1024 })) : raw;
  if (gz) raw.on('error', (err) => stream.destroy(err));
  let carry: Buffer[] = [];
  let carryLen = 0;
  let skipping = false; // inside an overlong line: drop bytes until its end
  let lineNo = 0;

  const emit = (buf: Buffer, start: number, end: number): void | Promise<void> => {
    lineNo++;
    if (skipping) {
      skipping = false;
      return onLine(undefined, lineNo);
    }
    let text: string;
    if (carryLen > 0) {
      carry.push(buf.subarray(start, end));
      const whole = Buffer.concat(carry, carryLen + end - start);
      carry = [];
      carryLen = 0;
      if (whole.length > maxLineBytes) return onLine(undefined, lineNo);
      text = whole.toString('utf8');
    } else {
      if (end - start > maxLineBytes) return onLine(undefined, lineNo);
      text = buf.toString('utf8', start, end);
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return onLine(text, lineNo);
  };

  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl === -1) break;
      const r = emit(buf, pos, nl);
      if (r !== undefined) await r;
      pos = nl + 1;
    }
    if (pos < buf.length) {
      if (skipping) continue;
      const rest = buf.length - pos;
      if (carryLen + rest > maxLineBytes) {
        carry = [];
        carryLen = 0;
        skipping = true;
      } else {
        // Copy: the stream may reuse its buffer.
        carry.push(Buffer.from(buf.subarray(pos)));
        carryLen += rest;
      }
    }
  }
  // A last line without '\n' (a truncated tail or a file written without one).
  if (skipping) {
    lineNo++;
    const r = onLine(undefined, lineNo);
    if (r !== undefined) await r;
  } else if (carryLen > 0) {
    const r = emit(Buffer.alloc(0), 0, 0);
    if (r !== undefined) await r;
  }
  return lineNo;
}
