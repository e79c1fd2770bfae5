// A gateway frees array buffers inline (util/sweep-array-buffers-inline.ts): after thousands of
// calls, an output read through JavaScript must not set V8 running full GCs back to back. Counted
// in full GCs, not time, in a node of its own (fixtures/full-gcs.mjs: a test worker's larger heap
// hides the effect). Measured over 1 GiB after 6,000 calls: 1 to 8 with it (seven runs), 30 to 32
// when node is started with --concurrent-array-buffer-sweeping (the operator's choice, which the
// gateway keeps; three runs).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/fs.js';

const run = promisify(execFile);
const FIXTURE = fileURLToPath(new URL('./fixtures/full-gcs.mjs', import.meta.url));

describe('sweeping array buffers inline', () => {
  // The gateway's root is the test's: removed even when the fixture is killed at its timeout.
  const root = tempDir('sl-gc-');
  afterEach(() => root.cleanup());

  it('streams 1 GiB through a gateway that served 6,000 calls with next to no full GC', async () => {
    const { stdout } = await run(process.execPath, [FIXTURE], { env: { ...process.env, ROOT: root.dir, CALLS: '6000', MIB: '1024' }, timeout: 100_000 });
    const got = JSON.parse(stdout) as { bytes: number; full: number };
    expect(got.bytes).toBe(1024 * 1024 * 1024);
    expect(got.full).toBeLessThanOrEqual(12);
  }, 120_000);
});
