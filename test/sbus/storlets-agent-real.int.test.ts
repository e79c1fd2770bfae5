// sandlet's StorletsAgent against the REAL OpenStack Storlets agent: opt-in, run when
// SANDLET_STORLETS_SRC points at a Storlets source tree whose C libsbus is built
// (src/c/sbus/libsbus.so, as Storlets' own install_libs.sh builds it). CI has neither the source nor
// the network to get it, so there this suite is skipped; storlets-agent.int.test.ts checks the same
// wire against stand-ins. The agent runs unmodified, as Storlets' Docker runtime runs it: its
// daemon factory is the container's entrypoint, libsbus and the Python package under
// /usr/local/lib/storlets, the scripts under /usr/local/libexec/storlets, the channel dir at
// /mnt/channels, the storlets dir at /var/lib/storlets, as the gateway's user. The image is
// sandlet's engine image, for its Debian python3 and `logger` (nothing of sandlet runs in it).
import fs from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createGateway } from '../../src/gateway.js';
import { StorletsAgent } from '../../src/runtime/storlets-agent.js';
import { ENGINE_IMAGE, docker, dockerReason, runId } from '../helpers/docker.js';
import { tempDir } from '../helpers/fs.js';

const SRC = process.env.SANDLET_STORLETS_SRC;
const SAMPLES = 'StorletSamples/python/storlet_samples';
const SCOPE = 'st';

async function readBody(body: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** Resolves once `file` exists in `dir` (the agent bound its socket there). */
function appears(dir: string, file: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = fs.watch(dir);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`${file} did not appear in ${dir} within ${timeoutMs} ms`)), timeoutMs);
    watcher.on('change', () => {
      if (fs.existsSync(path.join(dir, file))) done();
    });
    if (fs.existsSync(path.join(dir, file))) done();
  });
}

