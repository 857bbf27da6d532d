/**
 * The server's own grpc.health.v1 codecs (src/envoy/services.ts) against proto-loader's
 * definitions of the same .proto (src/envoy/proto.ts, what `hopguard call` and Envoy-side
 * tooling use): every answer encodes to the same bytes, and every request proto-loader can
 * write (plus unknown fields) decodes to the same message. Malformed bytes are refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/envoy/decode.js';
import { EncodeError } from '../../src/envoy/encode.js';
import { healthServiceDefinition as reference, type HealthCheckResponseMsg, type ServingStatusName } from '../../src/envoy/proto.js';
import { decodeHealthCheckRequest, encodeHealthCheckResponse, healthServiceDefinition } from '../../src/envoy/services.js';

const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};
const refCheck = reference['Check']!;
const STATUSES: readonly ServingStatusName[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

describe('grpc.health.v1 lean codecs', () => {
  it.each(STATUSES)('HealthCheckResponse %s: the same bytes as proto-loader (UNKNOWN, the default, omitted), and they decode back', (status) => {
    const ours = encodeHealthCheckResponse({ status });
    // protobufjs writes an explicitly set 0; proto3's canonical form (ours) omits it.
    expect(ours.toString('hex')).toBe(status === 'UNKNOWN' ? '' : refCheck.responseSerialize({ status }).toString('hex'));
    const back = refCheck.responseDeserialize(ours) as Partial<HealthCheckResponseMsg>;
    expect(back.status ?? 'UNKNOWN').toBe(status);
  });

  it('refuses a status it does not know (no silent UNKNOWN)', () => {
    expect(() => encodeHealthCheckResponse({ status: 'MAYBE' as ServingStatusName })).toThrow(EncodeError);
    expect(() => encodeHealthCheckResponse(undefined as unknown as HealthCheckResponseMsg)).toThrow(EncodeError);
  });

  it('HealthCheckRequest: whatever proto-loader writes decodes to the same service name', () => {
    fc.assert(
      fc.property(fc.option(fc.string({ unit: 'grapheme', maxLength: 40 }), { nil: undefined }), (service) => {
        const msg = service === undefined ? {} : { service };
        const bytes = refCheck.requestSerialize(msg);
        expect(decodeHealthCheckRequest(bytes)).toEqual(refCheck.requestDeserialize(bytes));
      }),
      { numRuns: 300, ...SEED },
    );
  });

  it('HealthCheckRequest: unknown fields are skipped; a repeated field 1 keeps the last (protobuf rule)', () => {
    // field 2 varint 7, field 1 "a", field 3 bytes "xyz", field 1 "envoy"
    const bytes = Buffer.from([0x10, 0x07, 0x0a, 0x01, 0x61, 0x1a, 0x03, 0x78, 0x79, 0x7a, 0x0a, 0x05, ...Buffer.from('envoy')]);
    expect(decodeHealthCheckRequest(bytes)).toEqual({ service: 'envoy' });
    expect(refCheck.requestDeserialize(bytes)).toMatchObject({ service: 'envoy' });
  });

  it.each([
    ['a truncated length', [0x0a, 0x05, 0x61]],
    ['a truncated tag varint', [0x80]],
    ['field number 0', [0x02, 0x00]],
  ])('HealthCheckRequest: refuses %s with a DecodeError naming the message', (_, b) => {
    let err: unknown;
    try {
      decodeHealthCheckRequest(Buffer.from(b));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as Error).message).toMatch(/^HealthCheckRequest /);
  });

  it('serves the same paths and streaming shapes as the .proto', () => {
    for (const name of ['Check', 'Watch']) {
      const ours = healthServiceDefinition[name]!;
      const ref = reference[name]!;
      expect([ours.path, ours.requestStream, ours.responseStream]).toEqual([ref.path, ref.requestStream, ref.responseStream]);
    }
  });
});
