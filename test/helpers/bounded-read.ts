import { BoundedReadError } from '../../src/lib/bounded-read.js';

/** 'ok', or the BoundedReadError's code (anything else is rethrown). */
export async function readCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof BoundedReadError) return e.code;
    throw e;
  }
}
