import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { sandlet } from '../helpers/cli.js';
import { docker, requireDocker, runId, skipDocker } from '../helpers/docker.js';
import { tempDir } from '../helpers/fs.js';
import { call, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let env: Record<string, string>;
beforeAll(async () => {
  s = await startTestServer();
  env = { SANDLET_TOKEN: s.tokens.operate };
});
afterAll(async () => s.close());

const server = (): string[] => ['--server', `unix:${s.socket}`];

async function invoke(scope: string): Promise<void> {
  const r = await call(s, 'POST', `/v1/invoke/${scope}/identity.mjs`, { token: s.tokens.invoke, body: 'x' });
  expect(r.status).toBe(200);
}

describe('sandlet scopes restart --all (against a real server)', () => {
  it('restarts every running scope, not dead or stopped ones; a failure is reported and the rest still restart', async () => {
    for (const scope of ['ra', 'rb', 'rc', 'rd']) await invoke(scope);
    s.gateway.sandbox('re'); // known to the server, never started: stopped
    // rd dies behind the gateway's back: dead, and left for its next invocation to start.
    const rd = s.gateway.sandbox('rd');
    process.kill(Number(rd.describe().id), 'SIGKILL');
    await vi.waitFor(() => expect(rd.state).toBe('dead'), { timeout: 10_000 });
    // rb cannot start again: its storlet dir is a file now (a real fault on the real filesystem).
    const rbDir = s.gateway.sandbox('rb').paths.hostStorletsDir;
    fs.renameSync(rbDir, `${rbDir}.aside`);
    fs.writeFileSync(rbDir, 'not a dir');
    try {
      const r = await sandlet(['scopes', 'restart', '--all', ...server()], undefined, env);
      expect(r.stdout).toBe('ra: restarted (running)\nrc: restarted (running)\n');
      const err = r.stderr.trim().split('\n');
      expect(err).toHaveLength(2);
      expect(err[0]).toMatch(/^sandlet: rb: restart failed: 500: .*EEXIST/);
      expect(err[1]).toBe('sandlet: 1 of 3 restarts failed');
      expect(r.code).toBe(1);
      const restarts = (scope: string) => s.gateway.sandbox(scope).restartCounts.get('operator') ?? 0;
      expect([restarts('ra'), restarts('rc'), restarts('rd'), restarts('re')]).toEqual([1, 1, 0, 0]);
      expect([rd.state, s.gateway.sandbox('re').state]).toEqual(['dead', 'stopped']);
    } finally {
      fs.rmSync(rbDir);
      fs.renameSync(`${rbDir}.aside`, rbDir);
    }
    // All well again: exit 0, one line per running scope (rb is dead after its failed start: left alone).
    const ok = await sandlet(['scopes', 'restart', '--all', '--json', ...server()], undefined, env);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { scope: string }[]).map((x) => x.scope)).toEqual(['ra', 'rc']);
  });
});

describe.skipIf(skipDocker)('one-shot invoke and scopes stop --all (Docker, no server)', () => {
  it('invoke stops the sandbox it started unless --keep; scopes stop --all --root stops what is left', async () => {
    requireDocker();
    const prefix = `sltest-${runId()}-`;
    const dockerEnv = { SANDLET_CONTAINER_PREFIX: prefix };
    const containers = async () =>
      (await docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) })).map((c) => c.Names[0]!.slice(1 + prefix.length)).sort();
    const { dir, cleanup } = tempDir();
    const root = path.join(dir, 'root');
    const invokeIn = (scope: string, ...extra: string[]) =>
      sandlet(['invoke', '--backend', 'docker', '--root', root, '--scope', scope, '--storlet', 'identity.mjs', ...extra], 'hello', dockerEnv);
    try {
      expect((await sandlet(['deploy', path.join(SAMPLES_DIR, 'identity.mjs'), '--root', root])).code).toBe(0);
      const once = await invokeIn('once');
      expect([once.code, once.stdout]).toEqual([0, 'hello']);
      expect(await containers()).toEqual([]);

      expect((await invokeIn('kept', '--keep')).code).toBe(0);
      expect(await containers()).toEqual(['kept']);
      const [before] = await docker.listContainers({ filters: JSON.stringify({ name: [`${prefix}kept`] }) });
      // A later run adopts it and, not having started it, leaves it running.
      expect((await invokeIn('kept')).stdout).toBe('hello');
      const [after] = await docker.listContainers({ filters: JSON.stringify({ name: [`${prefix}kept`] }) });
      expect(after?.Id).toBe(before!.Id);

      const stop = await sandlet(['scopes', 'stop', '--all', '--root', root, '--backend', 'docker'], undefined, dockerEnv);
      expect(stop).toEqual({ code: 0, stdout: 'kept: stopped\n', stderr: '' });
      expect(await containers()).toEqual([]);
      const again = await sandlet(['scopes', 'stop', '--all', '--root', root, '--backend', 'docker'], undefined, dockerEnv);
      expect(again.code).toBe(0);
      expect(again.stdout).toBe(`no sandbox runs under ${path.join(root, 'pipes')} (docker backend)\n`);
    } finally {
      for (const c of await docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) })) await docker.getContainer(c.Id).remove({ force: true });
      cleanup();
    }
  });
});
