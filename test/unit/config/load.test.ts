import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatIssues } from '../../../src/config/issues.js';
import { expandString, loadConfigFile, parseConfig } from '../../../src/config/load.js';
import { keysOf, MINIMAL_YAML, parse } from '../../helpers/config.js';

const WID = 'spiffe://prod.example.org/ns/payments/sa/ledger';

/** Minimal config with `workload.id` and `delegation.grant_type` written as given. */
function withValues(id: string, grantType = 'hop'): string {
  return `
workload:
  id: ${id}
issuers:
  - issuer: https://sts.prod.example.org
    jwks_uri: https://sts.prod.example.org/jwks.json
delegation:
  trusted_domains: [prod.example.org]
  grant_type: ${grantType}
`;
}

describe('${VAR} expansion', () => {
  test('an unset variable without default names the key and the variable', () => {
    const r = parse(withValues('${HOPGUARD_WORKLOAD_ID}'), {});
    expect(r).toEqual({
      ok: false,
      errors: [
        {
          key: 'workload.id',
          message:
            'environment variable HOPGUARD_WORKLOAD_ID is not set (use ${HOPGUARD_WORKLOAD_ID:-default} for a default)',
        },
      ],
    });
  });

  test('a set variable is substituted', () => {
    const r = parse(withValues('${HOPGUARD_WORKLOAD_ID}'), { HOPGUARD_WORKLOAD_ID: WID });
    expect(r.ok && r.config.workload.id).toBe(WID);
  });

  test.each([
    ['unset → default', withValues('${WID:-spiffe://d/x}'), {}, 'spiffe://d/x'],
    ['empty → default', withValues('${WID:-spiffe://d/x}'), { WID: '' }, 'spiffe://d/x'],
    ['set → value, default ignored', withValues('${WID:-spiffe://d/x}'), { WID: 'spiffe://v/y' }, 'spiffe://v/y'],
    ['embedded in text', withValues('spiffe://${TD}/ns/${NS:-default}/sa/x'), { TD: 'prod.example.org' }, 'spiffe://prod.example.org/ns/default/sa/x'],
    ['$$ is a literal $', withValues('spiffe://a/$${X}$$'), {}, 'spiffe://a/${X}$'],
    ['$$ before a variable', withValues('a$$$${X}'), { X: 'no' }, 'a$${X}'],
    ['a substituted value is not expanded again', withValues('${A}'), { A: '${B}' }, '${B}'],
    ['a variable inherited from Object.prototype is not set', withValues('${constructor:-x}'), {}, 'x'],
  ])('%s', (_name, text, env, want) => {
    const r = parse(text, env);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.workload.id).toBe(want);
  });

  test('an env value containing YAML syntax stays one literal string', () => {
    const evil = 'hop\nmode: dry-run\ndelegation: {max_chain_depth: 32}\n#x';
    const r = parse(withValues(WID, '"${GRANT}"'), { GRANT: evil });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.delegation.grant_type).toBe(evil);
    expect(r.config.mode).toBe('enforce');
    expect(r.config.delegation.max_chain_depth).toBe(4);
  });

  test('an env value with flow syntax is not a list', () => {
    const r = parse(withValues('${ID}'), { ID: '[a,b]' });
    expect(r.ok && r.config.workload.id).toBe('[a,b]');
  });

  test('expanded values stay strings: a number field does not accept one', () => {
    const r = parse(`${MINIMAL_YAML}token: { max_bytes: "\${MAX}" }\n`, { MAX: '100' });
    expect(keysOf(r)).toEqual(['token.max_bytes']);
  });

  test('mapping keys are never expanded', () => {
    const r = parse(`${MINIMAL_YAML}\${KEY}: 1\n`, { KEY: 'mode' });
    expect(keysOf(r)).toEqual(['["${KEY}"]']);
  });

  test('strings in lists are expanded with their index in the key', () => {
    const r = parse(`${MINIMAL_YAML}token: { headers: [a, "\${H}"] }\n`, {});
    expect(r.ok ? [] : r.errors).toEqual([
      { key: 'token.headers[1]', message: 'environment variable H is not set (use ${H:-default} for a default)' },
    ]);
  });

  test.each([
    ['unescaped $', 'a$b', /unescaped "\$"/],
    ['trailing $', 'ab$', /unescaped "\$"/],
    ['unterminated ${', 'a${B', /unterminated/],
    ['empty name', '${}', /invalid variable reference/],
    ['bad name', '${1X}', /invalid variable reference/],
    ['unsupported operator', '${X:?oops}', /invalid variable reference/],
    ['shell-style default without colon', '${X-d}', /invalid variable reference/],
  ])('%s is an error at its key', (_name, value, message) => {
    const r = parse(withValues(JSON.stringify(value)), { X: 'x', B: 'b' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors.map((e) => e.key)).toEqual(['workload.id']);
      expect(r.errors[0]?.message).toMatch(message);
    }
  });

  test('env problems and schema problems elsewhere are reported together, without duplicates', () => {
    const r = parse(`${withValues('${NOPE}')}mode: bogus\n`, {});
    expect(keysOf(r)).toEqual(['mode', 'workload.id']);
  });

  test('expandString', () => {
    expect(expandString('plain', {})).toBe('plain');
    expect(expandString('${A}-${B:-b}', { A: 'a' })).toBe('a-b');
    expect(expandString('${A}', {})).toEqual({ error: expect.stringContaining('A is not set') });
  });
});

