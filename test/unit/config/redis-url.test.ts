import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../../src/config/redis-url.js';

describe('parseRedisUrl', () => {
  it.each([
    ['redis://hopguard-replay.hopguard.svc:6379/0', { tls: false, host: 'hopguard-replay.hopguard.svc', port: 6379, database: 0, username: undefined, password: undefined }],
    ['redis://cache', { tls: false, host: 'cache', port: 6379, database: 0 }],
    ['redis://cache/', { host: 'cache', database: 0 }],
    ['rediss://cache:6380/2', { tls: true, host: 'cache', port: 6380, database: 2 }],
    ['redis://:s3cret@cache/0', { username: undefined, password: 's3cret' }],
    ['redis://hopguard:p%40ss%3Aword@cache/0', { username: 'hopguard', password: 'p@ss:word' }],
    ['redis://hopguard@cache/0', { username: 'hopguard', password: undefined }],
    ['redis://[::1]:7000/1', { host: '::1', port: 7000, database: 1 }],
    ['redis://127.0.0.1:7000', { host: '127.0.0.1', port: 7000 }],
  ])('%s', (url, expected) => {
    const r = parseRedisUrl(url);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.target).toMatchObject(expected);
  });

  it.each([
    ['redis://:s3cret@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['rediss://hopguard:p%40ss@cache/4', 'rediss://hopguard:***@cache:6379/4'],
    ['redis://hopguard@cache', 'redis://hopguard@cache:6379/0'],
    ['redis://[::1]:7000', 'redis://[::1]:7000/0'],
  ])('display of %s hides the password: %s', (url, display) => {
    const r = parseRedisUrl(url);
    expect(r.ok && r.target.display).toBe(display);
  });

  it.each([
    ['cache:6379', /redis:\/\//],
    ['http://cache:6379', /redis:\/\/ or rediss:\/\//],
    ['unix:///run/redis.sock', /redis:\/\/ or rediss:\/\//],
    ['redis://', /host/],
    ['redis://cache/zero', /database number/],
    ['redis://cache/0/1', /database number/],
    ['redis://cache/-1', /database number/],
    ['redis://cache/0?tls=true', /query/],
    ['redis://cache/0#x', /fragment/],
    ['redis://cache:99999/0', /URL/],
    ['redis://u:%ZZpass@cache/0', /percent-encoding/],
  ])('rejects %s', (url, problem) => {
    const r = parseRedisUrl(url);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toMatch(problem);
  });

  it('never echoes the URL (it may hold a password) in a problem', () => {
    for (const url of ['redis://:hunter2-secret@cache/zero', 'redis://:hunter2-secret@cache/0?x=1', 'ftp://:hunter2-secret@cache/', 'redis://:hunter2-secret@:bad:port/']) {
      const r = parseRedisUrl(url);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.problem).not.toContain('hunter2');
    }
  });
});
