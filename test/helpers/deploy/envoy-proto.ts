/**
 * Strict validation of Envoy YAML against Envoy's OFFICIAL protos (devDependency
 * @grpc/grpc-js-xds ships them under deps/), the way Envoy itself reads a bootstrap:
 * YAML → JSON → protobuf (proto3 JSON mapping).
 *
 * protobufjs' fromObject silently drops unknown keys and never looks inside an Any, so it
 * cannot catch a misspelled field. `checkJson` walks the JSON against the reflected message
 * type instead: every key must be a field (snake_case, as written in the protos), every
 * `typed_config` Any is resolved by its `@type` to the real message type and checked the
 * same way (nested Anys and xDS TypedStructs included), value types follow the proto3 JSON
 * mapping (Duration strings, wrappers as bare scalars, enums by name), and oneofs hold at
 * most one member. On top of that it enforces the protoc-gen-validate rules Envoy applies on
 * load that matter for hand-written config (required messages and oneofs, string lengths,
 * numeric and duration bounds, list sizes, const/in), and rejects deprecated fields and enum
 * values (Envoy refuses or warns about them). Rules outside that subset are not checked.
 *
 * `toProto` then converts the checked JSON to protobufjs' object form (Anys packed with the
 * bytes of their real type), encodes it and decodes it again, so the result is the message
 * Envoy would hold; `unpackAnys` makes decoded Anys readable for assertions.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const DEPS_DIR = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const INCLUDE_DIRS = [
  ...['envoy-api', 'googleapis', 'xds', 'protoc-gen-validate'].map((d) => path.join(DEPS_DIR, d)),
  // google/protobuf/descriptor.proto (custom options) ships with protobufjs itself.
  path.dirname(require.resolve('protobufjs/package.json')),
];

/**
 * Every proto whose messages our Envoy YAML uses, directly or as a typed_config. An `@type`
 * from a file missing here is reported as unknown, so adding an extension to envoy.yaml
 * means adding its proto here: the test fails until then.
 */
export const ENVOY_PROTOS: readonly string[] = Object.freeze([
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/health_check/v3/health_check.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/formatter/req_without_query/v3/req_without_query.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto',
  'xds/type/v3/typed_struct.proto',
  'udpa/type/v1/typed_struct.proto',
]);

let cachedRoot: protobuf.Root | undefined;

/** Envoy's protos, loaded once per process (field names kept in snake_case). */
export function envoyRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of INCLUDE_DIRS) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return target; // protobufjs' bundled google/protobuf/*.proto
  };
  root.loadSync([...ENVOY_PROTOS], { keepCase: true });
  root.resolveAll();
  cachedRoot = root;
  return root;
}

export interface ProtoIssue {
  /** JSON path such as `static_resources.listeners[0].name`. */
  readonly path: string;
  readonly message: string;
}

const TYPE_URL_PREFIX = 'type.googleapis.com/';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Rules = ReadonlyMap<string, unknown>;
const NO_RULES: Rules = new Map();

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const WRAPPERS: Readonly<Record<string, string>> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** Message types whose proto3 JSON form is not an object of their fields. */
const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
]);

const INT32_KINDS = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32_KINDS = new Set(['uint32', 'fixed32']);
const INT64_KINDS = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64_KINDS = new Set(['uint64', 'fixed64']);

/** PGV rule keys of one field, without the `(validate.rules).` prefix. */
function rulesOf(options: Record<string, unknown> | undefined): Rules {
  if (!options) return NO_RULES;
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(options)) {
    if (k.startsWith('(validate.rules).')) out.set(k.slice('(validate.rules).'.length), v);
  }
  return out.size === 0 ? NO_RULES : out;
}

/** The rules under `prefix.` (e.g. `repeated.items.`), re-keyed without it. */
function subRules(rules: Rules, prefix: string): Rules {
  if (rules.size === 0) return NO_RULES;
  const out = new Map<string, unknown>();
  for (const [k, v] of rules) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out.size === 0 ? NO_RULES : out;
}

function shortName(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, '');
}

/** Parses a proto3 JSON Duration ("0.25s") into seconds and nanos. */
export function parseDuration(s: string): { seconds: number; nanos: number } | undefined {
  const m = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(s);
  if (!m) return undefined;
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  if (seconds > 315_576_000_000) return undefined;
  const nanos = Number((m[3] ?? '').padEnd(9, '0') || '0');
  return { seconds: sign * seconds, nanos: sign * nanos };
}

