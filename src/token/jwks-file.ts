import { readFile, stat } from 'node:fs/promises';
import { KeySourceError } from './key-source-results.js';

/**
 * How a `jwks_file` arrives: read through symlinks (Kubernetes' atomic swap), bounded in
 * size before and after the read. Throws KeySourceError `too_large` or `read_failed`.
 */
export async function readJwksFile(path: string, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    const st = await stat(path);
    if (st.size > maxBytes) throw new KeySourceError('too_large', `JWKS file over ${maxBytes} bytes (max_jwks_bytes)`);
    bytes = await readFile(path, { signal });
  } catch (e) {
    if (e instanceof KeySourceError) throw e;
    throw new KeySourceError('read_failed', `cannot read JWKS file: ${(e as { code?: string }).code ?? 'error'}`, { cause: e });
  }
  if (bytes.length > maxBytes) throw new KeySourceError('too_large', `JWKS file over ${maxBytes} bytes (max_jwks_bytes)`);
  return bytes;
}
