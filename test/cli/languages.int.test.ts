// The CLI with Python and exec storlets: deploy --language, invoke, and the demo's samples.
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { sandlet } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir()));
afterAll(() => cleanup());

describe('sandlet CLI with python and exec storlets', () => {
  it('deploys with --language python|exec and invokes them', async () => {
    const root = path.join(dir, 'root');
    const py = await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.py'), '--language', 'python', '--language-version', '3', '--main', 'uppercase.UpperStorlet', '--root', root]);
    expect(py.stdout).toMatch(/^deployed storlet uppercase\.py \(\d+ bytes/);
    const ex = await sandlet(['deploy', path.join(SAMPLES_DIR, 'gzip.sh'), '--language', 'exec', '--root', root]);
    expect(ex.stdout).toMatch(/^deployed storlet gzip\.sh/);
    const up = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'uppercase.py', '--meta', 'Color=red'], 'from python\n');
    expect(up.code).toBe(0);
    expect(up.stdout).toBe('FROM PYTHON\n');
    expect(JSON.parse(up.stderr.trim())).toEqual({ Color: 'red', 'transformed-by': 'uppercase.py' });
    const out = path.join(dir, 'out.gz');
    const gz = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'gzip.sh', '--input', path.join(SAMPLES_DIR, 'sample.txt'), '--output', out]);
    expect(gz.code).toBe(0);
    const fs = await import('node:fs');
    expect(gunzipSync(fs.readFileSync(out)).toString()).toBe(fs.readFileSync(path.join(SAMPLES_DIR, 'sample.txt'), 'utf8'));
    const bad = await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.py'), '--language', 'python', '--root', root]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^sandlet: registration: main: must be uppercase\.ClassName/);
  });

  it('demo runs a Python sample', async () => {
    const r = await sandlet(['demo', '--backend', 'process', '--storlet', 'uppercase.py']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('STORLETS RUN WHERE THE DATA LIVES.');
    expect(r.stdout).toContain('"transformed-by":"uppercase.py"');
    expect(r.stdout).toMatch(/deployed .*identity\.py \(python\), uppercase\.py \(python\), gzip\.sh \(exec\)/);
  });
});