describe('YAML handling', () => {
  test.each([
    ['duplicate key', `${MINIMAL_YAML}mode: enforce\nmode: dry-run\n`, /line 10, column 1: Map keys must be unique/, 10],
    ['syntax error', 'workload:\n  id: x\nissuers: [\n', /line \d+, column \d+: /, undefined],
    ['bad indentation', 'workload:\n  id: a: b\n', /line 2, column/, 2],
    ['two documents', `${MINIMAL_YAML}---\nmode: dry-run\n`, /multiple documents/, undefined],
    ['unknown tag', `${MINIMAL_YAML}mode: !env MODE\n`, /Unresolved tag/, 9],
  ])('%s → (yaml) with its position', (_name, text, message, line) => {
    const r = parse(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.every((e) => e.key === '(yaml)')).toBe(true);
    expect(r.errors[0]?.message).toMatch(message);
    expect(r.errors[0]?.line).toEqual(expect.any(Number));
    if (line !== undefined) expect(r.errors[0]?.line).toBe(line);
    expect(r.errors[0]?.message).not.toContain('\n');
  });

  test.each([
    ['a list', '- a\n- b\n', 'the config must be a mapping, got a list'],
    ['a scalar', 'hello\n', 'the config must be a mapping, got "hello"'],
    ['a number', '42\n', 'the config must be a mapping, got 42'],
    ['empty', '', 'the config is empty; expected a mapping'],
    ['only comments', '# nothing here\n', 'the config is empty; expected a mapping'],
  ])('a document that is %s → (root)', (_name, text, message) => {
    expect(parse(text)).toEqual({ ok: false, errors: [{ key: '(root)', message }] });
  });

  test('anchors, aliases and merge keys work', () => {
    const text = `
workload: { id: ${WID} }
x-common: &common
  algorithms: [ES256]
  clock_skew: 5s
issuers:
  - <<: *common
    issuer: a
    jwks_file: /a.json
  - <<: *common
    issuer: b
    jwks_file: /b.json
    clock_skew: 1s
delegation: { trusted_domains: &tds [prod.example.org] }
`;
    // x-common itself is an unknown key: anchors need a home, and strictness still applies.
    expect(keysOf(parse(text))).toEqual(['x-common']);
    const text2 = `
workload: { id: ${WID} }
issuers:
  - &first
    issuer: a
    jwks_file: /a.json
    algorithms: [ES256]
    clock_skew: 5s
  - <<: *first
    issuer: b
    clock_skew: 1s
delegation: { trusted_domains: [prod.example.org] }
`;
    const r2 = parse(text2);
    if (!r2.ok) throw new Error(JSON.stringify(r2.errors));
    expect(r2.config.issuers.map((i) => [i.issuer, i.jwks_file, i.algorithms, i.clock_skew])).toEqual([
      ['a', '/a.json', ['ES256'], 5000],
      ['b', '/a.json', ['ES256'], 1000],
    ]);
  });

  test('alias expansion is bounded (billion laughs)', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    const r = parse(`${lines.join('\n')}\n`);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]?.key).toBe('(yaml)');
      expect(r.errors[0]?.message).toMatch(/alias/i);
    }
  });

  test('a __proto__ key is an unknown key, not a prototype', () => {
    const r = parse(`${MINIMAL_YAML}__proto__: { mode: dry-run }\n`);
    expect(keysOf(r)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).mode).toBeUndefined();
  });

  test('YAML 1.1 booleans are strings, so they are rejected where a boolean is expected', () => {
    const r = parse(`${MINIMAL_YAML}replay: { enabled: yes }\n`);
    expect(r.ok ? [] : r.errors).toEqual([{ key: 'replay.enabled', message: 'expected true or false, got "yes"' }]);
  });

  test('an unquoted ${VAR} inside a flow mapping is a YAML error (quote it)', () => {
    const r = parse(`${MINIMAL_YAML}log: { level: \${LEVEL} }\n`, { LEVEL: 'debug' });
    expect(r.ok ? [] : r.errors[0]?.key).toBe('(yaml)');
    const quoted = parse(`${MINIMAL_YAML}log: { level: "\${LEVEL}" }\n`, { LEVEL: 'debug' });
    expect(quoted.ok && quoted.config.log.level).toBe('debug');
  });

  test('a config over the size limit is refused before parsing', () => {
    const r = parse(`# ${'x'.repeat(1024 * 1024)}\n${MINIMAL_YAML}`);
    expect(keysOf(r)).toEqual(['(file)']);
  });
});

