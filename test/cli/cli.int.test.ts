import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { sandlet } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS } from '../helpers/swift.js';

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

  it('fails with one readable line: exit 1 for failures, 2 for usage errors', async () => {
    const root = path.join(dir, 'root');
    const cases: [string[], RegExp, number][] = [
      [['invoke', '--backend', 'process', '--root', root, '--scope', '../up', '--storlet', 'x.mjs', '--input', '/dev/null'], /^sandlet: scope name "\.\.\/up" may only hold/, 1],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'nope.mjs', '--input', '/dev/null'], /^sandlet: storlet nope\.mjs is not deployed/, 1],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'uppercase.mjs', '--input', path.join(dir, 'missing')], /^sandlet: cannot open input .*missing: ENOENT/, 1],
      [['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--root', root, '--language', 'cobol'], /^sandlet: registration: language: "cobol" is not supported/, 1],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli'], /^sandlet: required option '--storlet <name>' not specified$/, 2],
      [['invoke', '--backend', 'process', '--root', root, '--scope', 'cli', '--storlet', 'x.mjs', '--param', 'novalue'], /^sandlet: option '--param <k=v>' argument 'novalue' is invalid\. expected KEY=VALUE$/, 2],
      [['invoke', '--backend', 'nope'], /^sandlet: option '--backend <name>' argument 'nope' is invalid\. Allowed choices are auto, docker, process, storlets-agent\.$/, 2],
      [['involve'], /^sandlet: unknown command 'involve' \(Did you mean invoke\?\)$/, 2],
      [['scopes', 'restart'], /^sandlet: name a scope or pass --all \(not both\)$/, 2],
      [[], /^Usage: sandlet /, 2],
    ];
    for (const [args, re, code] of cases) {
      const r = await sandlet(args);
      expect(r.code, args.join(' ')).toBe(code);
      if (args.length > 0) expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(re);
    }
    expect((await sandlet(['--version'])).code).toBe(0);
    expect((await sandlet(['invoke', '--help'])).code).toBe(0);
  });

  it('invoke takes log_level from the file and SANDLET_LOG_LEVEL; the flag wins only when given', async () => {
    const root = path.join(dir, 'root');
    const args = ['invoke', '--backend', 'process', '--root', root, '--scope', 'logs', '--storlet', 'uppercase.mjs'];
    const logLines = (stderr: string) => stderr.trim().split('\n').filter((l) => l.startsWith('{"level":'));
    // The command's own default (warn): the metadata line only.
    const quiet = await sandlet(args, 'x');
    expect(quiet.code).toBe(0);
    expect(logLines(quiet.stderr)).toEqual([]);
    const fromEnv = await sandlet(args, 'x', { SANDLET_LOG_LEVEL: 'info' });
    expect(fromEnv.code).toBe(0);
    expect(logLines(fromEnv.stderr).some((l) => JSON.parse(l).level === 30)).toBe(true);
    const file = path.join(dir, 'info.yaml');
    fs.writeFileSync(file, 'log_level: info\n');
    const fromFile = await sandlet([...args, '--config', file], 'x');
    expect(logLines(fromFile.stderr).some((l) => JSON.parse(l).level === 30)).toBe(true);
    const flag = await sandlet([...args, '--config', file, '--log-level', 'warn'], 'x', { SANDLET_LOG_LEVEL: 'debug' });
    expect(flag.code).toBe(0);
    expect(logLines(flag.stderr)).toEqual([]);
  });

  it('refuses an unknown SANDLET_* variable as it refuses an unknown file key', async () => {
    const root = path.join(dir, 'root');
    const r = await sandlet(['invoke', '--backend', 'process', '--root', root, '--scope', 'logs', '--storlet', 'uppercase.mjs'], 'x', { SANDLET_LOG_LEVL: 'debug' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('sandlet: environment: SANDLET_LOG_LEVL is not a sandlet setting (did you mean SANDLET_LOG_LEVEL?)\n');
    const file = path.join(dir, 'typo.yaml');
    fs.writeFileSync(file, 'log_levle: info\n');
    const f = await sandlet(['cache', 'ls', '--root', root, '--config', file]);
    expect(f.stderr).toBe('sandlet: config: unknown option log_levle (did you mean log_level?)\n');
  });

  it.skipIf(skipSwift)('deploys to a real Swift by URL with the token from the environment', async () => {
    requireSwift();
    const swift = await startSwift();
    try {
      const token = await swiftToken(swift.url, SWIFT_USERS.admin);
      const url = `${swift.url}/v1/${SWIFT_USERS.admin.account}`;
      const env = { SANDLET_STORE_TOKEN: token };
      const tool = path.join(dir, 'tool.sh');
      fs.writeFileSync(tool, '#!/bin/sh\necho hi\n');
      const d = await sandlet(['deploy', tool, '--store', url, '--dependency-file', '--dependency-version', '1.2', '--permissions', '0755'], undefined, env);
      expect(d.stdout).toMatch(new RegExp(`^deployed dependency tool.sh \\(\\d+ bytes, sha256 [0-9a-f]{12}…\\) to the store ${url}\n$`));
      const s = await sandlet(['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--store', url, '--dependency', 'tool.sh', '--object-metadata', 'yes'], undefined, env);
      expect(s.code).toBe(0);
      const head = (p: string) => fetch(`${url}${p}`, { method: 'HEAD', headers: { 'x-auth-token': token } });
      expect((await head('/dependency/tool.sh')).headers.get('x-object-meta-storlet-dependency-permissions')).toBe('0755');
      const st = await head('/storlet/uppercase.mjs');
      expect([st.headers.get('x-object-meta-storlet-dependency'), st.headers.get('x-object-meta-storlet-object-metadata')]).toEqual(['tool.sh', 'yes']);
      const denied = await sandlet(['deploy', tool, '--store', url, '--dependency-file', '--dependency-version', '1']);
      expect(denied.stderr.trim()).toMatch(/^sandlet: the store http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_test answered 401 Unauthorized to PUT dependency tool\.sh \(check the store token\)$/);
      expect(denied.stderr).not.toContain(token);
      const bad = await sandlet(['deploy', tool, '--store', url, '--dependency-file', '--dependency-version', '1', '--permissions', '0444'], undefined, env);
      expect(bad.stderr.trim()).toBe('sandlet: registration: dependency permissions: 0444 must keep read and write for the owner (0600)');
    } finally {
      await swift.stop();
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
    expect(json.entries.map((e) => e.links)).toEqual([0, 0]); // scope dirs hold private copies, not links

    expect((await sandlet(['cache', 'verify', '--root', root])).stdout).toBe('2 verified, 0 corrupt\n');
    // Tamper with one entry: verify removes it and says so with a non-zero exit.
    const victim = path.join(root, 'cache', 'objects', json.entries[0]!.sha256);
    fs.chmodSync(victim, 0o644);
    fs.appendFileSync(victim, '// extra');
    const v = await sandlet(['cache', 'verify', '--root', root]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`^corrupt  ${json.entries[0]!.sha256}  \\(now sha256 [0-9a-f]{64}; removed\\)\n1 verified, 1 corrupt\n$`));
    expect(fs.existsSync(victim)).toBe(false);

    // A file hard-linked elsewhere is in use and kept; scope dirs hold their own copies, so
    // pruning the rest takes nothing from them.
    const elsewhere = path.join(dir, 'pinned');
    fs.linkSync(path.join(root, 'cache', 'objects', json.entries[1]!.sha256), elsewhere);
    expect((await sandlet(['cache', 'prune', '--all', '--root', root])).stdout).toMatch(/^evicted 0 entries \(0 B\); .* left/);
    fs.rmSync(elsewhere);
    expect((await sandlet(['cache', 'prune', '--all', '--root', root])).stdout).toMatch(/^evicted 1 entries \(\d+(\.\d)? (B|KiB)\); 0 B left/);
    expect(fs.readdirSync(path.join(root, 'storlets', 'c'))).toEqual(expect.arrayContaining(['identity.mjs', 'uppercase.mjs']));
  });
});