describe.skipIf(!SRC)('StorletsAgent and the real Storlets agent (SANDLET_STORLETS_SRC)', () => {
  const src = path.resolve(SRC ?? '.');
  let dir: string;
  let cleanup: () => void;
  let container: Dockerode.Container | undefined;
  let agent: StorletsAgent;
  const sample = (rel: string): Buffer => fs.readFileSync(path.join(src, SAMPLES, rel));

  beforeAll(async () => {
    if (dockerReason) throw new Error(`the real Storlets agent runs in a container: ${dockerReason}`);
    const libsbus = path.join(src, 'src/c/sbus/libsbus.so');
    if (!fs.existsSync(libsbus)) throw new Error(`${libsbus} is missing: build Storlets' C libsbus first, as its install_libs.sh does`);
    ({ dir, cleanup } = tempDir('sl-storlets-'));
    // Scope `st` of a gateway rooted at `dir` (backend storlets-agent) finds its agent here.
    const roots = { hostPipeDir: path.join(dir, 'pipes', SCOPE), hostStorletsDir: path.join(dir, 'storlets', SCOPE), hostLogDir: path.join(dir, 'logs', SCOPE) };
    // As Storlets' RunTimePaths.create_host_pipe_dir makes it.
    fs.mkdirSync(roots.hostPipeDir, { recursive: true, mode: 0o777 });
    fs.chmodSync(roots.hostPipeDir, 0o777);
    fs.mkdirSync(roots.hostStorletsDir, { recursive: true, mode: 0o755 });
    const name = `sandlet-test-storlets-${runId()}`;
    const bind = (source: string, target: string, readOnly = false): Dockerode.MountSettings => ({ Type: 'bind', Source: source, Target: target, ReadOnly: readOnly });
    container = await docker.createContainer({
      name,
      Image: ENGINE_IMAGE,
      User: `${process.getuid!()}:${process.getgid!()}`,
      Entrypoint: ['/usr/local/libexec/storlets/storlets-daemon-factory'],
      Cmd: ['/mnt/channels/factory_pipe', 'DEBUG', name],
      Env: ['PYTHONPATH=/usr/local/lib/storlets/python'],
      Labels: { 'io.sandlet.test': 'storlets-agent-real' },
      HostConfig: {
        NetworkMode: 'none',
        Mounts: [
          bind(roots.hostPipeDir, '/mnt/channels'),
          bind(roots.hostStorletsDir, '/var/lib/storlets'),
          bind(libsbus, '/usr/local/lib/storlets/libsbus.so', true),
          bind(path.join(src, 'storlets'), '/usr/local/lib/storlets/python/storlets', true),
          bind(path.join(src, 'bin'), '/usr/local/libexec/storlets', true),
        ],
      },
    });
    await container.start();
    await appears(roots.hostPipeDir, 'factory_pipe', 30_000);
    agent = new StorletsAgent({ ...roots, poolSize: 1 });
  });

  afterAll(async () => {
    agent?.close();
    await container?.remove({ force: true });
    cleanup?.();
  });

  it('answers PING, starts the sample Python storlet and runs it: transformed output and metadata back', async () => {
    expect(await agent.ping()).toBe(true);
    await agent.start({ main: 'simple.SimpleStorlet', storlet: { name: 'simple.py', content: sample('simple/simple.py') } });
    const input = 'abcdefghijklmonp'.repeat(1000);
    const res = await agent.invoke('simple.SimpleStorlet', { input: Buffer.from(input), inputMetadata: { color: 'blue' } });
    expect(res.metadata).toEqual({ color: 'blue', test: 'simple' });
    expect(await readBody(res.body)).toBe(input);
    // Its logger wrote to the storlet's log in Storlets' layout.
    expect(fs.readFileSync(path.join(dir, 'logs', SCOPE, 'simple.SimpleStorlet/storlet_invoke.log'), 'utf8')).toContain('simple.SimpleStorlet DEBUG: Complete');
    // Started again with the same files: nothing restarted, the same daemon answers.
    await agent.start({ main: 'simple.SimpleStorlet', storlet: { name: 'simple.py', content: sample('simple/simple.py') } });
    const again = await agent.invoke('simple.SimpleStorlet', { input: Buffer.from('x') });
    expect(await readBody(again.body)).toBe('x');
  });

  it('runs an executable dependency from storlet_execution_path', async () => {
    await agent.start({
      main: 'exec_dep.ExecDepStorlet',
      storlet: { name: 'exec_dep.py', content: sample('exec_dep/exec_dep.py') },
      dependencies: [{ name: 'get42.sh', content: sample('exec_dep/get42.sh'), mode: 0o755 }],
    });
    const res = await agent.invoke('exec_dep.ExecDepStorlet', { input: Buffer.from('data') });
    expect(res.metadata['depend-ret-code']).toBe('42');
    expect(await readBody(res.body)).toBe('data');
  });

  it('fails a storlet that raises before its metadata, and its daemon serves the next call', async () => {
    await agent.start({ main: 'broken.BrokenStorlet', storlet: { name: 'broken.py', content: sample('broken/broken.py') } });
    await expect(agent.invoke('broken.BrokenStorlet', { input: Buffer.from('x'), timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'ESTORLET' });
    await expect(agent.invoke('broken.BrokenStorlet', { input: Buffer.from('x'), timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'ESTORLET' });
  });

  it('fails START_DAEMON of a module that does not import, with the agent\'s message', async () => {
    const err = await agent.start({ main: 'noimport.NoImport', storlet: { name: 'noimport.py', content: 'import no_such_module_here\n' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ESTORLET' });
    // Which of its two words the factory says depends on whether the daemon was reaped yet.
    expect((err as Error).message).toMatch(/noimport\.NoImport could not start on the Storlets agent: The storlet daemon noimport\.NoImport is (terminated|started but not responsive)/);
  });

  it('cancels a task that times out: the agent kills it, and the next start() starts the daemon its CANCEL ended', async () => {
    const code = [
      'import time',
      'class Sleeper(object):',
      '    def __init__(self, logger):',
      '        self.logger = logger',
      '    def __call__(self, in_files, out_files, params):',
      "        if params.get('sleep'):",
      '            time.sleep(100000)',
      "        out_files[0].set_metadata({'slept': 'no'})",
      '        out_files[0].write(in_files[0].read())',
      '        out_files[0].close()',
      '',
    ].join('\n');
    await agent.start({ main: 'sleeper.Sleeper', storlet: { name: 'sleeper.py', content: code } });
    await expect(agent.invoke('sleeper.Sleeper', { input: Buffer.from('x'), params: { sleep: '1' }, timeoutMs: 1500 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    // Storlets' daemon ends its main loop after CANCEL: start() (as before every invocation) starts a new one.
    await agent.start({ main: 'sleeper.Sleeper', storlet: { name: 'sleeper.py', content: code } });
    // One process runs the storlet: the new daemon. The sleeping task (a fork of the old one) was killed.
    const top = (await container!.top({ ps_args: '-eo pid,args' })) as { Processes: string[][] };
    expect(top.Processes.filter((p) => p.join(' ').includes('storlets-daemon sleeper.Sleeper'))).toHaveLength(1);
    // pool_size 1: a task still held would make this EXECUTE wait for good.
    const res = await agent.invoke('sleeper.Sleeper', { input: Buffer.from('awake'), timeoutMs: 20_000 });
    expect(res.metadata).toEqual({ slept: 'no' });
    expect(await readBody(res.body)).toBe('awake');
  });

  it('refuses a datagram over libsbus\'s 4096 bytes before sending it; the agent is unharmed', async () => {
    await expect(agent.invoke('simple.SimpleStorlet', { input: Buffer.from('x'), params: { big: 'y'.repeat(5000) } })).rejects.toMatchObject({ code: 'ETOOLARGE' });
    expect(await agent.ping()).toBe(true);
    const res = await agent.invoke('simple.SimpleStorlet', { input: Buffer.from('still here') });
    expect(await readBody(res.body)).toBe('still here');
  });

  it('is driven by a sandlet gateway (backend storlets-agent, sbus_codec json): deployed samples run from its store', async () => {
    const gateway = createGateway({ host_root: dir, backend: 'storlets-agent', sbus_codec: 'json', storlet_daemon_log_level: 'debug' }, { logger: pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' }) });
    try {
      const reg = { kind: 'storlet' as const, language: 'python', languageVersion: '3', interfaceVersion: '1.0', objectMetadata: 'no' };
      await gateway.deploy(sample('simple/simple.py'), { ...reg, name: 'simple.py', main: 'simple.SimpleStorlet', dependencies: [] });
      await gateway.deploy(sample('exec_dep/get42.sh'), { kind: 'dependency', name: 'get42.sh', version: '1', permissions: '0755' });
      await gateway.deploy(sample('exec_dep/exec_dep.py'), { ...reg, name: 'exec_dep.py', main: 'exec_dep.ExecDepStorlet', dependencies: ['get42.sh'] });
      const input = 'through sandlet\n'.repeat(5000);
      const res = await gateway.invoke({ scope: SCOPE, storlet: 'simple.py', input: Buffer.from(input), inputMetadata: { color: 'blue' } });
      expect(res.metadata).toEqual({ color: 'blue', test: 'simple' });
      expect(await readBody(res.body)).toBe(input);
      const dep = await gateway.invoke({ scope: SCOPE, storlet: 'exec_dep.py', input: Buffer.from('d') });
      expect(dep.metadata['depend-ret-code']).toBe('42');
      expect(await readBody(dep.body)).toBe('d');
    } finally {
      await gateway.close();
    }
  });
});
