import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AGENT_MAIN } from '../../src/package-root.js';
import { SBusClient } from '../../src/sbus/client.js';
import { native } from '../../src/sbus/native.js';
import { FdType, type Reply } from '../../src/sbus/protocol.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';
import { openFds } from './fs.js';

/** Starts a real agent factory process; resolves once it logged that it listens. */
export async function startFactory(pipesDir: string, nodeBinary = process.execPath): Promise<{ child: ChildProcess; pipe: string; stop: () => Promise<void> }> {
  const pipe = path.join(pipesDir, 'factory_pipe');
  const child = spawn(nodeBinary, [AGENT_MAIN, 'factory', '--pipe', pipe, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (c: Buffer) => {
      log += c.toString();
      if (log.includes('daemon factory listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`factory exited with ${code}: ${log}`)));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  return { child, pipe, stop };
}

/**
 * What a process holds, from /proc: its threads, and its open fds less each thread's own event-loop
 * fds (anon inodes) and /dev/null (a thread opens it for itself, a varying number of times). What
 * a task could leak (pipes, sockets, files) is all counted.
 */
export function processUsage(pid: number): { fds: number; threads: number } {
  const fds = openFds(pid).filter((entry) => !entry.endsWith(' -> /dev/null')).length;
  return { fds, threads: fs.readdirSync(`/proc/${pid}/task`).length };
}

/**
 * Waits until check() passes or timeoutMs ran out (then throws its last failure). For states only
 * /proc shows, which no event announces: fds closed and threads ended by another process.
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * A reading taken once two in a row, 100 ms apart, agree (compared as JSON): a baseline that a
 * moment's activity (an fd about to close, a thread about to end) cannot skew.
 */
export async function settled<T>(read: () => T | Promise<T>, timeoutMs = 15_000): Promise<T> {
  let last = JSON.stringify(await read());
  return eventually(async () => {
    await new Promise((r) => setTimeout(r, 100));
    const value = await read();
    const now = JSON.stringify(value);
    const same = now === last;
    last = now;
    if (!same) throw new Error(`still changing: ${now}`);
    return value;
  }, timeoutMs);
}

/**
 * One task on a storlet daemon, with the pipes the gateway would make: the test drives the far
 * ends (input writer, output, metadata and status readers) as a gateway or a failing caller would.
 */
export interface AgentTask {
  reply: Reply;
  /** The input's write end, already a socket: write, end or destroy it. */
  input: net.Socket;
  outR: number;
  mdR: number;
  stR: number;
  cancel(): Promise<Reply>;
}

export async function startTask(pipe: string, params: Record<string, string>, opts: { inputMetadata?: Record<string, string>; logFd?: number } = {}): Promise<AgentTask> {
  const [inR, inW] = native.pipe();
  const [outR, outW] = native.pipe();
  const [mdR, mdW] = native.pipe();
  const [stR, stW] = native.pipe();
  const client = new SBusClient(pipe, { timeoutMs: 20_000 });
  let reply: Reply;
  try {
    reply = await client.execute(params, [
      { fd: inR, type: FdType.INPUT_OBJECT, storage: opts.inputMetadata ?? {} },
      { fd: outW, type: FdType.OUTPUT_OBJECT },
      { fd: mdW, type: FdType.OUTPUT_OBJECT_METADATA },
      ...(opts.logFd === undefined ? [] : [{ fd: opts.logFd, type: FdType.LOGGER }]),
      { fd: stW, type: FdType.TASK_STATUS },
    ]);
  } finally {
    for (const fd of [inR, outW, mdW, stW]) native.close(fd);
  }
  const input = new net.Socket({ fd: inW, readable: false, writable: true });
  input.on('error', () => {}); // EPIPE once the storlet is gone: the test looks at outcomes
  return { reply, input, outR, mdR, stR, cancel: () => client.cancel(reply.task_id ?? '') };
}

/** Reads a pipe to EOF (and closes it). */
export function readAll(fd: number, timeoutMs = 20_000): Promise<string> {
  return readPipeToEnd(fd, { maxBytes: 64 << 20, timeoutMs, what: `pipe ${fd}` }).then(String);
}
