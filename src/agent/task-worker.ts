// A task worker: one thread of a storlet daemon's pool. Loads the storlet module once, then runs
// one task at a time on the fds the daemon hands it. Terminating the thread stops even a
// busy-looping storlet: libuv closes the pipes its sockets took over, the daemon all others.
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { Writable, type Readable } from 'node:stream';
import { afterWrite, closeClaimed, ended, FileFdReadable, NonBlockingFdWritable, readableFromNonBlockingFd, writableFromFd } from '../sbus/fd-io.js';
import type { InvokeFn, StorletContext } from './storlet-api.js';
import { makeStorletLogger } from './storlet-log.js';
import { ATOMIC_PIPE_WRITE_BYTES, STATUS_CELL, type FromWorker, type TaskFd, type TaskMessage, type ToWorker, type WorkerInit } from './task-protocol.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (msg: FromWorker): void => port.postMessage(msg);
let current: { taskId: string; cancellation: Cancellation } | undefined;

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** Finds the invoke function: `export default class|object { invoke }` or `export function invoke`. */
function resolveInvoke(mod: Record<string, unknown>, exportName: string | undefined): () => InvokeFn {
  const where = exportName ? `export ${JSON.stringify(exportName)}` : 'default export';
  const target = exportName ? mod[exportName] : (mod.default ?? mod);
  if (exportName && target === undefined) throw new Error(`storlet module has no ${where}`);
  if (typeof target === 'function' && typeof (target as { prototype?: { invoke?: unknown } }).prototype?.invoke === 'function') {
    const Cls = target as new () => { invoke: InvokeFn };
    return () => {
      const instance = new Cls();
      return (ctx) => instance.invoke(ctx);
    };
  }
  if (target && typeof (target as { invoke?: unknown }).invoke === 'function') {
    const obj = target as { invoke: InvokeFn };
    return () => (ctx) => obj.invoke(ctx);
  }
  if (!exportName && typeof mod.invoke === 'function') {
    const fn = mod.invoke as InvokeFn;
    return () => fn;
  }
  if (typeof target === 'function' && exportName) {
    const fn = target as InvokeFn;
    return () => fn;
  }
  throw new Error(`storlet module has no invoke: export a class or object with invoke(ctx), or a function invoke(ctx)`);
}

function toRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== 'object' || value === null) throw new Error('output metadata must be an object');
  for (const [k, v] of Object.entries(value)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

/**
 * Writes `json` and a newline to a task pipe in one atomic write (the gateway reads up to the
 * newline). False when it is too long for that or the write failed: the daemon then writes it.
 */
function writeLine(fd: number, json: string): boolean {
  const line = Buffer.from(`${json}\n`);
  if (line.length > ATOMIC_PIPE_WRITE_BYTES) return false;
  try {
    return writeSync(fd, line) === line.length;
  } catch {
    return false;
  }
}

/** Resolves once a writable flushed, failed or closed: only then may it be destroyed. */
function settledWritable(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableFinished || stream.destroyed) return resolve();
    stream.once('finish', resolve);
    stream.once('error', () => resolve());
    stream.once('close', resolve);
  });
}

/**
 * A task's cancellation. Its AbortController is made only for a storlet that reads ctx.signal
 * (most never do), and the getter sits on a prototype: a getter in each task's object literal
 * kept whole finished tasks alive through young-generation GCs (measured: 5x the promotion).
 */
class Cancellation {
  cancelled = false;
  private abort: AbortController | undefined;

  get signal(): AbortSignal {
    this.abort ??= new AbortController();
    if (this.cancelled) this.abort.abort();
    return this.abort.signal;
  }

  cancel(): void {
    this.cancelled = true;
    this.abort?.abort();
  }
}

class TaskContext implements StorletContext {
  readonly inputs: StorletContext['inputs'];
  readonly output: StorletContext['output'];
  readonly params: StorletContext['params'];
  readonly logger: StorletContext['logger'];

  constructor(
    private readonly cancellation: Cancellation,
    parts: Omit<StorletContext, 'signal'>,
  ) {
    this.inputs = parts.inputs;
    this.output = parts.output;
    this.params = parts.params;
    this.logger = parts.logger;
  }

  get signal(): AbortSignal {
    return this.cancellation.signal;
  }
}

