import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import local from './scripts/lint/no-shell-strings.mjs';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'build/**', '.sandbox/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.test.json' } },
    rules: {
      // etcd3 builders are lazy thenables: an un-awaited one is silently dropped.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Programs run with argument arrays only, never a shell command string (scripts/lint/no-shell-strings.mjs).
    files: ['**/*.ts', '**/*.js', '**/*.mjs', '**/*.cjs'],
    plugins: { local },
    rules: { 'local/no-shell-strings': 'error' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly', Buffer: 'readonly' } },
  },
);
