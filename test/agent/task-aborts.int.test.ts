// A real agent process under the failures a gateway passes on: callers whose uploads break,
// readers that go away (EPIPE), CANCELs (for timeouts, aborts, and while a worker still loads).
// Whatever the mix, the daemon keeps serving and the agent's fds and threads come back to where
// they were (issue 11 item 1: each stuck task used to keep ~5 fds and a pool slot for good).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SBusClient } from '../../src/sbus/client.js';
import { eventually, processUsage, readAll, settled, startFactory, startTask, type AgentTask } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { FIXTURES } from '../helpers/gateway.js';

const POOL = 4;
const KIB_512 = Buffer.alloc(512 * 1024, 0x61);

let dir: string;
let cleanup: () => void;
let factory: Awaited<ReturnType<typeof startFactory>>;
let pid: number;
beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  fs.mkdirSync(path.join(dir, 'st'));
  for (const f of ['misbehave.mjs', 'slow-load.mjs']) fs.copyFileSync(path.join(FIXTURES, f), path.join(dir, 'st', f));
  factory = await startFactory(dir);
  pid = factory.child.pid!;
  const client = new SBusClient(factory.pipe, { timeoutMs: 20_000 });
  for (const name of ['misbehave.mjs', 'slow-load.mjs']) {
    const started = await client.startDaemon({ daemon_language: 'js', storlet_path: path.join(dir, 'st'), storlet_name: name, uds_path: path.join(dir, name), log_level: 'info', pool_size: POOL });
    expect(started.status).toBe(true);
  }
}, 30_000);
afterAll(async () => {
  await factory?.stop();
  cleanup?.();
});