async function runTask(makeInvoke: () => InvokeFn, task: TaskMessage): Promise<void> {
  // The daemon made the pipes non-blocking: a small input is read, and a small output written,
  // right here; a socket takes a pipe over only when it must wait, and then owns it.
  const claim = (f: TaskFd) => () => Atomics.store(init.owned, f.slot!, task.seq);
  const inputs = task.inputs.map((i) => (i.pollable ? readableFromNonBlockingFd(i.fd, claim(i)) : new FileFdReadable(i.fd)));
  const out = task.output.pollable ? new NonBlockingFdWritable(task.output.fd, claim(task.output)) : writableFromFd(task.output.fd, false);
  const cancellation = new Cancellation();
  current = { taskId: task.taskId, cancellation };
  // The storlet may never read an input: an EPIPE there is the peer's business, not a crash.
  for (const s of [...inputs, out]) s.on('error', () => {});

  let metadataSent = false;
  let closeMetadata: (() => void) | undefined;
  const sendMetadata = (record: Record<string, string>): void => {
    if (metadataSent) throw new Error('output metadata was already set');
    metadataSent = true;
    const json = JSON.stringify(record);
    const md = task.metadataPipe;
    if (md.pollable && writeLine(md.fd, json)) {
      // The gateway reads up to the newline; the EOF that a Storlets reader waits for comes once
      // this turn is over (closing costs a socket), or with the output should the task end first.
      closeMetadata = () => {
        closeMetadata = undefined;
        closeClaimed(md.fd, claim(md));
      };
      setImmediate(() => closeMetadata?.());
    } else {
      post({ type: 'metadata', taskId: task.taskId, json });
    }
  };
  // What the storlet writes in one turn of the loop (typically one per input chunk it was handed
  // in that turn) leaves in one writev once the turn is over, rather than chunk by chunk.
  let batching = false;
  const batch = (): void => {
    if (batching || !(out instanceof NonBlockingFdWritable)) return;
    batching = true;
    out.cork();
    setImmediate(() => {
      batching = false;
      out.uncork();
    });
  };
  const output = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (!metadataSent) sendMetadata({});
      batch();
      afterWrite(out, out.write(chunk), cb);
    },
    writev(chunks, cb) {
      if (!metadataSent) sendMetadata({});
      batch();
      let ok = true;
      for (const c of chunks) ok = out.write(c.chunk);
      afterWrite(out, ok, cb);
    },
    final(cb) {
      if (!metadataSent) sendMetadata({});
      out.end();
      ended(out).then(() => cb(), cb);
    },
  });
  output.on('error', () => {});
  const ctx = new TaskContext(cancellation, {
    inputs: task.inputs.map((i, n) => ({
      metadata: i.metadata,
      ...(i.range ? { range: i.range } : {}),
      stream: inputs[n] as Readable,
    })),
    output: { setMetadata: (record) => sendMetadata(toRecord(record)), stream: output },
    params: task.params,
    logger: makeStorletLogger(task.logger?.fd, task.logger?.maxBytes ?? 1024 * 1024),
  });

  let ok = true;
  let message = 'done';
  try {
    await makeInvoke()(ctx);
    if (cancellation.cancelled) throw new Error('cancelled');
    if (!output.writableEnded) output.end();
    await ended(output);
  } catch (err) {
    ok = false;
    message = cancellation.cancelled ? 'storlet task was cancelled' : describe(err);
  }
  if (!ok) {
    ctx.logger.error(`storlet failed: ${message}`);
    out.destroy();
  }
  for (const s of inputs) s.destroy();
  // The daemon closes file fds once we say done: no read may still be on its way to them.
  await Promise.all(inputs.map((s) => (s instanceof FileFdReadable ? s.settled() : undefined)));
  if (ok) await settledWritable(out);
  closeMetadata?.();
  current = undefined;
  if (ok && task.statusFd !== undefined) {
    // Marked first: the gateway may close its end as soon as it has read the line.
    Atomics.store(init.owned, STATUS_CELL, task.seq);
    if (!writeLine(task.statusFd, JSON.stringify({ status: true, message }))) Atomics.store(init.owned, STATUS_CELL, 0);
  }
  if (ok) {
    // The output closes here, after the status line, rather than once the daemon hears of the
    // end: the gateway then finds its EOF and the outcome in one wake-up.
    if (out instanceof NonBlockingFdWritable) out.closeFd();
    else out.destroy();
  }
  post({ type: 'done', taskId: task.taskId, ok, message });
}

async function load(modulePath: string, exportName: string | undefined): Promise<void> {
  let makeInvoke: () => InvokeFn;
  try {
    const mod = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
    makeInvoke = resolveInvoke(mod, exportName);
  } catch (err) {
    post({ type: 'load-error', message: `cannot load storlet ${modulePath}: ${describe(err)}` });
    return;
  }
  port.on('message', (msg: ToWorker) => {
    // runTask handles the storlet's failures; should it fail itself, the thread is in a state
    // nobody knows: it ends (its sockets close with it), and the daemon sees its task's worker die.
    if (msg.type === 'task') runTask(makeInvoke, msg).catch(() => process.exit(1));
    else if (msg.type === 'cancel' && current?.taskId === msg.taskId) current.cancellation.cancel();
  });
  post({ type: 'ready' });
}

port.once('message', (msg: ToWorker) => {
  if (msg.type === 'load') void load(msg.modulePath, msg.exportName);
});
post({ type: 'booted' });