function durationRuleValue(rules: Rules, rule: string): number | undefined {
  const s = rules.get(`${rule}.seconds`);
  const n = rules.get(`${rule}.nanos`);
  if (s === undefined && n === undefined) return undefined;
  return Number(s ?? 0) + Number(n ?? 0) / 1e9;
}

class Checker {
  readonly issues: ProtoIssue[] = [];
  constructor(private readonly root: protobuf.Root) {}

  issue(p: string, message: string): void {
    this.issues.push({ path: p || '(root)', message });
  }

  lookupTypeUrl(typeUrl: unknown, p: string): protobuf.Type | undefined {
    if (typeof typeUrl !== 'string' || !typeUrl.startsWith(TYPE_URL_PREFIX)) {
      this.issue(p, `expected a type URL "${TYPE_URL_PREFIX}<message>", got ${describe(typeUrl)}`);
      return undefined;
    }
    const name = typeUrl.slice(TYPE_URL_PREFIX.length);
    try {
      return this.root.lookupType(name);
    } catch {
      this.issue(p, `unknown message type ${JSON.stringify(name)} (misspelled, or its proto is not in ENVOY_PROTOS)`);
      return undefined;
    }
  }

  message(type: protobuf.Type, v: unknown, p: string, rules: Rules = NO_RULES): void {
    const full = shortName(type);
    if (SPECIAL_JSON.has(full)) {
      this.specialJson(full, v, p, rules);
      return;
    }
    if (full === 'google.protobuf.Any') {
      this.any(v, p);
      return;
    }
    if (!isObject(v)) {
      this.issue(p, `expected an object (${full}), got ${describe(v)}`);
      return;
    }
    this.fields(type, v, p, new Set());
    if (full === 'xds.type.v3.TypedStruct' || full === 'udpa.type.v1.TypedStruct') {
      // Envoy unpacks a TypedStruct into the message its type_url names: check that too.
      const inner = this.lookupTypeUrl(v['type_url'], `${p}.type_url`);
      if (inner && v['value'] !== undefined) this.message(inner, v['value'], `${p}.value`);
    }
  }

  private any(v: unknown, p: string): void {
    if (!isObject(v)) {
      this.issue(p, `expected an object with "@type" (google.protobuf.Any), got ${describe(v)}`);
      return;
    }
    const inner = this.lookupTypeUrl(v['@type'], `${p}.@type`);
    if (!inner) return;
    if (SPECIAL_JSON.has(shortName(inner))) {
      for (const k of Object.keys(v)) if (k !== '@type' && k !== 'value') this.issue(`${p}.${k}`, 'unknown field');
      this.specialJson(shortName(inner), v['value'], `${p}.value`, NO_RULES);
      return;
    }
    this.message(inner, Object.fromEntries(Object.entries(v).filter(([k]) => k !== '@type')), p);
  }

  private fields(type: protobuf.Type, v: Record<string, unknown>, p: string, ignore: ReadonlySet<string>): void {
    const full = shortName(type);
    const oneofSeen = new Map<string, string>();
    for (const [key, val] of Object.entries(v)) {
      if (ignore.has(key)) continue;
      const fp = p ? `${p}.${key}` : key;
      const field = type.fields[key];
      if (!field) {
        this.issue(fp, `unknown field ${JSON.stringify(key)} in ${full}${this.suggest(type, key)}`);
        continue;
      }
      if (field.options?.['deprecated'] === true) this.issue(fp, `deprecated field of ${full}`);
      if (val === null) {
        this.issue(fp, 'null (an empty YAML value): remove the key or give it a value');
        continue;
      }
      if (field.partOf) {
        const other = oneofSeen.get(field.partOf.name);
        if (other !== undefined) {
          this.issue(fp, `oneof ${field.partOf.name}: both ${JSON.stringify(other)} and ${JSON.stringify(key)} are set`);
        }
        oneofSeen.set(field.partOf.name, key);
      }
      this.field(field, val, fp);
    }
    for (const field of type.fieldsArray) {
      // A rule on a oneof member applies only when that member is the one set.
      if (field.partOf) continue;
      const r = rulesOf(field.options);
      if ((r.get('message.required') === true || r.get('any.required') === true || r.get('duration.required') === true) && v[field.name] === undefined) {
        this.issue(p ? `${p}.${field.name}` : field.name, `required by ${full}`);
      }
    }
    for (const oneof of type.oneofsArray) {
      if (oneof.options?.['(validate.required)'] === true && !oneof.oneof.some((n) => v[n] !== undefined)) {
        this.issue(p, `${full} requires one of: ${oneof.oneof.join(', ')}`);
      }
    }
  }

