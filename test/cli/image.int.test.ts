import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { docker, ENGINE_IMAGE, requireDocker, runId, skipDocker } from '../helpers/docker.js';

const run = promisify(execFile);
const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

describe.skipIf(skipDocker)('sandlet image check', () => {
  it('two checks at once each get their own container, and neither leaves one behind', async () => {
    requireDocker();
    const prefix = `sltest-${runId()}-`;
    const env = { ...process.env, SANDLET_CONTAINER_PREFIX: prefix };
    const ours = async () => docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) });
    try {
      const check = () =>
        run(process.execPath, [BIN, 'image', 'check', ENGINE_IMAGE], { env, encoding: 'utf8' }).then(
          (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
          (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
        );
      const results = await Promise.all([check(), check()]);
      for (const r of results) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^result +ok$/m);
      }
      expect(await ours()).toEqual([]);
    } finally {
      for (const c of await ours()) await docker.getContainer(c.Id).remove({ force: true });
    }
  });
});
