// Python and exec storlets through the whole gateway (catalog, scope install, sandbox, SBus) on
// both backends: the process backend runs the host's Debian python3, the Docker backend the
// engine image's (SANDLET_TEST_IMAGE picks the image) under SANDLET_TEST_RUNTIME (runc or runsc).
// What runs inside the sandbox (a task's leftovers, processes and fds flat) is read from the
// sandbox's own kernel: /proc seen through `docker exec`, or the host's for the process backend.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandletConfigInput } from './../src/config.js';
import { createGateway, type Gateway } from '../src/gateway.js';
import { LABEL_ROOT } from '../src/runtime/backends/docker.js';
import { SAMPLES_DIR } from '../src/package-root.js';
import { collect } from './helpers/streams.js';
import { docker, ENGINE_IMAGE, execIn, requireDocker, runId, skipDocker, TEST_RUNTIME } from './helpers/docker.js';
import { FIXTURES, localStore } from './helpers/gateway.js';
import { eventually, settled } from './helpers/agent.js';
import { childPids, isAlive, openFds } from './helpers/fs.js';

const id = runId();
const SCRIPTS: Record<string, string> = {
  'fails.sh': '#!/bin/sh\necho "cannot do it" >&2\nexit 7\n',
  // A fork bomb: bounded by the sandbox's pids limit, and gone with its process group at the timeout.
  'bomb.sh': '#!/bin/bash\nb() { b | b & }\nb\nsleep 1000\n',
  'meta3.sh': `#!/bin/sh\necho '{"made-by": "meta3"}' >&3\ncat\n`,
  'env.sh': '#!/bin/sh\nprintf "%s|%s" "$STORLET_PARAM_GREETING" "$STORLET_INPUT_METADATA"\n',
  'signal.sh': '#!/bin/sh\nkill -9 $$\n',
  'stubborn.sh': "#!/bin/sh\ntrap '' TERM\necho $$ >&2\nsleep 1000 &\necho $! >&2\nwait\n",
  'leaves-child.sh': '#!/bin/sh\nsleep 1000 &\necho "{\\"child\\": \\"$!\\"}" >&3\necho done\n',
};
/** Lists a process and its descendants from /proc: the sandbox's view when run inside it. */
const PS = `
import json, os, re, sys
me, procs = os.getpid(), {}
for p in os.listdir('/proc'):
    if not p.isdigit() or int(p) == me:
        continue
    try:
        st = open('/proc/%s/status' % p).read()
        cmd = open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\\0', b' ').decode().strip()
        fds, threads = len(os.listdir('/proc/%s/fd' % p)), len(os.listdir('/proc/%s/task' % p))
    except OSError:
        continue
    procs[int(p)] = dict(pid=int(p), ppid=int(re.search(r'PPid:\\s+(\\d+)', st).group(1)), state=re.search(r'State:\\s+(\\S)', st).group(1), cmd=cmd, fds=fds, threads=threads)
keep, root = [], int(sys.argv[1])
for q in procs.values():
    p = q
    while p and p['pid'] != root:
        p = procs.get(p['ppid'])
    if p:
        keep.append(q)
print(json.dumps(keep))
`;
type Proc = { pid: number; ppid: number; state: string; cmd: string; fds: number; threads: number };
const backends = [
  { backend: 'process' as const, skip: false },
  { backend: 'docker' as const, skip: skipDocker },
];

