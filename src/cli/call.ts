import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { authorizationServiceDefinition, type CheckRequestMsg, type CheckResponseMsg } from '../envoy/proto.js';
import { parse, required, UsageError, type Io } from './flags.js';

export const CALL_USAGE =
  'hopguard call --addr HOST:PORT --token T --method M --path P --caller ID [--cert PEM_FILE] [--action A] [--header k=v ...] [--raw-headers] [--json]';

/** The HttpStatus enum decodes to its name for known values (enums: String). */
const HTTP_STATUS_NAMES: Record<string, number> = { Unauthorized: 401, Forbidden: 403, InternalServerError: 500, ServiceUnavailable: 503 };
function httpStatusNumber(code: unknown): unknown {
  return typeof code === 'string' ? (HTTP_STATUS_NAMES[code] ?? code) : code;
}

/**
 * Sends one CheckRequest, filled the way Envoy fills it, to a running hopguard and prints
 * what Envoy would do with the answer. For trying `hopguard dev` and for smoke tests.
 */
export async function callCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    addr: { type: 'string' },
    token: { type: 'string', short: 't' },
    'token-header': { type: 'string' },
    method: { type: 'string', short: 'm' },
    path: { type: 'string', short: 'p' },
    caller: { type: 'string' },
    cert: { type: 'string' },
    action: { type: 'string' },
    header: { type: 'string', multiple: true },
    'raw-headers': { type: 'boolean', default: false },
    timeout: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const addr = required(values.addr, 'addr');
  const method = required(values.method, 'method');
  const path = required(values.path, 'path');
  const headers: Record<string, string> = {
    ':authority': 'localhost',
    ':method': method,
    ':path': path,
    ':scheme': 'https',
    'x-request-id': `hopguard-call-${process.pid}-${Date.now()}`,
  };
  for (const h of values.header ?? []) {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new UsageError(`--header: expected name=value, got ${JSON.stringify(h)}`);
    headers[h.slice(0, eq).toLowerCase()] = h.slice(eq + 1);
  }
  if (values.token !== undefined) headers[(values['token-header'] ?? 'delegation-token').toLowerCase()] = values.token;

  const http: NonNullable<NonNullable<CheckRequestMsg['attributes']>['request']>['http'] = { method, path };
  if (values['raw-headers']) {
    http.header_map = { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
  } else {
    http.headers = headers;
  }
  const source: { principal?: string; certificate?: string } = {};
  if (values.caller) source.principal = values.caller;
  if (values.cert) source.certificate = encodeURIComponent(await readFile(values.cert, 'utf8'));
  const request: CheckRequestMsg = {
    attributes: {
      source,
      request: { http },
      context_extensions: values.action ? { action: values.action } : {},
    },
  };

  const Client = grpc.makeGenericClientConstructor(authorizationServiceDefinition, 'Authorization');
  const client = new Client(addr, grpc.credentials.createInsecure());
  const timeoutMs = Number(values.timeout ?? '5000');
  let res: CheckResponseMsg;
  try {
    res = await new Promise<CheckResponseMsg>((resolve, reject) => {
      (client as unknown as {
        Check(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: CheckResponseMsg) => void): void;
      }).Check(request, { deadline: Date.now() + timeoutMs }, (err, r) => (err ? reject(err) : resolve(r)));
    });
  } catch (err) {
    io.err(`hopguard call: ${addr}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  } finally {
    client.close();
  }

  const allowed = (res.status?.code ?? 0) === 0;
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(res.dynamic_metadata?.fields ?? {})) {
    const value = v as { stringValue?: string; boolValue?: boolean; numberValue?: number };
    meta[k] = value.stringValue ?? value.boolValue ?? value.numberValue ?? null;
  }
  const summary = allowed
    ? {
        allowed: true,
        grpc_status: res.status?.code ?? 0,
        upstream_headers: Object.fromEntries((res.ok_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value])),
        headers_to_remove: res.ok_response?.headers_to_remove ?? [],
        dynamic_metadata: meta,
      }
    : {
        allowed: false,
        grpc_status: res.status?.code,
        http_status: httpStatusNumber(res.denied_response?.status?.code),
        body: res.denied_response?.body,
        headers: Object.fromEntries((res.denied_response?.headers ?? []).map((h) => [h.header?.key, h.header?.value])),
        dynamic_metadata: meta,
      };
  if (values.json) {
    io.out(JSON.stringify(summary) + '\n');
  } else {
    const reason = meta.reason ?? '?';
    io.out(
      allowed
        ? `ALLOW (${reason}) — upstream headers: ${JSON.stringify(summary.upstream_headers)}\n`
        : `DENY ${summary.http_status} (${reason}) — body: ${summary.body}\n`,
    );
  }
  return allowed ? 0 : 1;
}
