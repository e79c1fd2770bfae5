// Python storlets on the real agent (built dist/, the host's Debian python3): the Storlets API
// surface, its failure paths and cancels, driven over real SBus pipes as a gateway drives them.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SBusClient } from '../../src/sbus/client.js';
import { native } from '../../src/sbus/native.js';
import { FdType } from '../../src/sbus/protocol.js';
import { eventually, processUsage, readAll, settled, startFactory, startTask } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { childrenOf } from '../helpers/proc.js';
import { FIXTURES } from '../helpers/gateway.js';

let dir: string;
let cleanup: () => void;
let factory: Awaited<ReturnType<typeof startFactory>>;
let client: SBusClient;
const st = () => path.join(dir, 'st');
const pipe = () => path.join(dir, 'py_probe.Probe');

beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  fs.mkdirSync(st());
  for (const f of ['py_probe.py', 'py_broken.py', 'shout.sh']) fs.copyFileSync(path.join(FIXTURES, f), path.join(st(), f));
  fs.copyFileSync(path.join(FIXTURES, 'py_probe.py'), path.join(st(), 'py_wide.py'));
  fs.copyFileSync(path.join(FIXTURES, 'py_probe.py'), path.join(st(), 'py_mortal.py'));
  fs.chmodSync(path.join(st(), 'shout.sh'), 0o555);
  factory = await startFactory(dir);
  client = new SBusClient(factory.pipe, { timeoutMs: 20_000 });
  const reply = await start('py_probe.Probe', 4);
  expect(reply).toEqual({ status: true, message: 'daemon py_probe.Probe started' });
});
afterAll(async () => {
  await factory.stop();
  cleanup();
});

const start = (name: string, poolSize = 2) =>
  client.startDaemon({ daemon_language: 'python', storlet_path: st(), storlet_name: name, uds_path: path.join(dir, name), log_level: 'info', pool_size: poolSize }, 20_000);

async function run(params: Record<string, string>, input: string, opts: { inputMetadata?: Record<string, string>; logFd?: number } = {}) {
  const t = await startTask(pipe(), params, opts);
  expect(t.reply.status).toBe(true);
  t.input.end(input);
  const [output, metadata, status] = await Promise.all([readAll(t.outR), readAll(t.mdR), readAll(t.stR)]);
  return { output, metadata, status: JSON.parse(status) as { status: boolean; message: string } };
}

