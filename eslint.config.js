import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const spawning = ['child_process', 'node:child_process', 'execa'];
const networking = ['undici', 'http', 'https', 'node:http', 'node:https', 'node:net', 'net'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // ANSI escape sequences are control characters by nature.
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // One door to processes and one to the network (DESIGN rules 2 and 3).
    files: ['src/**/*.ts'],
    ignores: ['src/core/exec.ts', 'src/core/http.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...spawning.map((name) => ({ name, message: 'spawn processes through src/core/exec.ts' })),
            ...networking.map((name) => ({ name, message: 'talk to the network through src/core/http.ts' })),
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'fetch', message: 'talk to the network through src/core/http.ts' }],
      // Only the entry point touches the process (DESIGN rule 1).
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'return an exit code instead' }],
    },
  },
  {
    files: ['src/core/exec.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: networking.map((name) => ({ name, message: 'exec does not talk to the network' })) }] },
  },
);
