import { createHash } from 'node:crypto';

/**
 * Hex SHA-256 of the raw token text (UTF-8): lets events and SREs correlate a token
 * across hops and logs without ever recording the token itself.
 */
export function tokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