describe('python storlets (Storlets API) on the agent', () => {
  it('runs an identity storlet: metadata and bytes pass through', async () => {
    const r = await run({ mode: 'identity' }, 'hello python', { inputMetadata: { color: 'blue' } });
    expect(r).toEqual({ output: 'hello python', metadata: '{"color": "blue"}', status: { status: true, message: 'done' } });
  });

  it('gives input files, output files, params and logger their Storlets behaviour', async () => {
    const log = path.join(dir, 'api.log');
    const logFd = fs.openSync(log, 'a');
    const r = await run({ mode: 'api', answer: '42' }, 'line one\nabcrest\nlast\n', { inputMetadata: { k: 'v' }, logFd });
    fs.closeSync(logFd);
    expect(r.status).toEqual({ status: true, message: 'done' });
    expect(JSON.parse(r.metadata)).toEqual({ report: 'yes' });
    const report = JSON.parse(r.output);
    expect(report).toEqual({
      metadata: { k: 'v' },
      fileno: true,
      first_line: 'line one\n',
      read3: 'abc',
      lines: ['rest\n', 'last\n'],
      params: { mode: 'api', answer: '42', storlet_execution_path: st() },
      extra: [],
      closed: true,
    });
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines.map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'DEBUG a debug line', 'INFO an info line', 'WARN a warn line', 'WARN a warning line', 'ERROR an error line\\nwith a second',
    ]);
  });

  it('reads just the range, from a file input', async () => {
    const file = path.join(dir, 'ranged.txt');
    fs.writeFileSync(file, '0123456789abcdef');
    const fd = fs.openSync(file, 'r');
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const [stR, stW] = native.pipe();
    const reply = await new SBusClient(pipe()).execute({ mode: 'range' }, [
      { fd, type: FdType.INPUT_OBJECT, storlets: { start: '3', end: '7' } },
      { fd: outW, type: FdType.OUTPUT_OBJECT },
      { fd: mdW, type: FdType.OUTPUT_OBJECT_METADATA },
      { fd: stW, type: FdType.TASK_STATUS },
    ]);
    for (const f of [fd, outW, mdW, stW]) native.close(f);
    expect(reply.status).toBe(true);
    expect(await readAll(outR)).toBe('34567');
    await readAll(mdR);
    expect(JSON.parse(await readAll(stR))).toEqual({ status: true, message: 'done' });
  });

  it('fails with the exception line before output, and the output errors after it began', async () => {
    const early = await run({ mode: 'raise-early' }, '');
    expect(early.metadata).toBe('');
    expect(early.status).toEqual({ status: false, message: 'ValueError: no good input second line' });
    const late = await run({ mode: 'raise-late' }, '');
    expect(late.metadata).toBe('{}');
    expect(late.output).toBe('partial');
    expect(late.status).toEqual({ status: false, message: 'RuntimeError: failed midway' });
  });

  it('refuses a write before set_metadata, and metadata set twice', async () => {
    const first = await run({ mode: 'write-first' }, '');
    expect(first.status).toEqual({ status: false, message: 'OSError: Body should be sent after metadata is sent' });
    const twice = await run({ mode: 'metadata-twice' }, '');
    expect(twice.status).toEqual({ status: false, message: 'OSError: Sending metadata twice is not allowed' });
  });

  it('runs a dependency with subprocess, and a print() does not reach the output', async () => {
    expect((await run({ mode: 'subprocess' }, 'quiet words')).output).toBe('QUIET WORDS');
    expect((await run({ mode: 'print' }, '')).output).toBe('ok');
  });

  it.each(['busy', 'sleep', 'blocking-read'])('CANCEL stops a %s task; the daemon serves the next', async (mode) => {
    const t = await startTask(pipe(), { mode });
    expect(t.reply.status).toBe(true);
    expect(await t.cancel()).toEqual({ status: true, message: 'task cancelled' });
    expect(JSON.parse(await readAll(t.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
    expect(await readAll(t.outR)).toBe('');
    expect(await readAll(t.mdR)).toBe('');
    t.input.destroy();
    expect((await run({ mode: 'identity' }, 'next')).output).toBe('next');
  });

  it('runs tasks side by side: calls go on while another task sleeps, and its cancel stops only it', async () => {
    const sleeper = await startTask(pipe(), { mode: 'sleep' });
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => run({ mode: 'identity' }, `side ${n}`)));
    expect(results.map((r) => r.output)).toEqual([1, 2, 3, 4, 5, 6].map((n) => `side ${n}`));
    expect(await sleeper.cancel()).toEqual({ status: true, message: 'task cancelled' });
    expect(JSON.parse(await readAll(sleeper.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
    sleeper.input.destroy();
    for (const fd of [sleeper.outR, sleeper.mdR]) native.close(fd);
  });

  it('takes more concurrent tasks than a datagram queue holds (a pool of 40)', async () => {
    expect((await start('py_wide.Probe', 40)).status).toBe(true);
    const wide = path.join(dir, 'py_wide.Probe');
    const sleepers = await Promise.all(Array.from({ length: 25 }, () => startTask(wide, { mode: 'sleep' })));
    const calls = await Promise.all(Array.from({ length: 15 }, async (_, n) => {
      const t = await startTask(wide, { mode: 'identity' });
      t.input.end(`wide ${n}`);
      return readAll(t.outR).then(async (out) => (await readAll(t.mdR), await readAll(t.stR), out));
    }));
    expect(calls).toEqual(Array.from({ length: 15 }, (_, n) => `wide ${n}`));
    for (const t of sleepers) expect((await t.cancel()).status).toBe(true);
    for (const t of sleepers) {
      expect(JSON.parse(await readAll(t.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
      t.input.destroy();
      for (const fd of [t.outR, t.mdR]) native.close(fd);
    }
  });

  it('kills what a task left running: its process group goes with it', async () => {
    const r = await run({ mode: 'spawn-and-hang' }, '');
    expect(r.output).toBe('started');
    const child = Number(JSON.parse(r.metadata).child);
    await eventually(() => expect(fs.existsSync(`/proc/${child}`) && !/State:\s+Z/.test(fs.readFileSync(`/proc/${child}/status`, 'utf8'))).toBe(false));
  });

  it.each(['leave-fd', 'leave-thread', 'raise-early'])('reuses a worker whose task ended clean, and kills one after %s', async (mode) => {
    const a = (await run({ mode: 'pid' }, '')).output;
    expect((await run({ mode: 'pid' }, '')).output).toBe(a);
    const dirty = await run({ mode }, '');
    const pid = mode === 'raise-early' ? a : dirty.output;
    expect(pid).toBe(a);
    await eventually(() => expect(fs.existsSync(`/proc/${pid}`)).toBe(false));
    const b = (await run({ mode: 'pid' }, '')).output;
    expect(b).not.toBe(a);
  });

  it('stops the daemon when its python host dies, so the gateway can start it again', async () => {
    expect((await start('py_mortal.Probe')).status).toBe(true);
    const host = childrenOf(factory.child.pid!).find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('py_mortal.Probe'));
    expect(host).toBeDefined();
    process.kill(Number(host), 'SIGKILL');
    await eventually(() => expect(fs.existsSync(path.join(dir, 'py_mortal.Probe'))).toBe(false));
    expect((await client.daemonStatus('py_mortal.Probe')).status).toBe(false);
    expect((await start('py_mortal.Probe')).status).toBe(true);
    const t = await startTask(path.join(dir, 'py_mortal.Probe'), { mode: 'identity' });
    t.input.end('alive again');
    expect(await readAll(t.outR)).toBe('alive again');
    await readAll(t.mdR);
    await readAll(t.stR);
  });

  it('fails START_DAEMON with the import error', async () => {
    const reply = await start('py_broken.Broken');
    expect(reply.status).toBe(false);
    expect(reply.message).toMatch(/^cannot load storlet py_broken\.Broken: ModuleNotFoundError: No module named 'nonexistent_module_xyz'/);
    expect((await start('py_probe.NoSuchClass')).message).toMatch(/AttributeError/);
    expect((await start('nested.mod.Class')).message).toMatch(/must be module\.Class/);
  });

  it('keeps fds, processes and threads flat over many invocations', async () => {
    for (let i = 0; i < 5; i++) await run({ mode: 'identity' }, 'warm');
    const host = () => childrenOf(factory.child.pid!);
    const before = await settled(() => ({ agent: processUsage(factory.child.pid!), children: host().length }));
    for (let i = 0; i < 100; i++) await run({ mode: i % 10 === 0 ? 'raise-early' : 'identity' }, `n${i}`);
    await eventually(() => expect({ agent: processUsage(factory.child.pid!), children: host().length }).toEqual(before));
  });
});
