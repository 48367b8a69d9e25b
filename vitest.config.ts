import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // native work is multi-threaded already; keep test files from oversubscribing a 2-core machine
    fileParallelism: false,
  },
});
