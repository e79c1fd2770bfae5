import { defineConfig } from 'vitest/config';

// Two projects, both run by `npm test`: fast unit tests, and integration tests on real sockets,
// fds and processes (and, later, a real Docker engine).
export default defineConfig({
  test: {
    // Integration files start sandboxes and time things: on 2 cores they must not run side by side.
    fileParallelism: false,
    // The AWS SDK (a test client only) warns that its 2027 releases need Node 22; the lockfile
    // pins a release that runs on 20, so the warning is noise in every S3 test's output.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
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
