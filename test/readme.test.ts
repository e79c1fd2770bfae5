import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { backoffMs } from '../src/runtime/sandbox.js';
import { EXIT } from '../src/cli/server-client.js';
import { EXIT_OUTPUT_CLOSED } from '../src/cli/output.js';

const readme = fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8').replace(/\s+/g, ' ');

describe('README figures follow the code', () => {
  it('the sandbox back-off: first step and cap', () => {
    const cap = backoffMs(1000);
    const first = backoffMs(2);
    expect(readme).toContain(`backed off: ${first / 1000} s, doubling, at most ${cap / 1000} s`);
  });

  it('the CLI exit codes', () => {
    expect(readme).toContain(`exits ${EXIT_OUTPUT_CLOSED} (128 + SIGPIPE`);
    expect(readme).toContain(`and exit non-zero: ${EXIT.usage} for usage errors`);
    expect(readme).toContain(
      `Their exit codes: ${EXIT.ok} done, ${EXIT.error} other failure, ${EXIT.usage} usage, ${EXIT.notFound} not found (scope, daemon, log), ${EXIT.auth} not allowed (401/403), ${EXIT.unavailable} server unreachable or unavailable (503)`,
    );
  });
});
