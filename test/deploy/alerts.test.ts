/**
 * The alerts shipped in deploy/ (every PrometheusRule, wherever it lives) checked with
 * Prometheus's own tool, promtool (missing promtool fails here; .ci/run installs it):
 *
 *  - `promtool check rules` on every rule group;
 *  - `promtool test rules` on every unit-test file in deploy/prometheus/ (`<group>*.test.yaml`,
 *    loading `<group>.rules.yaml`, which this test extracts from the PrometheusRule);
 *  - every alert has a unit test where it fires (labels and annotations compared exactly by
 *    promtool) and one where it stays quiet, in a file that loads its group;
 *  - those tests can fail: each alert rewritten to never fire, then to always fire, must
 *    fail its unit tests (a test at the wrong time or on the wrong group proves nothing).
 *
 * Run alone: `npx vitest run test/deploy/alerts.test.ts`. On failure the message carries
 * promtool's report and the directory holding the files it ran on.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  prometheusRuleGroups,
  promtool,
  promtoolAsync,
  ruleFileName,
  RULE_TESTS_DIR,
  writeRuleFiles,
  type FoundGroup,
  type RuleGroup,
} from '../helpers/deploy/prometheus.js';

interface AlertTest {
  readonly alertname: string;
  readonly eval_time: string;
  readonly exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[] | null;
}
interface UnitTestFile {
  readonly rule_files: string[];
  readonly tests: { name?: string; alert_rule_test?: AlertTest[] }[];
}

const groups: FoundGroup[] = prometheusRuleGroups();
const groupByFile = new Map(groups.map((g) => [ruleFileName(g.group.name), g]));
const testFiles = readdirSync(RULE_TESTS_DIR)
  .filter((f) => f.endsWith('.test.yaml'))
  .sort();
const unitTests = new Map(testFiles.map((f) => [f, parse(readFileSync(path.join(RULE_TESTS_DIR, f), 'utf8')) as UnitTestFile]));

/** alert name → the group defining it. */
const alertGroup = new Map<string, RuleGroup>();
for (const { group } of groups) for (const r of group.rules) if (r.alert) alertGroup.set(r.alert, group);

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'hopguard-alerts-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh directory with the rule files (`groups`, possibly mutated) and the unit tests. */
function stage(name: string, ruleGroups: readonly RuleGroup[]): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeRuleFiles(dir, ruleGroups);
  for (const f of testFiles) copyFileSync(path.join(RULE_TESTS_DIR, f), path.join(dir, f));
  return dir;
}

/** Test files (names) holding an alert_rule_test for `alert`. */
function filesTesting(alert: string): string[] {
  return testFiles.filter((f) => unitTests.get(f)?.tests.some((t) => t.alert_rule_test?.some((a) => a.alertname === alert)));
}

