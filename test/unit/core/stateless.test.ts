/**
 * src/core/ keeps no module-level mutable state (the brief: the pure decision takes what it
 * needs as arguments; a memo belongs to the caller who owns its lifetime). Two checks that
 * fail on any new piece of module state:
 *
 * - statically, over the TypeScript syntax tree of every core file: at module level only
 *   imports, types, functions and `const` bindings whose value cannot change — primitives,
 *   functions, and containers built inside `Object.freeze(...)` out of such values (nested
 *   containers frozen too). No `let`/`var`, no `new` (a Map, a Set, a class instance), no
 *   other call, no class, no statement that runs code.
 * - at run time, every exported object of every core module is deeply frozen.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const CORE = new URL('../../../src/core/', import.meta.url);
const files = readdirSync(CORE)
  .filter((f) => f.endsWith('.ts'))
  .sort();

/** Why `e` may not initialize a module-level binding, or undefined when its value is immutable. */
function mutableValue(e: ts.Expression): string | undefined {
  while (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isTypeAssertionExpression(e)) {
    e = e.expression;
  }
  if (
    ts.isStringLiteral(e) ||
    ts.isNumericLiteral(e) ||
    ts.isBigIntLiteral(e) ||
    ts.isNoSubstitutionTemplateLiteral(e) ||
    e.kind === ts.SyntaxKind.TrueKeyword ||
    e.kind === ts.SyntaxKind.FalseKeyword ||
    e.kind === ts.SyntaxKind.NullKeyword
  ) {
    return undefined;
  }
  if (ts.isRegularExpressionLiteral(e)) {
    // Without g/y a RegExp keeps no state between uses (lastIndex stays 0).
    const flags = e.text.slice(e.text.lastIndexOf('/') + 1);
    return /[gy]/.test(flags) ? `a stateful regular expression (${e.text})` : undefined;
  }
  if (ts.isArrowFunction(e) || ts.isFunctionExpression(e)) return undefined;
  // Another module-level constant, or a member of one: checked where it is defined.
  if (ts.isIdentifier(e) || ts.isPropertyAccessExpression(e)) return undefined;
  if (ts.isPrefixUnaryExpression(e)) return mutableValue(e.operand);
  if (ts.isBinaryExpression(e)) return mutableValue(e.left) ?? mutableValue(e.right);
  if (ts.isTemplateExpression(e)) {
    for (const span of e.templateSpans) {
      const why = mutableValue(span.expression);
      if (why !== undefined) return why;
    }
    return undefined;
  }
  if (ts.isCallExpression(e) && e.expression.getText() === 'Object.freeze' && e.arguments.length === 1) {
    return frozenContents(e.arguments[0] as ts.Expression);
  }
  if (ts.isNewExpression(e)) return `a new ${e.expression.getText()}(…)`;
  if (ts.isObjectLiteralExpression(e) || ts.isArrayLiteralExpression(e)) return 'a container that is not frozen';
  if (ts.isCallExpression(e)) return `a call to ${e.expression.getText()}(…)`;
  return `a ${ts.SyntaxKind[e.kind]}`;
}

/** The argument of Object.freeze: a literal container whose members are immutable values. */
function frozenContents(e: ts.Expression): string | undefined {
  while (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isSatisfiesExpression(e)) e = e.expression;
  if (ts.isArrayLiteralExpression(e)) {
    for (const el of e.elements) {
      const why = ts.isSpreadElement(el) ? (ts.isIdentifier(el.expression) ? undefined : 'a spread of an expression') : mutableValue(el);
      if (why !== undefined) return why;
    }
    return undefined;
  }
  if (ts.isObjectLiteralExpression(e)) {
    for (const p of e.properties) {
      if (ts.isPropertyAssignment(p)) {
        const why = mutableValue(p.initializer);
        if (why !== undefined) return why;
      } else if (ts.isSpreadAssignment(p)) {
        if (!ts.isIdentifier(p.expression)) return 'a spread of an expression';
      } else {
        return `a ${ts.SyntaxKind[p.kind]} in a frozen object`;
      }
    }
    return undefined;
  }
  return mutableValue(e);
}

/** Module-level statements of `file` that hold or create mutable state. */
function moduleState(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const at = (n: ts.Node): string => `${file}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  for (const st of sf.statements) {
    if (
      ts.isImportDeclaration(st) ||
      ts.isInterfaceDeclaration(st) ||
      ts.isTypeAliasDeclaration(st) ||
      ts.isFunctionDeclaration(st) ||
      (ts.isExportDeclaration(st) && st.moduleSpecifier !== undefined)
    ) {
      continue;
    }
    if (ts.isVariableStatement(st)) {
      const list = st.declarationList;
      if ((list.flags & ts.NodeFlags.Const) === 0) {
        found.push(`${at(st)}: a module-level ${list.flags & ts.NodeFlags.Let ? 'let' : 'var'}`);
        continue;
      }
      for (const d of list.declarations) {
        const why = d.initializer === undefined ? 'no initializer' : mutableValue(d.initializer);
        if (why !== undefined) found.push(`${at(d)}: const ${d.name.getText()} is ${why}`);
      }
      continue;
    }
    found.push(`${at(st)}: a module-level ${ts.SyntaxKind[st.kind]}`);
  }
  return found;
}

function deeplyFrozen(v: unknown, seen = new Set<unknown>()): boolean {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null || seen.has(v)) return true;
  seen.add(v);
  if (typeof v === 'function') return true; // functions: checked statically (no state they could close over)
  if (!Object.isFrozen(v)) return false;
  return Reflect.ownKeys(v).every((k) => deeplyFrozen((v as Record<PropertyKey, unknown>)[k], seen));
}

describe('src/core/ is stateless', () => {
  it('finds the core files', () => {
    expect(files).toContain('decide.ts');
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  it.each(files)('%s: no module-level mutable state (syntax)', (f) => {
    expect(moduleState(f, readFileSync(new URL(f, CORE), 'utf8'))).toEqual([]);
  });

  it.each(files)('%s: every exported object is deeply frozen (run time)', async (f) => {
    const mod = (await import(path.join(CORE.pathname, f))) as Record<string, unknown>;
    for (const [name, v] of Object.entries(mod)) expect(deeplyFrozen(v), `${f}: ${name}`).toBe(true);
  });

  // The checks must be able to fail.
  it.each([
    ['const m = new Map<string, number>();', /new Map/],
    ['let last: string | undefined;', /let/],
    ['var n = 0;', /var/],
    ['const xs: string[] = [];', /not frozen/],
    ["const o = Object.freeze({ list: ['a'] });", /not frozen/],
    ['const r = /a/g;', /stateful regular expression/],
    ['const c = makeCache();', /call to makeCache/],
    ['class Memo { static cache = new Map(); }', /ClassDeclaration/],
    ['counter.n++;', /ExpressionStatement/],
  ])('flags %s', (code, why) => {
    expect(moduleState('x.ts', code).join('\n')).toMatch(why);
  });

  it.each([
    "const A = 'a';",
    'const N = 64 * 1024;',
    "const L = Object.freeze(['a', 'b'] as const);",
    'const O = Object.freeze({ a: 1, b: Object.freeze([A]) });',
    'const R = /[A-Z]/;',
    'const f = (x: number): number => x + 1;',
    "export { x } from './x.js';",
  ])('accepts %s', (code) => {
    expect(moduleState('x.ts', code)).toEqual([]);
  });
});