describe('formatIssues', () => {
  test('one line per issue: source, key, message', () => {
    const r = parse(MINIMAL_YAML.replace('jwks.json', 'jwks.json\n    clock_skew: ten'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatIssues(r.errors, 'config.yaml')).toBe(
      'config.yaml: issuers[0].clock_skew: expected a duration such as 10s, got "ten"',
    );
    expect(
      formatIssues(
        [
          { key: 'mode', message: 'a' },
          { key: '(yaml)', message: 'line 1, column 2: b', line: 1, col: 2 },
        ],
        'x.yaml',
      ),
    ).toBe('x.yaml: mode: a\nx.yaml: (yaml): line 1, column 2: b');
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hopguard-config-'));
    await mkdir(path.join(dir, 'conf'));
    await writeFile(
      path.join(dir, 'conf', 'hopguard.yaml'),
      `workload: { id: "\${WID}" }
issuers:
  - { issuer: a, jwks_file: keys/jwks.json }
  - { issuer: b, jwks_file: /abs/jwks.json }
  - { issuer: c, jwks_uri: "https://c/jwks" }
delegation: { trusted_domains: [prod.example.org] }
`,
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('reads, expands env and resolves relative jwks_file against the config directory', async () => {
    const r = await loadConfigFile(path.join(dir, 'conf', 'hopguard.yaml'), { WID });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.workload.id).toBe(WID);
    expect(r.config.issuers.map((i) => i.jwks_file ?? i.jwks_uri)).toEqual([
      path.join(dir, 'conf', 'keys', 'jwks.json'),
      '/abs/jwks.json',
      'https://c/jwks',
    ]);
  });

  test('parseConfig leaves relative jwks_file alone unless given baseDir', () => {
    const text = `workload: { id: w }\nissuers: [{ issuer: a, jwks_file: k.json }]\ndelegation: { trusted_domains: [d] }\n`;
    const a = parseConfig(text, { env: {} });
    const b = parseConfig(text, { env: {}, baseDir: '/etc/hopguard' });
    expect(a.ok && a.config.issuers[0]?.jwks_file).toBe('k.json');
    expect(b.ok && b.config.issuers[0]?.jwks_file).toBe('/etc/hopguard/k.json');
  });

  test('replay.redis: the URL from the environment, TLS files resolved like jwks_file, the password in no error', () => {
    const text = [
      'workload: { id: w }',
      'issuers: [{ issuer: a, jwks_file: k.json }]',
      'delegation: { trusted_domains: [d] }',
      'replay:',
      '  store: redis',
      '  redis: { url: "${REDIS_URL}", timeout: 20ms, key_prefix: "t:", ca_file: tls/ca.pem, cert_file: /abs/c.pem, key_file: tls/k.pem }',
    ].join('\n');
    const ok = parseConfig(text, { env: { REDIS_URL: 'rediss://hopguard:s3cret@redis.hopguard.svc:6380/1' }, baseDir: '/etc/hopguard' });
    expect(ok.ok && ok.config.replay).toEqual({
      enabled: false,
      max_entries: 100_000,
      store: 'redis',
      redis: {
        url: 'rediss://hopguard:s3cret@redis.hopguard.svc:6380/1',
        key_prefix: 't:',
        timeout: 20,
        ca_file: '/etc/hopguard/tls/ca.pem',
        cert_file: '/abs/c.pem',
        key_file: '/etc/hopguard/tls/k.pem',
      },
    });
    const bad = parseConfig(text, { env: { REDIS_URL: 'rediss://hopguard:s3cret@redis.hopguard.svc:6380/one' } });
    expect(bad.ok ? [] : bad.errors.map((e) => e.key)).toEqual(['replay.redis.url']);
    expect(JSON.stringify(bad)).not.toContain('s3cret');
  });

  test('replay.redis.url from an unset ${VAR:-}: not set, fine with the memory store', () => {
    const text = 'workload: { id: w }\nissuers: [{ issuer: a, jwks_file: k.json }]\ndelegation: { trusted_domains: [d] }\nreplay: { store: "${STORE:-memory}", redis: { url: "${URL:-}" } }\n';
    const r = parseConfig(text, { env: {} });
    expect(r.ok && r.config.replay.redis.url).toBeUndefined();
    expect(r.ok && r.config.replay.store).toBe('memory');
  });

  test('env problems from a file are reported', async () => {
    const r = await loadConfigFile(path.join(dir, 'conf', 'hopguard.yaml'), {});
    expect(keysOf(r)).toEqual(['workload.id']);
  });

  test('a missing file → (file)', async () => {
    const p = path.join(dir, 'nope.yaml');
    expect(await loadConfigFile(p, {})).toEqual({
      ok: false,
      errors: [{ key: '(file)', message: `cannot read ${p}: ENOENT` }],
    });
  });

  test('a directory → (file)', async () => {
    const r = await loadConfigFile(path.join(dir, 'conf'), {});
    expect(r.ok ? [] : r.errors).toEqual([{ key: '(file)', message: `${path.join(dir, 'conf')} is not a regular file` }]);
  });

  test('an oversized file → (file), reading no more than the limit + 1 bytes', async () => {
    const p = path.join(dir, 'big.yaml');
    await writeFile(p, `# ${'x'.repeat(1024 * 1024 + 1)}\n`);
    const r = await loadConfigFile(p, {});
    expect(keysOf(r)).toEqual(['(file)']);
  });
});
