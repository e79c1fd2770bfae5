// The wall, through real Docker, as a hostile storlet would push on it: nothing under its channel
// dir can be replaced, redirected or filled; dialling the gateway again (as another scope) is
// refused and logged; other scopes never notice; fds and processes stay flat through 2,000
// invocations. Runs once per runtime in SANDLET_TEST_RUNTIME (runc, runsc or runc,runsc; default runc).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { CONTAINER_LOG, LABEL_ROOT } from '../../src/runtime/backends/docker.js';
import { collect } from '../helpers/streams.js';
import { deploy, FIXTURES } from '../helpers/gateway.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { docker, ENGINE_IMAGE, requireDocker, runId, skipDocker, TEST_RUNTIMES } from '../helpers/docker.js';
import { openFds } from '../helpers/fs.js';
import { eventually, settled } from '../helpers/agent.js';

const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();

describe.skipIf(skipDocker).each(TEST_RUNTIMES)('the wall around a scope (%s)', (runtime) => {
  const id = runId();
  let root = '';
  let gw: Gateway;
  const logs: { msg: string; scope?: string; why?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { msg: string }) });
  const invoke = async (scope: string, storlet: string, input: string, params: Record<string, string> = {}) =>
    text((await gw.invoke({ scope, storlet, params, input: Buffer.from(input) })).body);

  beforeAll(async () => {
    requireDocker();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'slw-'));
    gw = createGateway(
      {
        backend: 'docker',
        host_root: root,
        container_prefix: `slwall-${id}-`,
        image_namespace: `sandlet-test-${id}`,
        default_container_image_name: ENGINE_IMAGE,
        container_runtime: runtime,
        storlet_timeout_ms: 20_000,
        sandbox_ready_timeout_ms: 30_000,
      },
      { logger },
    );
    deploy(gw, path.join(SAMPLES_DIR, 'identity.mjs'));
    deploy(gw, path.join(FIXTURES, 'probe.mjs'));
    await gw.ready();
  });
  afterAll(async () => {
    await gw?.close({ stopSandboxes: true });
    const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_ROOT}=${path.join(root, 'pipes')}`] }) });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('runs under the runtime asked for', async () => {
    expect(await invoke('victim', 'identity.mjs', 'v')).toBe('v');
    const info = await docker.getContainer(gw.sandbox('victim').describe().id!).inspect();
    expect(info.HostConfig.Runtime).toBe(runtime);
  });

  it('a storlet can neither replace, redirect, fill nor leave its channel dir, and its second dial is refused', async () => {
    expect(await invoke('victim', 'identity.mjs', 'before')).toBe('before');
    expect(await invoke('attacker', 'identity.mjs', 'warm')).toBe('warm');
    const victimId = gw.sandbox('victim').describe().id;
    const attackerDir = path.join(root, 'pipes', 'attacker');
    const victimSocket = path.join(root, 'pipes', 'victim', 'sandlet.sock');
    const listing = fs.readdirSync(attackerDir).sort();
    const socketIno = fs.statSync(path.join(attackerDir, 'sandlet.sock')).ino;
    const refusedBefore = logs.filter((l) => l.msg === 'refused a second factory connection' && l.scope === 'attacker').length;

    const found = JSON.parse(await invoke('attacker', 'probe.mjs', '', { mode: 'hostile', victim: 'victim', victimSocket })) as Record<string, unknown>;
    // Every write to the channel dir fails: it is mounted read-only (EROFS), or not the sandbox's (EACCES).
    for (const key of ['unlink', 'rename', 'symlink', 'replaceWithSymlink', 'chmod', 'createFile', 'mkdir', 'removeDir', 'bindFactoryPipe']) {
      expect([key, found[key]]).toEqual([key, expect.stringMatching(/^(EROFS|EACCES|EPERM|EBUSY)$/)]);
    }
    expect(found.victimVisible).toBe(false);
    // The gateway hangs up at once: before the hello went out (EPIPE, ECONNRESET) or after.
    expect(['closed by the gateway', 'EPIPE', 'ECONNRESET']).toContain(found.secondConnection);
    expect(logs.filter((l) => l.msg === 'refused a second factory connection' && l.scope === 'attacker').length).toBe(refusedBefore + 1);

    // On the host nothing moved; the attacker's scope works on; the victim never noticed.
    expect(fs.readdirSync(attackerDir).sort()).toEqual(listing);
    expect(fs.statSync(path.join(attackerDir, 'sandlet.sock')).ino).toBe(socketIno);
    expect(await invoke('attacker', 'identity.mjs', 'attacker still served')).toBe('attacker still served');
    await gw.sandbox('attacker').stop('test');
    expect(await invoke('victim', 'identity.mjs', 'after')).toBe('after');
    expect(gw.sandbox('victim').describe()).toMatchObject({ state: 'running', id: victimId });
  });

  it('a storlet creates no file on the host outside the fds it was handed', async () => {
    const before = listTree(root);
    const found = JSON.parse(await invoke('writer', 'probe.mjs', '', { mode: 'writes' })) as Record<string, unknown>;
    // runc says EROFS; gVisor checks permissions first and says EACCES. Either way: not written.
    const refused = expect.stringMatching(/^(EROFS|EACCES)$/);
    expect(found).toMatchObject({ root: refused, opt: refused, storlets: refused, tmp: 'ok' });
    // The only new host files are the scope's own: its channel, its storlet dir, its logs (the gateway's).
    const added = listTree(root).filter((f) => !before.includes(f));
    expect(added.every((f) => /^(pipes|storlets|logs)\/writer(\/|$)/.test(f))).toBe(true);
    expect(added.filter((f) => f.startsWith('pipes/')).sort()).toEqual(['pipes/writer', 'pipes/writer/backend', 'pipes/writer/sandlet.sock']);
  });

  it('caps what a storlet prints: the engine keeps no more than the log cap on the host', async () => {
    expect(JSON.parse(await invoke('printer', 'probe.mjs', '', { mode: 'flood', mib: '40' }))).toEqual({ printed: 40 });
    const container = docker.getContainer(gw.sandbox('printer').describe().id!);
    // All of it reached the engine (its last line did), so an uncapped log would hold 40 MiB and more.
    const tail = async () => ((await container.logs({ stdout: true, stderr: true, tail: 3 })) as unknown as Buffer).toString();
    await expect.poll(tail, { timeout: 60_000, interval: 200 }).toContain('flood done');
    const info = await container.inspect();
    expect(info.HostConfig.LogConfig).toEqual(CONTAINER_LOG);
    const dir = path.dirname(info.LogPath);
    const kept = fs.readdirSync(dir).filter((f) => f.includes('-json.log')).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    // 2 files of 8 MiB at most (JSON-wrapped lines; a file may run over by one write).
    expect(kept).toBeGreaterThan(1024 * 1024);
    expect(kept).toBeLessThan(18 * 1024 * 1024);
  });

  it('keeps the gateway\'s fds and the sandbox\'s processes flat through 2,000 invocations', async () => {
    const run = async (i: number) => (await collect((await gw.invoke({ scope: 'flat', storlet: 'identity.mjs', input: Buffer.alloc(512, i) })).body)).length;
    for (let i = 0; i < 40; i += 4) await Promise.all([run(i), run(i + 1), run(i + 2), run(i + 3)]);
    const container = docker.getContainer(gw.sandbox('flat').describe().id!);
    const processes = async () => ((await container.top()).Processes ?? []).length;
    const gatewayFds = () => openFds().filter((e) => !e.includes('socket:')).length;
    const counts = async () => [gatewayFds(), await processes()];
    const before = await settled(counts);
    for (let i = 0; i < 2000; i += 4) {
      expect(await Promise.all([run(i), run(i + 1), run(i + 2), run(i + 3)])).toEqual([512, 512, 512, 512]);
    }
    await eventually(async () => expect(await counts()).toEqual(before));
    expect(gw.sandbox('flat').restarts).toHaveLength(1);
  });
});

function listTree(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(rel);
    if (entry.isDirectory()) out.push(...listTree(path.join(dir, entry.name), rel));
  }
  return out;
}
