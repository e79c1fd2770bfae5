import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, SAMPLES_DIR } from '../../src/package-root.js';
import { tempDir } from '../helpers/fs.js';

const run = promisify(execFile);
const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

async function sandlet(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = run(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (input !== undefined) {
    child.child.stdin!.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir()));
afterAll(() => cleanup());

describe('sandlet CLI', () => {
  it('demo deploys the samples, invokes one and prints output, metadata and timings', async () => {
    const r = await sandlet(['demo', '--backend', 'process']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('STORLETS RUN WHERE THE DATA LIVES.');
    expect(r.stdout).toContain('"Storlet-Transform":"uppercase"');
    expect(r.stdout).toMatch(/warm \(invoke only\): +\d+\.\d ms/);
  });

  it('deploys and invokes: body to --output, metadata as one JSON line on stderr', async () => {
    const root = path.join(dir, 'root');
    const dep = await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--root', root]);
    // Docker sandboxes outlive a CLI run (for reuse); this temp root must not leave one behind.
    expect(dep.stdout).toMatch(/^deployed storlet uppercase.mjs \(\d+ bytes, sha256 [0-9a-f]{12}…\)/);
    const out = path.join(dir, 'out.txt');
    const r = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'uppercase.mjs', '--input', path.join(SAMPLES_DIR, 'sample.txt'), '--output', out, '--meta', 'Color=red']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stderr.trim())).toEqual({ Color: 'red', 'Storlet-Transform': 'uppercase' });
    expect(fs.readFileSync(out, 'utf8')).toBe(fs.readFileSync(path.join(SAMPLES_DIR, 'sample.txt'), 'utf8').toUpperCase());
    const piped = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'uppercase.mjs'], 'from stdin');
    expect(piped.stdout).toBe('FROM STDIN');
  });

  it('fails with one readable line and a non-zero exit', async () => {
    const root = path.join(dir, 'root');
    const cases: [string[], RegExp][] = [
      [['invoke', '--backend', 'process', '--root', root, '--scope', '../up', '--storlet', 'x.mjs', '--input', '/dev/null'], /^sandlet: scope name "\.\.\/up" may only hold/],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'nope.mjs', '--input', '/dev/null'], /^sandlet: storlet nope\.mjs is not deployed/],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'uppercase.mjs', '--input', path.join(dir, 'missing')], /^sandlet: cannot open input .*missing: ENOENT/],
      [['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--root', root, '--language', 'cobol'], /^sandlet: registration: language: "cobol" is not supported/],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli'], /required option '--storlet <name>' not specified/],
    ];
    for (const [args, re] of cases) {
      const r = await sandlet(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(re);
    }
  });
});