  private suggest(type: protobuf.Type, key: string): string {
    const camelHit = type.fieldsArray.find((f) => f.name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()) === key);
    if (camelHit && camelHit.name !== key) return ` (write it in snake_case: ${camelHit.name})`;
    let best: string | undefined;
    let bestD = 3;
    for (const f of type.fieldsArray) {
      const d = editDistance(key, f.name);
      if (d < bestD) {
        best = f.name;
        bestD = d;
      }
    }
    return best ? ` (did you mean ${best}?)` : '';
  }

  private field(field: protobuf.Field, val: unknown, p: string): void {
    field.resolve();
    const rules = rulesOf(field.options);
    if (field instanceof protobuf.MapField) {
      if (!isObject(val)) {
        this.issue(p, `expected a map (object), got ${describe(val)}`);
        return;
      }
      const n = Object.keys(val).length;
      const minPairs = rules.get('map.min_pairs');
      if (minPairs !== undefined && n < Number(minPairs)) this.issue(p, `must have at least ${String(minPairs)} entries`);
      const keyRules = subRules(rules, 'map.keys.');
      const valueRules = subRules(rules, 'map.values.');
      for (const [k, item] of Object.entries(val)) {
        this.scalar(field.keyType, k === '' && field.keyType === 'string' ? k : mapKey(field.keyType, k), `${p}[${JSON.stringify(k)}]`, keyRules);
        this.single(field, item, `${p}.${k}`, valueRules);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(val)) {
        this.issue(p, `expected a list, got ${describe(val)}`);
        return;
      }
      const min = rules.get('repeated.min_items');
      const max = rules.get('repeated.max_items');
      if (min !== undefined && val.length < Number(min)) this.issue(p, `must have at least ${String(min)} item(s)`);
      if (max !== undefined && val.length > Number(max)) this.issue(p, `must have at most ${String(max)} item(s)`);
      if (rules.get('repeated.unique') === true && new Set(val.map((x) => JSON.stringify(x))).size !== val.length) {
        this.issue(p, 'items must be unique');
      }
      const itemRules = subRules(rules, 'repeated.items.');
      val.forEach((item, i) => this.single(field, item, `${p}[${i}]`, itemRules));
      return;
    }
    this.single(field, val, p, rules);
  }

  private single(field: protobuf.Field, val: unknown, p: string, rules: Rules): void {
    if (val === null && !(field.resolvedType instanceof protobuf.Type && shortName(field.resolvedType) === 'google.protobuf.Value')) {
      this.issue(p, 'null is not a value here');
      return;
    }
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) {
      this.message(rt, val, p, rules);
    } else if (rt instanceof protobuf.Enum) {
      this.enumValue(rt, val, p, rules);
    } else {
      this.scalar(field.type, val, p, rules);
    }
  }

  private enumValue(e: protobuf.Enum, val: unknown, p: string, rules: Rules): void {
    const ename = shortName(e);
    if (ename === 'google.protobuf.NullValue') {
      if (val !== null) this.issue(p, 'expected null');
      return;
    }
    let name: string | undefined;
    if (typeof val === 'string') {
      if (!(val in e.values)) {
        this.issue(p, `unknown ${ename} value ${JSON.stringify(val)}; expected one of ${Object.keys(e.values).join(', ')}`);
        return;
      }
      name = val;
    } else if (typeof val === 'number' && Number.isInteger(val)) {
      name = e.valuesById[val];
      if (name === undefined && rules.get('enum.defined_only') === true) {
        this.issue(p, `${val} is not a defined ${ename} value`);
        return;
      }
    } else {
      this.issue(p, `expected a ${ename} name, got ${describe(val)}`);
      return;
    }
    if (name !== undefined && e.valuesOptions?.[name]?.['deprecated'] === true) {
      this.issue(p, `deprecated ${ename} value ${name}`);
    }
    const num = name !== undefined ? e.values[name] : (val as number);
    const notIn = rules.get('enum.not_in');
    if (notIn !== undefined && ([] as unknown[]).concat(notIn).includes(num)) this.issue(p, `${String(name ?? num)} is not allowed here`);
  }

  private specialJson(full: string, v: unknown, p: string, rules: Rules): void {
    const wrapped = WRAPPERS[full];
    if (wrapped !== undefined) {
      // Wrapper fields carry the wrapped scalar's PGV rules (e.g. uint32.gt on UInt32Value).
      this.scalar(wrapped, v, p, rules);
      return;
    }
    switch (full) {
      case 'google.protobuf.Duration': {
        const d = typeof v === 'string' ? parseDuration(v) : undefined;
        if (!d) {
          this.issue(p, `expected a duration such as "0.25s" or "5s", got ${describe(v)}`);
          return;
        }
        const secs = d.seconds + d.nanos / 1e9;
        const bounds: [string, (x: number, b: number) => boolean, string][] = [
          ['duration.gt', (x, b) => x > b, 'greater than'],
          ['duration.gte', (x, b) => x >= b, 'at least'],
          ['duration.lt', (x, b) => x < b, 'less than'],
          ['duration.lte', (x, b) => x <= b, 'at most'],
        ];
        for (const [rule, ok, words] of bounds) {
          const b = durationRuleValue(rules, rule);
          if (b !== undefined && !ok(secs, b)) this.issue(p, `must be ${words} ${b}s`);
        }
        return;
      }
      case 'google.protobuf.Timestamp':
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) this.issue(p, `expected an RFC 3339 timestamp, got ${describe(v)}`);
        return;
      case 'google.protobuf.Struct':
        if (!isObject(v)) this.issue(p, `expected an object (google.protobuf.Struct), got ${describe(v)}`);
        return;
      case 'google.protobuf.ListValue':
        if (!Array.isArray(v)) this.issue(p, `expected a list (google.protobuf.ListValue), got ${describe(v)}`);
        return;
      case 'google.protobuf.Value':
        return; // any JSON
      case 'google.protobuf.FieldMask':
        if (typeof v !== 'string') this.issue(p, `expected a field mask string, got ${describe(v)}`);
        return;
    }
  }

  scalar(kind: string, v: unknown, p: string, allRules: Rules): void {
    const rules = subRules(allRules, `${kind === 'float' ? 'float' : kind}.`);
    switch (kind) {
      case 'bool':
        if (typeof v !== 'boolean') {
          this.issue(p, `expected true or false, got ${describe(v)}`);
          return;
        }
        if (rules.has('const') && v !== rules.get('const')) this.issue(p, `must be ${String(rules.get('const'))}`);
        return;
      case 'string':
        if (typeof v !== 'string') {
          this.issue(p, `expected a string, got ${describe(v)}`);
          return;
        }
        this.stringRules(v, p, rules);
        return;
      case 'bytes':
        if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) this.issue(p, `expected base64 bytes, got ${describe(v)}`);
        return;
      case 'double':
      case 'float': {
        const n = typeof v === 'number' ? v : typeof v === 'string' && /^(NaN|-?Infinity)$/.test(v) ? Number(v) : undefined;
        if (n === undefined) {
          this.issue(p, `expected a number, got ${describe(v)}`);
          return;
        }
        this.numberRules(n, p, rules);
        return;
      }
    }
    const isInt = INT32_KINDS.has(kind) || UINT32_KINDS.has(kind) || INT64_KINDS.has(kind) || UINT64_KINDS.has(kind);
    if (!isInt) {
      this.issue(p, `unsupported scalar type ${kind}`);
      return;
    }
    let n: number | undefined;
    if (typeof v === 'number' && Number.isInteger(v)) n = v;
    else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = Number(v);
    if (n === undefined) {
      this.issue(p, `expected an integer, got ${describe(v)}`);
      return;
    }
    const unsigned = UINT32_KINDS.has(kind) || UINT64_KINDS.has(kind);
    const max = INT32_KINDS.has(kind) ? 2 ** 31 - 1 : UINT32_KINDS.has(kind) ? 2 ** 32 - 1 : Number.MAX_SAFE_INTEGER;
    if ((unsigned && n < 0) || n > max || (INT32_KINDS.has(kind) && n < -(2 ** 31))) {
      this.issue(p, `${n} is out of range for ${kind}`);
      return;
    }
    this.numberRules(n, p, rules);
  }

  private numberRules(n: number, p: string, rules: Rules): void {
    const checks: [string, (x: number, b: number) => boolean, string][] = [
      ['gt', (x, b) => x > b, 'greater than'],
      ['gte', (x, b) => x >= b, 'at least'],
      ['lt', (x, b) => x < b, 'less than'],
      ['lte', (x, b) => x <= b, 'at most'],
      ['const', (x, b) => x === b, 'exactly'],
    ];
    for (const [rule, ok, words] of checks) {
      const b = rules.get(rule);
      if (b !== undefined && !ok(n, Number(b))) this.issue(p, `must be ${words} ${String(b)}, got ${n}`);
    }
    const inList = rules.get('in');
    if (inList !== undefined && !([] as unknown[]).concat(inList).map(Number).includes(n)) this.issue(p, `must be one of ${String(inList)}`);
  }

  private stringRules(s: string, p: string, rules: Rules): void {
    if (rules.size === 0) return;
    const chars = [...s].length;
    const bytes = Buffer.byteLength(s);
    const minLen = rules.get('min_len');
    const maxLen = rules.get('max_len');
    const minBytes = rules.get('min_bytes');
    const maxBytes = rules.get('max_bytes');
    if (minLen !== undefined && chars < Number(minLen)) this.issue(p, `must be at least ${String(minLen)} character(s)`);
    if (maxLen !== undefined && chars > Number(maxLen)) this.issue(p, `must be at most ${String(maxLen)} characters`);
    if (minBytes !== undefined && bytes < Number(minBytes)) this.issue(p, `must be at least ${String(minBytes)} byte(s)`);
    if (maxBytes !== undefined && bytes > Number(maxBytes)) this.issue(p, `must be at most ${String(maxBytes)} bytes`);
    const prefix = rules.get('prefix');
    if (typeof prefix === 'string' && !s.startsWith(prefix)) this.issue(p, `must start with ${JSON.stringify(prefix)}`);
    const inList = rules.get('in');
    if (inList !== undefined && !([] as unknown[]).concat(inList).includes(s)) this.issue(p, `must be one of ${String(inList)}`);
    const wkr = rules.get('well_known_regex');
    const strict = rules.get('strict') !== false;
    if (!(rules.get('ignore_empty') === true && s === '')) {
      if ((wkr === 'HTTP_HEADER_NAME' || wkr === 1) && !(strict ? /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/ : /^[^\0\n\r]+$/).test(s)) {
        this.issue(p, `not a valid HTTP header name: ${JSON.stringify(s)}`);
      }
      // eslint-disable-next-line no-control-regex -- Envoy's header-value rule is about control characters
      if ((wkr === 'HTTP_HEADER_VALUE' || wkr === 2) && !(strict ? /^[^\0-\x08\x0A-\x1F\x7F]*$/ : /^[^\0\n\r]*$/).test(s)) {
        this.issue(p, `not a valid HTTP header value: ${JSON.stringify(s)}`);
      }
    }
  }
}