describe.each(backends)('python and exec storlets on the $backend backend', ({ backend, skip }) => {
  let gw: Gateway;
  let root = '';
  const text = async (body: NodeJS.ReadableStream) => (await collect(body)).toString();
  const scope = `lang-${id}`;
  const invoke = (storlet: string, input: string, params: Record<string, string> = {}, inputMetadata: Record<string, string> = {}, logFd?: number) =>
    gw.invoke({ scope, storlet, input: Buffer.from(input), params, inputMetadata, ...(logFd === undefined ? {} : { logFd }) });
  /** The processes of the scope's sandbox (its agent and all it started), as the sandbox sees them. */
  const sandboxProcs = async (): Promise<Proc[]> => {
    if (backend === 'docker') return JSON.parse(await execIn(`sllang-${id}-${scope}`, ['python3', '-c', PS, '1'])) as Proc[];
    const agent = childPids(process.pid).find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(scope));
    return JSON.parse(execFileSync('python3', ['-c', PS, String(agent)], { encoding: 'utf8' })) as Proc[];
  };
  /** Whether a pid runs (a zombie does not) in the sandbox: any process of its kernel, not only the agent's descendants. */
  const running = async (pid: number) =>
    backend === 'docker' ? (await sandboxProcs()).some((p) => p.pid === pid && p.state !== 'Z') : isAlive(pid);
  /** A task's invocation log, to a temp file: its lines. */
  const withLog = async <T>(run: (fd: number) => Promise<T>): Promise<{ result: T; log: () => string }> => {
    const file = path.join(root, `log-${Math.random().toString(36).slice(2)}`);
    const fd = fs.openSync(file, 'a');
    try {
      return { result: await run(fd), log: () => fs.readFileSync(file, 'utf8') };
    } finally {
      fs.closeSync(fd);
    }
  };

  beforeAll(async () => {
    if (skip) return;
    if (backend === 'docker') requireDocker();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-lang-'));
    const config: SandletConfigInput = {
      backend,
      host_root: root,
      storlet_timeout_ms: 4000,
      ...(backend === 'docker'
        ? { default_container_image_name: ENGINE_IMAGE, container_prefix: `sllang-${id}-`, image_namespace: `sandlet-test-${id}`, container_pids_limit: 64, sandbox_ready_timeout_ms: 20_000, container_runtime: TEST_RUNTIME }
        : {}),
    };
    gw = createGateway(config, { logger: pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' }) });
    const store = localStore(gw);
    const reg = { interfaceVersion: '1.0', objectMetadata: 'no' };
    store.deployDependency(fs.readFileSync(path.join(FIXTURES, 'shout.sh')), { name: 'shout.sh', version: '1', permissions: '0755' });
    store.deployStorlet(fs.readFileSync(path.join(FIXTURES, 'py_probe.py')), { ...reg, name: 'py_probe.py', language: 'python', languageVersion: '3', main: 'py_probe.Probe', dependencies: ['shout.sh'] });
    store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, 'uppercase.py')), { ...reg, name: 'uppercase.py', language: 'python', main: 'uppercase.UpperStorlet' });
    store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, 'gzip.sh')), { ...reg, name: 'gzip.sh', language: 'exec', main: 'gzip.sh' });
    for (const [name, script] of Object.entries(SCRIPTS)) store.deployStorlet(Buffer.from(script), { ...reg, name, language: 'exec', main: name });
    await gw.ready();
  });
  afterAll(async () => {
    if (skip) return;
    await gw?.close({ stopSandboxes: true });
    if (backend === 'docker') {
      const mine = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_ROOT}=${path.join(root, 'pipes')}`] }) });
      for (const c of mine) await docker.getContainer(c.Id).remove({ force: true });
    }
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it.skipIf(skip)('runs a Python storlet written for Storlets, with its metadata and log', async () => {
    const r = await invoke('uppercase.py', 'abc\ndef\n', {}, { color: 'red' });
    expect(await text(r.body)).toBe('ABC\nDEF\n');
    expect(r.metadata).toEqual({ color: 'red', 'transformed-by': 'uppercase.py' });
  });

  it.skipIf(skip)('gives input files, output files, params and logger their Storlets behaviour', async () => {
    const { result: r, log } = await withLog(async (fd) => {
      const r = await invoke('py_probe.py', 'line one\nabcrest\nlast\n', { mode: 'api', answer: '42' }, { k: 'v' }, fd);
      return { metadata: r.metadata, body: JSON.parse(await text(r.body)) as Record<string, unknown> };
    });
    expect(r.metadata).toEqual({ report: 'yes' });
    expect(r.body).toEqual({
      metadata: { k: 'v' }, fileno: true, first_line: 'line one\n', read3: 'abc', lines: ['rest\n', 'last\n'],
      params: { mode: 'api', answer: '42', storlet_execution_path: expect.stringContaining('py_probe') }, extra: [], closed: true,
    });
    expect(log()).toMatch(/INFO an info line\n.*WARN a warn line\n.*WARN a warning line\n.*ERROR an error line\\nwith a second\n/);
  });

  it.skipIf(skip)('refuses a write before set_metadata, and metadata set twice', async () => {
    await expect(invoke('py_probe.py', '', { mode: 'write-first' })).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('OSError: Body should be sent after metadata is sent') });
    // The first metadata went out: the output errors.
    const twice = await invoke('py_probe.py', '', { mode: 'metadata-twice' });
    await expect(text(twice.body)).rejects.toThrow(/OSError: Sending metadata twice is not allowed/);
  });

  it.skipIf(skip)('reuses a Python worker whose task ended clean, and replaces one that left an fd or a thread', async () => {
    const pid = async (mode = 'pid') => text((await invoke('py_probe.py', '', { mode })).body);
    const a = await pid();
    expect(await pid()).toBe(a);
    expect(await pid('leave-fd')).toBe(a);
    const b = await pid();
    expect(b).not.toBe(a);
    expect(await running(Number(a))).toBe(false);
    expect(await pid('leave-thread')).toBe(b);
    expect(await pid()).not.toBe(b);
  });

  it.skipIf(skip)('kills what a Python task or an exec storlet left running', async () => {
    const py = await invoke('py_probe.py', '', { mode: 'spawn-and-hang' });
    expect(await text(py.body)).toBe('started');
    const ex = await invoke('leaves-child.sh', '');
    expect(await text(ex.body)).toBe('done\n');
    for (const child of [py.metadata.child, ex.metadata.child].map(Number)) {
      expect(child).toBeGreaterThan(0);
      await eventually(async () => expect(await running(child)).toBe(false));
    }
  });

  it.skipIf(skip)('runs a dependency with subprocess, from storlet_execution_path', async () => {
    const r = await invoke('py_probe.py', 'loud', { mode: 'subprocess' });
    expect(await text(r.body)).toBe('LOUD');
  });

  it.skipIf(skip)('fails with ESTORLET and the exception before output; the body errors after', async () => {
    await expect(invoke('py_probe.py', '', { mode: 'raise-early' })).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('ValueError: no good input second line') });
    const late = await invoke('py_probe.py', '', { mode: 'raise-late' });
    await expect(text(late.body)).rejects.toThrow(/failed midway/);
  });

  it.skipIf(skip)('times out a busy Python loop and serves the next call', async () => {
    await expect(invoke('py_probe.py', '', { mode: 'busy' })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(await text((await invoke('py_probe.py', 'after', { mode: 'identity' })).body)).toBe('after');
  });

  it.skipIf(skip)('cancels a sleeping Python task and a blocking read when the caller goes', async () => {
    // The input ends as the caller goes, so a blocking read may end its task just as the CANCEL
    // kills its worker: a worker killed so was once reused, and the next call failed. Thrice, for that race.
    for (const mode of ['sleep', 'blocking-read', 'blocking-read', 'blocking-read']) {
      const gone = new AbortController();
      const input = new PassThrough(); // never ended: the blocking read waits on it
      const call = gw.invoke({ scope, storlet: 'py_probe.py', input, params: { mode }, signal: gone.signal });
      setTimeout(() => gone.abort(), 500);
      await expect(call).rejects.toMatchObject({ code: 'ECANCELLED' });
      input.destroy();
      expect(await text((await invoke('py_probe.py', 'next', { mode: 'identity' })).body)).toBe('next');
    }
  });

  it.skipIf(skip)('runs the gzip exec sample and fails an exec storlet with its last stderr line', async () => {
    const r = await invoke('gzip.sh', 'zip me '.repeat(100), {}, { color: 'red', 'Content-Length': '700' });
    expect(gunzipSync(await collect(r.body)).toString()).toBe('zip me '.repeat(100));
    expect(r.metadata).toEqual({ color: 'red' });
    await expect(invoke('fails.sh', '')).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('fails.sh exited with code 7: cannot do it') });
  });

  it.skipIf(skip)('takes exec metadata from fd 3, params and input metadata from the environment', async () => {
    const r = await invoke('meta3.sh', 'body', {}, { color: 'red' });
    expect(r.metadata).toEqual({ 'made-by': 'meta3' });
    expect(await text(r.body)).toBe('body');
    const env = await invoke('env.sh', '', { greeting: 'hi' }, { k: 'v' });
    expect(await text(env.body)).toBe('hi|{"k":"v"}');
  });

  it.skipIf(skip)('fails an exec storlet killed by a signal', async () => {
    await expect(invoke('signal.sh', '')).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('signal.sh was killed by SIGKILL') });
  });

  it.skipIf(skip)('times out an exec storlet that ignores SIGTERM: its whole process group goes', async () => {
    const { result, log } = await withLog((fd) => invoke('stubborn.sh', '', {}, {}, fd).then(() => 'answered', (err: { code?: string }) => err.code));
    expect(result).toBe('ETIMEDOUT');
    const pids = log().match(/INFO (\d+)/g)!.map((l) => Number(l.slice(5)));
    expect(pids).toHaveLength(2);
    for (const pid of pids) await eventually(async () => expect(await running(pid)).toBe(false));
  });

  it.skipIf(skip)('keeps the gateway\'s fds flat over many Python and exec invocations, failures included', async () => {
    const round = async (i: number) => {
      if (i % 10 === 0) await invoke('fails.sh', '').catch(() => undefined);
      else if (i % 10 === 5) await invoke('py_probe.py', '', { mode: 'raise-early' }).catch(() => undefined);
      else await collect((await invoke(i % 2 ? 'py_probe.py' : 'gzip.sh', `n${i}`, { mode: 'identity' })).body);
    };
    for (let i = 0; i < 10; i++) await round(i);
    // In the sandbox: the same processes (agent, Python hosts and workers, none of a task's) with
    // the same fds and threads each; pids differ, as dirty workers are replaced.
    const inside = async () => (await sandboxProcs()).map((p) => `${p.cmd} ${p.state} fds=${p.fds} threads=${p.threads}`).sort();
    // Two equal readings: one process caught running (state R) must not become the baseline.
    const before = { gateway: openFds().length, sandbox: await settled(inside) };
    for (let i = 0; i < 80; i++) await round(i);
    // At most as many: a Docker API keep-alive socket may close meanwhile, never may one leak.
    await eventually(() => expect(openFds().length).toBeLessThanOrEqual(before.gateway));
    await eventually(async () => expect(await inside()).toEqual(before.sandbox));
  });

  // Only a sandbox bounds a fork bomb: the process backend has no pids limit, so the test is
  // defined for Docker only (no skip to count).
  if (backend === 'docker') it.skipIf(skip)('bounds a fork bomb by the pids limit; the timeout kills it all', async () => {
    const restarts = gw.sandbox(scope).restarts.length;
    await expect(invoke('bomb.sh', '')).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    // The timeout killed all of it (its processes go as the sandbox's init reaps them; until then
    // they still count against the limit), and the sandbox lived (under gVisor too: README § gVisor tier).
    await eventually(async () => expect((await sandboxProcs()).filter((p) => /bomb\.sh|sleep/.test(p.cmd))).toEqual([]));
    expect(gw.sandbox(scope).restarts.length).toBe(restarts);
    expect(await text((await invoke('gzip.sh', '')).body)).not.toBe(undefined);
    expect(await text((await invoke('uppercase.py', 'still here')).body)).toBe('STILL HERE');
  });
});
