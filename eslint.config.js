// Lint: runs in `npm test` (npm run lint). The compiler already enforces strict types; these
// rules catch what it does not: promises nobody awaits or handles (a lost rejection in a
// server is a silent failure), imports that only exist for types, dead variables, and
// switches that stop covering a union (a new reason code, a new config value).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'coverage/', 'node_modules/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      // Type information from the project's own tsconfig.json (src, test).
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Type-aware, and cheap once the program is loaded.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // token/json.ts throws a plain SyntaxFault for control flow inside its parser: no
      // stack is captured on the hot path, and it never leaves the module.
      '@typescript-eslint/only-throw-error': [
        'error',
        { allow: [{ from: 'file', name: 'SyntaxFault', path: 'src/token/json.ts' }] },
      ],
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // Syntax only. verbatimModuleSyntax already requires `type` on type-only imports;
      // this keeps one style for it and keeps type-only imports from loading modules.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      eqeqeq: ['error', 'always'],
      // A `let` assigned once but read earlier by a closure (a callback wired before the
      // object it reports to exists) cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // The product writes through its logger and sinks, never the console.
    files: ['src/**/*.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // Tests take apart untyped wire objects (decoded protobufs, parsed JSON) on purpose.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Benchmarks, scripts and this file: plain Node ESM, no type information.
    files: ['**/*.{js,mjs}'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
);