function mapKey(keyType: string, k: string): unknown {
  if (keyType === 'bool') return k === 'true' ? true : k === 'false' ? false : k;
  return k;
}

/** Optimal-string-alignment distance, capped: only used for "did you mean" hints. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      let v = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** Every problem with `json` as the message `typeName`; empty when Envoy would accept it. */
export function checkJson(typeName: string, json: unknown, root: protobuf.Root = envoyRoot()): ProtoIssue[] {
  const c = new Checker(root);
  c.message(root.lookupType(typeName), json, '');
  return c.issues;
}

// ------------------------------------------------------------------------------------------
// JSON → protobufjs object form → binary → decoded message.

/**
 * google.protobuf.Value in protobufjs' object form. protobufjs bundles struct.proto with
 * camelCase field names (stringValue) whatever keepCase says, so take the names from the
 * loaded type rather than assuming either spelling.
 */
function toPbValue(root: protobuf.Root, v: Json): Record<string, unknown> {
  const fields = root.lookupType('google.protobuf.Value').fields;
  const name = (snake: string) => (snake in fields ? snake : snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
  if (v === null) return { [name('null_value')]: 0 };
  if (typeof v === 'number') return { [name('number_value')]: v };
  if (typeof v === 'string') return { [name('string_value')]: v };
  if (typeof v === 'boolean') return { [name('bool_value')]: v };
  if (Array.isArray(v)) return { [name('list_value')]: { values: v.map((x) => toPbValue(root, x)) } };
  return { [name('struct_value')]: toPbStruct(root, v) };
}

function toPbStruct(root: protobuf.Root, v: Record<string, Json>): Record<string, unknown> {
  return { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPbValue(root, x)])) };
}