describe('PrometheusRule groups under deploy/', () => {
  it('exist, with unique group and alert names', () => {
    expect(groups.map((g) => g.group.name)).toEqual(expect.arrayContaining(['hopguard', 'hopguard-envoy']));
    const names = groups.map((g) => g.group.name);
    expect(new Set(names).size, names.join(', ')).toBe(names.length);
    const alerts = groups.flatMap((g) => g.group.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
    expect(new Set(alerts).size, alerts.join(', ')).toBe(alerts.length);
    expect(alerts.length).toBeGreaterThanOrEqual(15);
  });

  it('pass `promtool check rules`', () => {
    const dir = stage('check', groups.map((g) => g.group));
    const r = promtool(['check', 'rules', ...groups.map((g) => ruleFileName(g.group.name))], { cwd: dir });
    expect(r.status, r.output).toBe(0);
    expect(r.output).not.toMatch(/WARNING|FAILED/);
  });

  it('every alert has a severity, a summary and a description', () => {
    for (const { group } of groups) {
      for (const r of group.rules.filter((x) => x.alert)) {
        expect(['warning', 'critical'], r.alert).toContain(r.labels?.['severity']);
        expect(r.annotations?.['summary'], r.alert).toBeTruthy();
        expect(r.annotations?.['description'], r.alert).toBeTruthy();
      }
    }
  });
});

describe('promtool unit tests (deploy/prometheus/*.test.yaml)', () => {
  it('each test file loads only rule files of groups that exist', () => {
    expect(testFiles.length).toBeGreaterThan(0);
    for (const [f, t] of unitTests) {
      expect(t.rule_files?.length, f).toBeGreaterThan(0);
      for (const rf of t.rule_files) expect([...groupByFile.keys()], `${f}: rule_files ${rf}`).toContain(rf);
    }
  });

  it.each(testFiles)('%s passes `promtool test rules`', (f) => {
    const dir = stage('pass', groups.map((g) => g.group));
    const r = promtool(['test', 'rules', f], { cwd: dir });
    expect(r.status, `${r.output}\n(files in ${dir})`).toBe(0);
    expect(r.output).toContain('SUCCESS');
  });

  it('every alert fires in a test (labels and annotations given) and stays quiet in another, in a file loading its group', () => {
    const missing: string[] = [];
    for (const [alert, group] of alertGroup) {
      let fires = false;
      let quiet = false;
      for (const [, t] of unitTests) {
        if (!t.rule_files.includes(ruleFileName(group.name))) continue;
        for (const a of t.tests.flatMap((x) => x.alert_rule_test ?? []).filter((x) => x.alertname === alert)) {
          const exp = a.exp_alerts ?? [];
          if (exp.length === 0) quiet = true;
          else if (exp.every((e) => e.exp_labels?.['severity'] && e.exp_annotations?.['summary'] && e.exp_annotations['description'])) fires = true;
        }
      }
      if (!fires) missing.push(`${alert}: no test where it fires (with exp_labels.severity and exp_annotations summary + description)`);
      if (!quiet) missing.push(`${alert}: no test where it must stay quiet (exp_alerts: [])`);
    }
    expect(missing, 'add them to deploy/prometheus/<group>.test.yaml').toEqual([]);
  });

  it('no test names an alert that does not exist (promtool would pass it vacuously)', () => {
    const unknown = [...unitTests].flatMap(([f, t]) =>
      t.tests.flatMap((x) => x.alert_rule_test ?? []).filter((a) => !alertGroup.has(a.alertname)).map((a) => `${f}: ${a.alertname}`),
    );
    expect(unknown).toEqual([]);
  });
});

// Concurrent: each case is one or two promtool processes, independent of the others.
describe.concurrent('the unit tests can fail: each alert broken on purpose fails them', () => {
  /** The groups with `alert` replaced by `change(rule)`. */
  function mutated(alert: string, change: (r: { expr: string; for?: string }) => void): RuleGroup[] {
    return groups.map(({ group }) => ({
      ...group,
      rules: group.rules.map((r) => {
        if (r.alert !== alert) return r;
        const copy = { ...r };
        change(copy);
        return copy;
      }),
    }));
  }

  const alerts = [...alertGroup.keys()].sort();
  it.each(alerts)('%s', async (alert) => {
    const files = filesTesting(alert);
    expect(files.length, `${alert} has no unit test`).toBeGreaterThan(0);
    const cases: [string, (r: { expr: string; for?: string }) => void][] = [
      ['never fires', (r) => void (r.expr = 'vector(1) < 0')],
      [
        'always fires',
        (r) => {
          r.expr = 'vector(1)';
          delete r.for;
        },
      ],
    ];
    await Promise.all(
      cases.map(async ([what, change]) => {
        const dir = stage(`${alert}-${what.replace(' ', '-')}`, mutated(alert, change));
        const r = await promtoolAsync(['test', 'rules', ...files], { cwd: dir });
        expect(r.status, `${alert} rewritten so that it ${what} still passes ${files.join(', ')}`).not.toBe(0);
        expect(r.output, `the failure names ${alert}`).toContain(`alertname: ${alert},`);
      }),
    );
  }, 120_000);
});
