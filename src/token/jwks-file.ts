import { BoundedReadError, fileReader } from '../lib/bounded-read.js';
import { KeySourceError } from './key-source-results.js';

/**
 * How a `jwks_file` arrives: through symlinks (Kubernetes' atomic swap), by the process's
 * bounded reader (src/lib/bounded-read.ts): a regular file only (a FIFO, device or socket is
 * `read_failed` at once, never a blocked thread), at most `maxBytes` whatever stat says
 * (`too_large`), within `timeoutMs` (`timeout`), without taking more than its share of the
 * libuv pool WebCrypto verifies on. A read_failed error's `cause` carries the OS's words.
 */
export async function readJwksFile(path: string, maxBytes: number, timeoutMs: number, signal: AbortSignal): Promise<Uint8Array> {
  try {
    return await fileReader.read(path, { maxBytes, timeoutMs, signal });
  } catch (e) {
    if (!(e instanceof BoundedReadError)) throw new KeySourceError('read_failed', 'cannot read JWKS file: error', { cause: e });
    switch (e.code) {
      case 'too_large':
        throw new KeySourceError('too_large', `JWKS file over ${maxBytes} bytes (max_jwks_bytes)`);
      case 'timeout':
        throw new KeySourceError('timeout', `JWKS file read: ${e.message}`);
      case 'aborted':
        throw new KeySourceError('closed', 'key source closed');
      case 'not_regular':
        throw new KeySourceError('read_failed', `cannot read JWKS file: ${e.message}`, { cause: e });
      default:
        throw new KeySourceError('read_failed', `cannot read JWKS file: ${e.message}`, { cause: e.cause ?? e });
    }
  }
}