function toPbObject(root: protobuf.Root, type: protobuf.Type, v: unknown): unknown {
  const full = shortName(type);
  if (WRAPPERS[full] !== undefined) return { value: WRAPPERS[full] === 'bytes' ? Buffer.from(String(v), 'base64') : v };
  switch (full) {
    case 'google.protobuf.Duration':
    case 'google.protobuf.Timestamp': {
      if (full === 'google.protobuf.Timestamp') {
        const ms = Date.parse(String(v));
        return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
      }
      return parseDuration(String(v));
    }
    case 'google.protobuf.Struct':
      return toPbStruct(root, v as Record<string, Json>);
    case 'google.protobuf.Value':
      return toPbValue(root, v as Json);
    case 'google.protobuf.ListValue':
      return { values: (v as Json[]).map((x) => toPbValue(root, x)) };
    case 'google.protobuf.FieldMask':
      return { paths: String(v).split(',').filter(Boolean) };
    case 'google.protobuf.Any': {
      const obj = v as Record<string, unknown>;
      const typeUrl = String(obj['@type']);
      const inner = root.lookupType(typeUrl.slice(TYPE_URL_PREFIX.length));
      const body = SPECIAL_JSON.has(shortName(inner))
        ? obj['value']
        : Object.fromEntries(Object.entries(obj).filter(([k]) => k !== '@type'));
      return { type_url: typeUrl, value: encode(root, inner, body) };
    }
  }
  const obj = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(obj)) {
    const field = type.fields[k];
    if (!field) continue; // checkJson has already reported it
    field.resolve();
    const conv = (x: unknown): unknown => (field.resolvedType instanceof protobuf.Type ? toPbObject(root, field.resolvedType, x) : x);
    if (field instanceof protobuf.MapField) {
      out[k] = Object.fromEntries(Object.entries(val as Record<string, unknown>).map(([mk, mv]) => [mk, conv(mv)]));
    } else if (field.repeated) {
      out[k] = (val as unknown[]).map(conv);
    } else {
      out[k] = conv(val);
    }
  }
  return out;
}

