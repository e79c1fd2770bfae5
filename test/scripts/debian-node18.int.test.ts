// scripts/debian-node18.sh must not change the system: Debian's Node 18 finds its builtins
// (compiled-in paths under /usr/share/nodejs) without any link or file outside its directory.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const node18 = process.env.SANDLET_NODE18;

describe.skipIf(!node18 && !process.env.CI)('Debian Node 18 from scripts/debian-node18.sh', () => {
  it('loads its /usr/share/nodejs builtins while the system has none pointing into its directory', async () => {
    if (!node18) throw new Error('SANDLET_NODE18 is not set: run scripts/debian-node18.sh and export its output');
    const dir = path.dirname(path.dirname(fs.realpathSync(node18)));
    // The system's /usr/share/nodejs, if any, is not the unpacked copy (the old script linked it there).
    let systemTarget: string | undefined;
    try {
      systemTarget = fs.realpathSync('/usr/share/nodejs');
    } catch {
      systemTarget = undefined;
    }
    expect(systemTarget === undefined || !systemTarget.startsWith(`${dir}/`)).toBe(true);
    // fetch is undici and require() of CommonJS from ESM uses cjs-module-lexer: both externalized.
    const { stdout } = await run(node18, ['--input-type=module', '-e', 'const m = await import("node:module"); console.log(process.version, typeof fetch, m.builtinModules.length > 0, process.pid)']);
    const [version, fetchType, ok] = stdout.trim().split(' ');
    expect(version).toMatch(/^v18\./);
    expect([fetchType, ok]).toEqual(['function', 'true']);
  });
});
