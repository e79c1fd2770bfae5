import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, SAMPLES_DIR } from '../../src/package-root.js';
import { tempDir } from '../helpers/fs.js';
import { startObjectServer } from '../helpers/object-server.js';

const run = promisify(execFile);
const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

async function sandlet(args: string[], input?: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = run(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
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

  it('deploys to an object store by URL with the token from the environment', async () => {
    const server = await startObjectServer({ token: 's3cret' });
    try {
      const env = { SANDLET_STORE_TOKEN: 's3cret' };
      const tool = path.join(dir, 'tool.sh');
      fs.writeFileSync(tool, '#!/bin/sh\necho hi\n');
      const d = await sandlet(['deploy', tool, '--store', server.url, '--dependency-file', '--dependency-version', '1.2', '--permissions', '0755'], undefined, env);
      expect(d.stdout).toMatch(new RegExp(`^deployed dependency tool.sh \\(\\d+ bytes, sha256 [0-9a-f]{12}…\\) to the store ${server.url}\n$`));
      const s = await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--store', server.url, '--dependency', 'tool.sh', '--object-metadata', 'yes'], undefined, env);
      expect(s.code).toBe(0);
      expect(server.objects.get('/dependency/tool.sh')!.meta['x-object-meta-storlet-dependency-permissions']).toBe('0755');
      expect(server.objects.get('/storlet/uppercase.mjs')!.meta).toMatchObject({ 'x-object-meta-storlet-dependency': 'tool.sh', 'x-object-meta-storlet-object-metadata': 'yes' });
      const denied = await sandlet(['deploy', tool, '--store', server.url, '--dependency-file', '--dependency-version', '1']);
      expect(denied.stderr.trim()).toMatch(/^sandlet: the store http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_test answered 401 Unauthorized to PUT dependency tool\.sh \(check the store token\)$/);
      const bad = await sandlet(['deploy', tool, '--store', server.url, '--dependency-file', '--dependency-version', '1', '--permissions', '0444'], undefined, env);
      expect(bad.stderr.trim()).toBe('sandlet: registration: dependency permissions: 0444 must keep read and write for the owner (0600)');
    } finally {
      await server.close();
    }
  });

  it('cache ls, verify and prune', async () => {
    const root = path.join(dir, 'cache-root');
    await sandlet(['deploy', path.join(SAMPLES_DIR, 'identity.mjs'), '--root', root]);
    await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--root', root]);
    for (const storlet of ['identity.mjs', 'uppercase.mjs']) {
      const r = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'c', '--storlet', storlet], 'x');
      expect(r.code).toBe(0);
    }
    const ls = await sandlet(['cache', 'ls', '--root', root]);
    const lines = ls.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SHA256 +SIZE +LAST USED +LINKS +NAMES$/);
    expect(lines.slice(1, 3).map((l) => l.split(/\s{2,}/).at(-1)).sort()).toEqual(['storlet:identity.mjs', 'storlet:uppercase.mjs']);
    expect(lines[3]).toMatch(/^2 entries, .* of 1\.0 GiB in .*cache$/);
    const json = JSON.parse((await sandlet(['cache', 'ls', '--root', root, '--json'])).stdout) as { entries: { sha256: string; links: number }[] };
    expect(json.entries.map((e) => e.links)).toEqual([1, 1]);

    expect((await sandlet(['cache', 'verify', '--root', root])).stdout).toBe('2 verified, 0 corrupt\n');
    // Tamper with one entry: verify removes it and says so with a non-zero exit.
    const victim = path.join(root, 'cache', 'objects', json.entries[0]!.sha256);
    fs.chmodSync(victim, 0o644);
    fs.appendFileSync(victim, '// extra');
    const v = await sandlet(['cache', 'verify', '--root', root]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`^corrupt  ${json.entries[0]!.sha256}  \\(now sha256 [0-9a-f]{64}; removed\\)\n1 verified, 1 corrupt\n$`));
    expect(fs.existsSync(victim)).toBe(false);

    // The remaining entry is linked into the scope's dir: in use, so prune --all keeps it.
    expect((await sandlet(['cache', 'prune', '--all', '--root', root])).stdout).toMatch(/^evicted 0 entries \(0 B\); .* left/);
    fs.rmSync(path.join(root, 'storlets'), { recursive: true });
    expect((await sandlet(['cache', 'prune', '--all', '--root', root])).stdout).toMatch(/^evicted 1 entries \(\d+ B\); 0 B left/);
  });
});
