import type { ExchangeError } from '../core/exchange-errors.js';

/**
 * What one token-endpoint request came to: the HTTP answer (status and JSON body) and the
 * facts of its exchange event. The adapter is the only place refusals map to HTTP bodies.
 */

/** Facts a request fills in as it goes; the event (telemetry/exchange.ts) is built from them. */
export interface ExchangeFacts {
  error?: string;
  reason: string;
  status: number;
  kind?: 'hop' | 'edge';
  caller?: string;
  sub?: string;
  txn?: string;
  subjectIss?: string;
  subjectJti?: string;
  audience?: string;
  jti?: string;
  grants?: number;
  exp?: number;
}

/** The answer of the token endpoint: status and JSON body, plus the event facts. */
export interface ExchangeAnswer {
  readonly status: number;
  readonly body: Readonly<Record<string, unknown>>;
  readonly facts: ExchangeFacts;
}

/** The JSON error body of SPEC §7 and its facts. */
export function errorAnswer(e: ExchangeError, facts: Omit<ExchangeFacts, 'error' | 'reason' | 'status'> = {}): ExchangeAnswer {
  return {
    status: e.status,
    body: { error: e.error, error_description: e.description, reason: e.reason },
    facts: { ...facts, error: e.error, reason: e.reason, status: e.status },
  };
}
