import { describe, expect, it } from 'vitest';
import { HealthState } from '../../../src/envoy/health.js';

describe('HealthState', () => {
  it('answers for "" and the ext_authz service only', () => {
    const h = new HealthState(true);
    expect(h.status('')).toBe('SERVING');
    expect(h.status('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    expect(h.status('grpc.health.v1.Health')).toBeUndefined();
    expect(h.status('envoy.service.auth.v3.authorization')).toBeUndefined();
    h.setServing(false);
    expect(h.status('')).toBe('NOT_SERVING');
    expect(h.serving).toBe(false);
  });

  it('defaults to NOT_SERVING', () => {
    expect(new HealthState().status('')).toBe('NOT_SERVING');
  });

  it('notifies on changes only, survives a throwing listener, and unsubscribes', () => {
    const h = new HealthState(false);
    const calls: boolean[] = [];
    h.onChange(() => {
      throw new Error('broken watcher');
    });
    const off = h.onChange(() => calls.push(h.serving));
    h.setServing(false);
    h.setServing(true);
    h.setServing(true);
    off();
    h.setServing(false);
    expect(calls).toEqual([true]);
  });
});
