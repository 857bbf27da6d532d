import type { Server } from 'node:net';

/**
 * Binds `server` and resolves once it listens, or rejects with the bind error (EADDRINUSE,
 * EACCES…); later errors go to `onError`. One definition for every HTTP(S) listener
 * (admin, the STS's token endpoint).
 */
export async function listen(server: Server, port: number, host: string, onError?: (err: Error) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error): void => reject(err);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  server.on('error', (err) => onError?.(err));
}