function encode(root: protobuf.Root, type: protobuf.Type, json: unknown): Uint8Array {
  const obj = toPbObject(root, type, json) as Record<string, unknown>;
  const problem = type.verify(type.fromObject(obj));
  if (problem) throw new Error(`${shortName(type)}: ${problem}`);
  return type.encode(type.fromObject(obj)).finish();
}

/**
 * Encodes checked JSON as `typeName` and decodes it again: the message Envoy would hold,
 * as a plain object (snake_case keys, enums by name, 64-bit integers as strings).
 */
export function toProto(typeName: string, json: unknown, root: protobuf.Root = envoyRoot()): Record<string, unknown> {
  const type = root.lookupType(typeName);
  const bytes = encode(root, type, json);
  return type.toObject(type.decode(bytes), { enums: String, longs: String, bytes: Array, defaults: false, oneofs: false });
}

/** Replaces every decoded Any ({type_url, value}) by its decoded message plus `@type`. */
export function unpackAnys(v: unknown, root: protobuf.Root = envoyRoot()): unknown {
  if (Array.isArray(v)) return v.map((x) => unpackAnys(x, root));
  if (!isObject(v)) return v;
  if (typeof v['type_url'] === 'string' && Object.keys(v).every((k) => k === 'type_url' || k === 'value')) {
    const typeUrl = v['type_url'];
    const inner = root.lookupType(typeUrl.slice(TYPE_URL_PREFIX.length));
    const decoded = inner.toObject(inner.decode(Uint8Array.from((v['value'] as number[] | undefined) ?? [])), {
      enums: String,
      longs: String,
      bytes: Array,
      defaults: false,
    });
    return { '@type': typeUrl, ...(unpackAnys(decoded, root) as Record<string, unknown>) };
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unpackAnys(x, root)]));
}
