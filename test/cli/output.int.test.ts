// `sandlet … | head -1`: every command ends quietly when its stdout's reader goes away.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_OUTPUT_CLOSED } from '../../src/cli/output.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { firstLineThenClose, sandlet } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';
import { call, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let dir: string;
let cleanup: () => void;
beforeAll(async () => {
  s = await startTestServer();
  ({ dir, cleanup } = tempDir());
});
afterAll(async () => {
  await s.close();
  cleanup();
});

const server = (): string[] => ['--server', `unix:${s.socket}`];

/** Quiet: no stack, no EPIPE message; 141 when a write met the closed pipe, else 0 (all fitted before). */
function expectQuiet(r: { code: number | null; stderr: string }, stderr: RegExp | '' = ''): void {
  expect(r.stderr).not.toMatch(/EPIPE|\n +at |Error/);
  if (stderr === '') expect(r.stderr).toBe('');
  else expect(r.stderr).toMatch(stderr);
  expect([0, EXIT_OUTPUT_CLOSED]).toContain(r.code);
}

describe('a reader that closes after the first line', () => {
  it('operator commands with more output than a pipe holds: scopes ls (table and JSON), logs', async () => {
    const env = { SANDLET_TOKEN: s.tokens.operate };
    // Known (never started) scopes, enough for a table well over twice the 64 KiB a pipe buffers:
    // the reader takes at most one bufferful before it closes, so later writes must meet EPIPE.
    for (let i = 0; i < 10_000; i++) s.gateway.sandbox(`p${i}`);
    for (const args of [['scopes', 'ls'], ['scopes', 'ls', '--json']]) {
      const r = await firstLineThenClose([...args, ...server()], { env });
      expectQuiet(r);
      expect(r.code, args.join(' ')).toBe(EXIT_OUTPUT_CLOSED);
    }
    expect((await call(s, 'POST', '/v1/invoke/out/identity.mjs', { token: s.tokens.invoke, body: 'x' })).status).toBe(200);
    const log = s.gateway.logPath('out', 'identity.mjs');
    fs.appendFileSync(log, 'a log line that is long enough to fill the pipe quickly\n'.repeat(20_000));
    const tail = await firstLineThenClose(['logs', 'out', 'identity.mjs', '-n', '100000', ...server()], { env });
    expectQuiet(tail);
    expect(tail.code).toBe(EXIT_OUTPUT_CLOSED);
    // A followed log writes again only when the log grows: then it finds its reader gone and ends.
    const follow = await firstLineThenClose(['logs', 'out', 'identity.mjs', '-n', '1', '-f', ...server()], {
      env,
      afterClose: () => setImmediate(() => fs.appendFileSync(log, 'one more line\n'.repeat(10))),
    });
    expectQuiet(follow);
    expect(follow.code).toBe(EXIT_OUTPUT_CLOSED);
  });

  it('invoke with a large output: quiet, and its sandbox stopped', async () => {
    const root = path.join(dir, 'root');
    expect((await sandlet(['deploy', path.join(SAMPLES_DIR, 'identity.mjs'), '--root', root])).code).toBe(0);
    const input = path.join(dir, 'big.txt');
    fs.writeFileSync(input, 'line of an object that is read by head -1 only\n'.repeat(100_000));
    const r = await firstLineThenClose(['invoke', '--backend', 'process', '--root', root, '--scope', 'big', '--storlet', 'identity.mjs', '--input', input]);
    expectQuiet(r, /^\{\}\n$/); // the metadata line only
    expect(r.code).toBe(EXIT_OUTPUT_CLOSED);
    expect(r.firstLine).toBe('line of an object that is read by head -1 only');
    // The process sandbox went with the CLI: its channel socket is gone.
    expect(fs.existsSync(path.join(root, 'pipes', 'big', 'sandlet.sock'))).toBe(false);
  });

  it('every other command: demo, deploy, cache, token, help, version', async () => {
    const root = path.join(dir, 'root');
    const demo = await firstLineThenClose(['demo', '--backend', 'process']);
    expectQuiet(demo);
    expect(demo.firstLine).toMatch(/^deployed /);
    const cases: string[][] = [
      ['deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'), '--root', root],
      ['cache', 'ls', '--root', root],
      ['cache', 'ls', '--json', '--root', root],
      ['cache', 'verify', '--root', root],
      ['--help'],
      ['scopes', '--help'],
      ['--version'],
    ];
    for (const args of cases) expectQuiet(await firstLineThenClose(args));
    expectQuiet(await firstLineThenClose(['token', 'create', '--role', 'invoke', '--root', root]), /^sandlet: token \S+ \(invoke\) added to /);
  });
});
