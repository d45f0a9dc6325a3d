import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The Temporal worker's native bridge crashes under worker threads: run each file in a child process.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    // Product logs go to stderr as JSON; in tests only warnings and errors are worth reading.
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
  },
});
