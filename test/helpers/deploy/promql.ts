/**
 * Just enough PromQL reading to check that dashboards and alert rules query metrics that
 * exist: metric names and the label matchers applied to them. Not a parser: it strips
 * what is not a metric name (strings, label matchers, ranges, grouping clauses, Grafana
 * variables, function calls) and reports every identifier left.
 */

const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool',
  'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2',
]);

/** Grafana's `label_values(metric{...}, label)`: only `metric` is a metric name. */
function grafanaLabelValues(expr: string): string {
  return expr
    .replace(/label_values\(\s*([^,()]+?)\s*,\s*[A-Za-z_]\w*\s*\)/g, '$1')
    .replace(/label_values\(\s*[A-Za-z_]\w*\s*\)/g, '');
}

/** Metric names an expression reads (PromQL or a Grafana template query). */
export function metricNames(expr: string): string[] {
  let s = grafanaLabelValues(expr);
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  const names = new Set<string>();
  // An identifier not glued to a preceding word character or dot (so `5m`, `1e3`, `0.99`
  // contribute nothing) and not followed by `(` (a function or aggregation).
  for (const m of s.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const id = m[1] as string;
    if (!KEYWORDS.has(id)) names.add(id);
  }
  return [...names];
}

export interface Matcher {
  readonly metric: string;
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

/** Label matchers written on a metric: `metric{label="value"}`. */
export function matchers(expr: string): Matcher[] {
  const out: Matcher[] = [];
  for (const sel of expr.matchAll(/([A-Za-z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const metric = sel[1] as string;
    for (const m of (sel[2] as string).matchAll(/([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      out.push({ metric, label: m[1] as string, op: m[2] as Matcher['op'], value: m[3] as string });
    }
  }
  return out;
}

export interface ScrapedFamily {
  readonly type: string;
  /** Series names this family exposes (histograms: _bucket, _sum, _count). */
  readonly series: Set<string>;
  /** label → values seen, over all series of the family. */
  readonly labels: Map<string, Set<string>>;
}

/** Prometheus text exposition → families by series name. */
export function parseExposition(text: string): Map<string, ScrapedFamily> {
  const families = new Map<string, ScrapedFamily>();
  const bySeries = new Map<string, ScrapedFamily>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      const series = new Set(
        kind === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : kind === 'summary' ? [name, `${name}_sum`, `${name}_count`] : [name],
      );
      const fam: ScrapedFamily = { type: kind, series, labels: new Map() };
      families.set(name, fam);
      for (const s of series) bySeries.set(s, fam);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!sample) continue;
    const fam = bySeries.get(sample[1] as string);
    if (!fam || sample[2] === undefined) continue;
    for (const l of sample[2].matchAll(/([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      const k = l[1] as string;
      if (!fam.labels.has(k)) fam.labels.set(k, new Set());
      fam.labels.get(k)?.add(l[2] as string);
    }
  }
  const out = new Map<string, ScrapedFamily>();
  for (const fam of families.values()) for (const s of fam.series) out.set(s, fam);
  return out;
}
