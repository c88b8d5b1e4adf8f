import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // e2e tests run real package managers; they are opted in by UPKEEP_E2E=1.
    exclude: process.env.UPKEEP_E2E === '1' ? [] : ['test/e2e/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // e2e files change the same machine (apt, npm -g): one at a time.
    fileParallelism: process.env.UPKEEP_E2E !== '1',
  },
});