const misbehave = () => path.join(dir, 'misbehave.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the gateway does when it gives up on a task: CANCEL, and close every reader it holds. */
async function abandon(t: AgentTask, readers: number[] = [t.outR, t.mdR, t.stR]): Promise<void> {
  await t.cancel();
  for (const fd of readers) fs.closeSync(fd);
  t.input.destroy();
}

async function success(payload = 'hello agent'): Promise<void> {
  const t = await startTask(misbehave(), {});
  expect(t.reply.status).toBe(true);
  t.input.end(payload);
  const [out, md, st] = await Promise.all([readAll(t.outR), readAll(t.mdR), readAll(t.stR)]);
  expect(out).toBe(payload);
  expect(JSON.parse(md)).toEqual({ mode: 'ok' });
  expect(JSON.parse(st)).toEqual({ status: true, message: 'done' });
}

/** A caller whose upload breaks: 512 KiB, then 20 ms later its stream errors; the gateway gives up. */
async function uploadAbort(): Promise<void> {
  const t = await startTask(misbehave(), {});
  expect(t.reply.status).toBe(true);
  t.input.write(KIB_512);
  await sleep(20);
  await abandon(t);
}

/** A caller that reads a little of the output and leaves. */
async function downloadAbort(): Promise<void> {
  const t = await startTask(misbehave(), {});
  t.input.end(KIB_512);
  await new Promise<void>((resolve) => {
    const out = new net.Socket({ fd: t.outR, readable: true, writable: false });
    out.once('data', () => {
      out.destroy(); // closes outR: the storlet's next write meets EPIPE
      resolve();
    });
  });
  await abandon(t, [t.mdR, t.stR]);
}

/** Output reader gone before the storlet writes a byte; nobody sends CANCEL: the task must end on its own. */
async function epipe(): Promise<{ status: boolean; message: string }> {
  const t = await startTask(misbehave(), {});
  fs.closeSync(t.outR);
  t.input.end(KIB_512);
  const [md, st] = await Promise.all([readAll(t.mdR), readAll(t.stR)]);
  expect(md).toBe('{"mode":"ok"}\n'); // one JSON line
  return JSON.parse(st) as { status: boolean; message: string };
}

async function storletError(): Promise<void> {
  const t = await startTask(misbehave(), { mode: 'fail-before' });
  t.input.end('x');
  const [out, st] = await Promise.all([readAll(t.outR), readAll(t.stR), readAll(t.mdR)]);
  expect(out).toBe('');
  expect(JSON.parse(st)).toEqual({ status: false, message: 'refusing this object: it is blue' });
}

/**
 * A gateway that dies (or whose CANCEL is lost) while its task spins: every reader closes, no
 * CANCEL comes. The closed status reader is what the daemon goes by.
 */
async function vanish(): Promise<void> {
  const t = await startTask(misbehave(), { mode: 'busy-loop' });
  t.input.end('x');
  await sleep(10);
  for (const fd of [t.outR, t.mdR, t.stR]) fs.closeSync(fd);
  t.input.destroy();
}

/** The gateway's storlet timeout: a task that never finishes is cancelled and abandoned. */
async function timeout(mode: 'busy-loop' | 'stall-after'): Promise<void> {
  const t = await startTask(misbehave(), { mode });
  t.input.end('x');
  await sleep(30);
  await abandon(t);
}

/** Runs POOL tasks at once (each waits for its input until all started): the idle pool is full after. */
async function fillPool(): Promise<void> {
  const tasks = await Promise.all(Array.from({ length: POOL }, () => startTask(misbehave(), {})));
  // A task sets its metadata once it runs, then waits for its input.
  expect(await Promise.all(tasks.map((t) => readAll(t.mdR)))).toEqual(tasks.map(() => '{"mode":"ok"}\n'));
  tasks.forEach((t, i) => t.input.end(`fill ${i}`));
  expect(await Promise.all(tasks.map((t) => readAll(t.outR)))).toEqual(tasks.map((_, i) => `fill ${i}`));
  for (const t of tasks) expect(JSON.parse(await readAll(t.stR))).toEqual({ status: true, message: 'done' });
}

describe('agent under aborts, EPIPEs, CANCELs and timeouts', () => {
  beforeAll(async () => {
    // Every path once, so lazily made things (libuv's pool, loaded modules) exist before any count.
    await success();
    await storletError();
  }, 60_000);

  /** The agent's fds and threads with the idle pool full, once two readings in a row agree. */
  const steady = async (): Promise<{ fds: number; threads: number }> => {
    await fillPool();
    return settled(() => processUsage(pid));
  };

  /** With the idle pool full again, the counts come back to `before`. */
  const flat = async (before: { fds: number; threads: number }): Promise<void> => {
    await fillPool();
    await eventually(() => expect(processUsage(pid)).toEqual(before));
  };

  it('8 uploads that break after 512 KiB, then normal calls succeed', async () => {
    const before = await steady();
    for (let i = 0; i < 8; i++) await uploadAbort();
    for (let i = 0; i < 2 * POOL; i++) await success(`after aborts ${i}`);
    await flat(before);
  }, 60_000);

  it('a task whose output reader is gone before it writes ends on its own and says why', async () => {
    const before = await steady();
    const outcomes = [];
    for (let i = 0; i < 2 * POOL; i++) outcomes.push(await epipe());
    for (const o of outcomes) expect(o).toMatchObject({ status: false, message: expect.stringMatching(/EPIPE|closed/) });
    await success();
    await flat(before);
  }, 60_000);

  it('a spinning task whose gateway closed its status reader is cancelled without a CANCEL', async () => {
    const before = await steady();
    const t = await startTask(misbehave(), { mode: 'busy-loop' });
    t.input.end('x');
    await sleep(50);
    fs.closeSync(t.stR);
    // The busy loop never writes: its pipes reach EOF only once the daemon cancelled it.
    expect(await Promise.all([readAll(t.outR), readAll(t.mdR)])).toEqual(['', '']);
    for (let i = 0; i < 2 * POOL; i++) await vanish();
    await success();
    await flat(before);
  }, 60_000);

  it('a CANCEL that arrives while a fresh worker loads the module cancels the task', async () => {
    const slow = path.join(dir, 'slow-load.mjs');
    // The daemon's one loaded worker is held, so the next task needs a fresh worker (2 s to load).
    const held = await startTask(slow, { mode: 'hold' });
    held.input.end();
    expect(await readAll(held.mdR)).toBe('{"held":"yes"}\n');
    const t = await startTask(slow, {});
    t.input.end('x');
    expect(await t.cancel()).toEqual({ status: true, message: 'task cancelled' });
    const [out, md, st] = await Promise.all([readAll(t.outR), readAll(t.mdR), readAll(t.stR)]);
    // Without the fix the task ran once the load was over: output "ran", status done.
    expect({ out, md }).toEqual({ out: '', md: '' });
    expect(JSON.parse(st)).toEqual({ status: false, message: 'storlet task was cancelled' });
    expect(await held.cancel()).toEqual({ status: true, message: 'task cancelled' });
    expect(JSON.parse(await readAll(held.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
    fs.closeSync(held.outR);
    // The daemon still serves.
    const next = await startTask(slow, {});
    next.input.end('y');
    expect(await readAll(next.outR)).toBe('ran');
    for (const fd of [next.mdR, next.stR]) fs.closeSync(fd);
  }, 60_000);

  it('a mixed loop of 300 calls leaves fds and threads flat and the daemon serving', async () => {
    const before = await steady();
    const kinds = [success, storletError, () => timeout('busy-loop'), () => timeout('stall-after'), uploadAbort, downloadAbort, epipe, vanish, success];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 300) {
        const n = next++;
        await kinds[n % kinds.length]!();
      }
    };
    await Promise.all(Array.from({ length: POOL }, worker));
    await success('still serving');
    await flat(before);
  }, 240_000);
});
