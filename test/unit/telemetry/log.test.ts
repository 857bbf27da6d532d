import { describe, expect, it } from 'vitest';
import { Logger } from '../../../src/telemetry/log.js';

function capture(level: 'debug' | 'info' | 'warn' | 'error') {
  const lines: string[] = [];
  const logger = new Logger(level, { write: (l) => void lines.push(l) });
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, records };
}

describe('operational log', () => {
  it('one JSON line per record, event "hopguard.log" (never the decision schema), level, ts, msg, fields', () => {
    const { logger, lines, records } = capture('info');
    logger.info('serving', { grpc: 9191 });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith('\n')).toBe(true);
    const r = records()[0];
    expect(r).toMatchObject({ event: 'hopguard.log', level: 'info', msg: 'serving', grpc: 9191 });
    expect(typeof r?.ts).toBe('string');
    expect(r).not.toHaveProperty('v');
  });

  it.each([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
  ] as const)('log.level %s emits %j', (level, want) => {
    const { logger, records } = capture(level);
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records().map((r) => r.level)).toEqual(want);
  });

  it('setLevel applies to the next record (config reload)', () => {
    const { logger, records } = capture('warn');
    logger.info('hidden');
    logger.setLevel('debug');
    logger.debug('shown');
    expect(records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('errors become {message, code} (no stack) and bigints strings', () => {
    const { logger, records } = capture('info');
    const err = Object.assign(new Error('JWKS fetch failed'), { code: 'network' });
    logger.error('fault', { err, n: 12n });
    const r = records()[0];
    expect(r?.err).toEqual({ message: 'JWKS fetch failed', code: 'network' });
    expect(r?.n).toBe('12');
    expect(JSON.stringify(r)).not.toContain('    at ');
  });

  it('fields cannot overwrite the envelope (event, level, ts, msg)', () => {
    const { logger, records } = capture('info');
    logger.info('real', { event: 'hopguard.decision', level: 'error', msg: 'fake', ts: 'then', other: 1 });
    expect(records()[0]).toMatchObject({ event: 'hopguard.log', level: 'info', msg: 'real', other: 1 });
    expect(records()[0]?.ts).not.toBe('then');
  });

  it('an unserializable field still produces a line', () => {
    const { logger, records } = capture('info');
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    logger.warn('odd', { loop });
    expect(records()[0]).toMatchObject({ event: 'hopguard.log', level: 'warn', msg: 'odd' });
  });
});
