import { canonicalProblem, stripQuery } from './path.js';
import type { HopRequest } from './types.js';

/** A HopRequest without the facts hopRequest() computes. */
export type HopRequestInit = Omit<HopRequest, 'pathNoQuery' | 'pathProblem'>;

/**
 * A HopRequest from its raw parts, with each derived request fact computed once: the
 * query-less path and its canonicality. The Envoy adapter (src/envoy/request.ts) builds the
 * same shape directly, in the same field order (one hidden class for every request).
 */
export function hopRequest(init: HopRequestInit): HopRequest {
  const pathNoQuery = stripQuery(init.path);
  return {
    method: init.method,
    path: init.path,
    pathNoQuery,
    pathProblem: canonicalProblem(pathNoQuery),
    tokenFromHeaders: init.tokenFromHeaders,
    tokenFromHeaderMap: init.tokenFromHeaderMap,
    caller: init.caller,
    callerCertificate: init.callerCertificate,
    contextExtensions: init.contextExtensions,
    requestId: init.requestId,
    traceId: init.traceId,
  };
}
