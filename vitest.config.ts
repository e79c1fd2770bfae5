import { defineConfig } from 'vitest/config';

// Two projects, both run by `npm test`: fast unit tests, and integration tests on real sockets,
// fds and processes (and, later, a real Docker engine).
export default defineConfig({
  test: {
    // Integration files start sandboxes and time things: on 2 cores they must not run side by side.
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.int.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.int.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
