// A storlet daemon: serves one storlet on its own SBus pipe and runs up to pool_size tasks at a
// time, each in a task worker thread, so that CANCEL can stop any one of them.
import { randomBytes } from 'node:crypto';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { closeQuietly, native } from '../sbus/native.js';
import { writableFromFd } from '../sbus/fd-io.js';
import { Command, FdType, type Reply } from '../sbus/protocol.js';
import { SBusServer, type ReceivedFd, type SBusRequest } from '../sbus/server.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../version.js';
import type { StorletRuntime } from './storlet-runtime.js';
import { STATUS_CELL, type TaskFd, type TaskInput, type TaskMessage } from './task-protocol.js';
import { TaskWorker } from './task-thread.js';

/** After CANCEL a storlet gets this long to notice its signal before its thread is terminated. */
const CANCEL_GRACE_MS = 200;

export interface DaemonOptions {
  /** The daemon's own socket; none when the factory passes its commands on (see handle()). */
  pipe?: string;
  modulePath: string;
  exportName: string | undefined;
  poolSize: number;
  logger: Logger;
  maxDatagramBytes?: number;
  /** A blank worker booted ahead of time (by the factory), used as the first one. */
  firstWorker?: TaskWorker;
  /** Runs tasks in processes of another runtime (Python, exec) instead of JS task threads. */
  runtime?: StorletRuntime;
}

interface Task {
  id: string;
  message: TaskMessage;
  /** Output metadata and status pipes: the daemon's own to close; a JS worker may write a line to each first. */
  metadataFd: number;
  statusFd: number | undefined;
  metadataSent: boolean;
  outcome: { ok: boolean; message: string } | undefined;
  /** File fds, which the daemon keeps and closes when the task is over. */
  kept: number[];
  /** Pipe fds, in slot order: the daemon's to close unless the worker's sockets took them over. */
  handed: number[];
  cancelled: boolean;
  worker?: TaskWorker;
  cancel?: () => void;
  /** The addon's watch on the status pipe (see execute). */
  watch?: number;
}

export class StorletDaemon {
  private readonly opts: DaemonOptions;
  private readonly server: SBusServer;
  private readonly queue: PQueue;
  private readonly idle: TaskWorker[] = [];
  private readonly tasks = new Map<string, Task>();
  private readonly log: Logger;
  private halted = false;
  /** The first worker while it loads the module (a halt during start must end it too). */
  private loading: TaskWorker | undefined;
  /** Workers still loading whose task was cancelled meanwhile (see keepOnceLoaded). */
  private readonly settling = new Set<TaskWorker>();
  // Task ids: a random prefix per daemon and a counter, so ids never repeat and cost nothing.
  private readonly idPrefix = randomBytes(4).toString('hex');
  private taskSeq = 0;
  onHalt: () => void = () => process.exit(0);

  constructor(opts: DaemonOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.queue = new PQueue({ concurrency: Math.max(1, opts.poolSize) });
    this.server = new SBusServer(opts.pipe ?? 'factory connection', { logger: opts.logger, maxDatagramBytes: opts.maxDatagramBytes });
    this.server
      .on(Command.PING, () => ({ status: true, message: 'daemon is running', version: { agent: AGENT_VERSION, protocol: PROTOCOL_VERSION } }))
      .on(Command.EXECUTE, (req) => this.execute(req))
      .on(Command.CANCEL, (req) => this.cancel(req.taskId))
      .on(Command.HALT, () => {
        setImmediate(() => void this.halt());
        return { status: true, message: 'daemon is stopping' };
      });
  }

  /** Loads the module in a first worker (so load errors surface now), then listens. */
  async start(): Promise<void> {
    if (this.opts.runtime) return this.startRuntime(this.opts.runtime);
    const first = this.opts.firstWorker ?? new TaskWorker();
    this.loading = first;
    try {
      await first.load(this.opts.modulePath, this.opts.exportName);
    } catch (err) {
      throw this.halted ? new Error('daemon was stopped while it started') : err;
    } finally {
      this.loading = undefined;
    }
    if (this.halted) {
      await first.retire();
      throw new Error('daemon was stopped while it started');
    }
    this.idle.push(first);
    if (this.opts.pipe !== undefined) this.server.listen();
    this.log.info({ pipe: this.opts.pipe, module: this.opts.modulePath, poolSize: this.opts.poolSize }, 'storlet daemon listening');
  }

  private async startRuntime(runtime: StorletRuntime): Promise<void> {
    // A runtime that dies (a Python host killed, say) takes the daemon with it: its pipe goes,
    // and the gateway starts the daemon again at the next invocation.
    runtime.onExit = (why) => {
      this.log.warn({ why }, 'storlet runtime died; stopping the daemon');
      void this.halt();
    };
    await runtime.start();
    if (this.halted) {
      await runtime.stop();
      throw new Error('daemon was stopped while it started');
    }
    if (this.opts.pipe !== undefined) this.server.listen();
    this.log.info({ pipe: this.opts.pipe, poolSize: this.opts.poolSize }, 'storlet daemon listening');
  }

  /** A command for this daemon that reached its factory (on the gateway's connection). */
  handle(req: SBusRequest): Promise<Reply> {
    return this.server.handle(req);
  }

  async halt(): Promise<void> {
    if (this.halted) return;
    this.halted = true;
    this.server.close();
    const running = [...this.tasks.values()];
    for (const task of running) {
      task.cancelled = true;
      task.cancel?.();
    }
    if (this.opts.runtime) {
      await this.opts.runtime.stop(); // queued tasks, cancelled above, never start
      this.onHalt();
      return;
    }
    // Hosted in the factory, a daemon is gone only once its threads are: a cancelled task's
    // thread ends within the cancel grace.
    const idle = [...this.idle, ...this.settling, ...(this.loading ? [this.loading] : [])];
    await Promise.all([...idle.map((w) => w.retire()), ...running.map((t) => t.worker?.exit)]);
    this.idle.length = 0;
    this.onHalt();
  }

  private spawnWorker(): TaskWorker {
    const worker = new TaskWorker();
    void worker.load(this.opts.modulePath, this.opts.exportName).catch(() => {});
    return worker;
  }

  private execute(req: SBusRequest): Reply {
    const fds = req.claimFds();
    let task: Task;
    try {
      task = this.buildTask(fds, req.params);
    } catch (err) {
      closeQuietly(fds.map((f) => f.fd));
      return { status: false, message: (err as Error).message };
    }
    this.tasks.set(task.id, task);
    // A sandlet gateway closes its status reader when it gives up on the task: that cancels the
    // task here even when its CANCEL never comes (a gateway that died, a CANCEL that found the
    // daemon's queue full), so no task can hold a pool slot after everyone stopped waiting for it.
    if (task.statusFd !== undefined) {
      try {
        task.watch = native.watchHangup(task.statusFd, () => {
          task.watch = undefined;
          // The gateway closes its end once it read the success the task's thread wrote.
          if (statusWritten(task)) return;
          this.log.debug({ task: task.id }, 'task abandoned: its status reader is gone');
          this.cancel(task.id);
        });
      } catch (err) {
        this.log.warn({ task: task.id, err: (err as Error).message }, 'cannot watch the task status pipe; the task is cancelled only by CANCEL');
      }
    }
    void this.queue.add(() => this.run(task));
    return { status: true, message: 'task started', task_id: task.id };
  }

  private buildTask(fds: ReceivedFd[], params: Record<string, unknown>): Task {
    const byType = (type: string) => fds.filter((f) => f.type === type);
    const one = (type: string, required: boolean): ReceivedFd | undefined => {
      const found = byType(type);
      if (found.length > 1) throw new Error(`EXECUTE carries ${found.length} ${type} fds; expected one`);
      if (required && found.length === 0) throw new Error(`EXECUTE carries no ${type} fd`);
      return found[0];
    };
    const inputs = byType(FdType.INPUT_OBJECT);
    if (inputs.length === 0) throw new Error(`EXECUTE carries no ${FdType.INPUT_OBJECT} fd`);
    const output = one(FdType.OUTPUT_OBJECT, true)!;
    const metadata = one(FdType.OUTPUT_OBJECT_METADATA, true)!;
    const logger = one(FdType.LOGGER, false);
    const status = one(FdType.TASK_STATUS, false);
    const kept: number[] = [];
    const handed: number[] = [];
    const classify = (f: ReceivedFd): TaskFd => {
      // Pipes go non-blocking here, where the addon is: the worker then reads and writes them
      // synchronously while they have data or room, and polls only when they do not.
      // A runtime's processes read and write them as plain blocking fds.
      const pollable = native.pollable(f.fd, !this.opts.runtime);
      if (!pollable) {
        kept.push(f.fd);
        return { fd: f.fd, pollable };
      }
      handed.push(f.fd);
      return { fd: f.fd, pollable, slot: handed.length - 1 };
    };
    // The metadata pipe has a slot too, for the worker closes it once it wrote the metadata; it
    // is never a kept fd (the daemon writes and closes one of those itself).
    const metadataFdOf = (fd: number): TaskFd => {
      if (this.opts.runtime || !native.pollable(fd, true)) return { fd, pollable: false };
      handed.push(fd);
      return { fd, pollable: true, slot: handed.length - 1 };
    };
    const strParams: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) strParams[k] = typeof v === 'string' ? v : String(v);
    const seq = ++this.taskSeq;
    const id = this.idPrefix + seq.toString(16).padStart(8, '0');
    const message: TaskMessage = {
      type: 'task',
      taskId: id,
      seq,
      inputs: inputs.map((f): TaskInput => {
        const base = classify(f);
        const range = parseRange(f.metadata.storlets);
        return { ...base, metadata: stringRecord(f.metadata.storage), ...(range ? { range } : {}) };
      }),
      output: classify(output),
      logger: logger ? { ...classify(logger), maxBytes: Number(logger.metadata.storlets.max_bytes) || 1024 * 1024 } : undefined,
      params: strParams,
      metadataPipe: metadataFdOf(metadata.fd),
      statusFd: status?.fd,
    };
    // Any fd of a type this daemon does not use is closed now.
    const used = new Set([...kept, ...handed, metadata.fd, status?.fd]);
    closeQuietly(fds.filter((f) => !used.has(f.fd)).map((f) => f.fd));
    return {
      id, message, kept, handed, cancelled: false,
      metadataFd: metadata.fd, statusFd: status?.fd, metadataSent: false, outcome: undefined,
    };
  }

  private async run(task: Task): Promise<void> {
    try {
      if (task.cancelled) return; // its fds are closed below, as every task's are
      if (this.opts.runtime) return await this.runExternal(this.opts.runtime, task);
      // Every pooled worker has loaded the module: it gets the task in this turn, before
      // EXECUTE's reply is written. A fresh one loads first.
      const pooled = this.idle.pop();
      const worker = pooled ?? this.spawnWorker();
      task.worker = worker;
      if (!pooled && !(await this.loaded(worker, task))) {
        // Cancelled while a fresh worker still loads the module: the task ends now.
        this.keepOnceLoaded(worker);
        return;
      }
      if (task.cancelled) {
        this.release(worker);
        return;
      }
      if (await this.runOn(worker, task)) this.release(worker);
      else void worker.worker.terminate();
    } catch (err) {
      this.log.error({ task: task.id, err: (err as Error).message }, 'task could not run');
      if (!task.cancelled) task.outcome ??= { ok: false, message: `storlet task could not run: ${(err as Error).message}` };
    } finally {
      closeQuietly(task.kept);
      closeUnowned(task);
      this.tasks.delete(task.id);
      this.finishTask(task);
    }
  }

  /** Hands the task's fds to the runtime, which owns and closes them from then on. */
  private async runExternal(runtime: StorletRuntime, task: Task): Promise<void> {
    const m = task.message;
    task.kept = [];
    task.handed = [];
    task.metadataSent = true;
    task.cancel = () => runtime.cancel(task.id);
    task.outcome = await runtime.run({
      id: task.id,
      inputs: m.inputs.map((i) => ({ fd: i.fd, metadata: i.metadata, ...(i.range ? { range: i.range } : {}) })),
      output: m.output.fd,
      metadata: task.metadataFd,
      logger: m.logger ? { fd: m.logger.fd, maxBytes: m.logger.maxBytes } : undefined,
      params: m.params,
    });
    task.cancel = undefined;
    if (task.cancelled) task.outcome = undefined; // reported as cancelled
  }

  /**
   * A worker whose task went while it loaded the module joins the idle pool once loaded (or goes,
   * when the pool is full). It is not terminated mid-load: a thread ended while its module loader
   * has the file open leaks that fd (seen: one per few thousand calls of a mixed soak).
   */
  private keepOnceLoaded(worker: TaskWorker): void {
    this.settling.add(worker);
    worker.load(this.opts.modulePath, this.opts.exportName).then(
      () => {
        this.settling.delete(worker);
        this.release(worker);
      },
      () => this.settling.delete(worker),
    );
  }

  /** A loaded worker with no task goes back to the idle pool, which never holds more than pool_size. */
  private release(worker: TaskWorker): void {
    if (this.halted || this.idle.length >= this.opts.poolSize) void worker.worker.terminate();
    else this.idle.push(worker);
  }

  /** Resolves true once the worker loaded the module, false if the task is cancelled first. */
  private loaded(worker: TaskWorker, task: Task): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      task.cancel = () => resolve(false);
      worker.load(this.opts.modulePath, this.opts.exportName).then(() => resolve(true), reject);
    }).finally(() => {
      task.cancel = undefined;
    });
  }

  /** Closes the metadata pipe (empty if the storlet never set any) and reports the outcome. */
  private finishTask(task: Task): void {
    // A metadata pipe with a slot was closed with the task's other pipes (see closeUnowned).
    if (!task.metadataSent && task.message.metadataPipe.slot === undefined) closeQuietly([task.metadataFd]);
    if (task.statusFd === undefined) return;
    if (task.watch !== undefined) native.unwatch(task.watch);
    // A thread that died with no reason of its own (no error, no CANCEL) was most likely killed
    // from outside, e.g. by the OOM killer under gVisor: 'died' lets the gateway ask the engine.
    const died = !task.outcome && !task.cancelled && !task.worker?.failure;
    const outcome = task.outcome ?? {
      ok: false,
      message: task.cancelled
        ? 'storlet task was cancelled'
        : `storlet worker died before finishing the task${task.worker?.failure ? `: ${task.worker.failure}` : ''}`,
    };
    // A JS worker wrote the success itself (and the gateway may have read it and gone).
    if (statusWritten(task)) closeQuietly([task.statusFd]);
    else writeAndClose(task.statusFd, Buffer.from(JSON.stringify({ status: outcome.ok, message: outcome.message, ...(died ? { died } : {}) })));
  }

  /** Resolves true when the worker can take another task. */
  private runOn(worker: TaskWorker, task: Task): Promise<boolean> {
    return new Promise((resolve) => {
      let terminating = false;
      let settled = false;
      // Exit handling belongs to this task only while it runs: a handler left behind would, when
      // the worker dies tasks later, close fd numbers long since reused.
      const onExit = (): void => {
        if (settled) return;
        settled = true;
        off();
        resolve(false);
      };
      const off = worker.subscribe((msg) => {
        if (settled || !('taskId' in msg) || msg.taskId !== task.id) return;
        if (msg.type === 'metadata' && !task.metadataSent) {
          task.metadataSent = true;
          // Closed here: its slot says so, or the pipes' cleanup would close it again.
          const slot = task.message.metadataPipe.slot;
          if (slot !== undefined) Atomics.store(worker.owned, slot, task.message.seq);
          writeAndClose(task.metadataFd, Buffer.from(msg.json));
        } else if (msg.type === 'done') {
          settled = true;
          off();
          worker.worker.off('exit', onExit);
          task.outcome = { ok: msg.ok, message: msg.message };
          this.log.debug({ task: task.id, ok: msg.ok, message: msg.message }, 'task finished');
          resolve(!terminating);
        }
      });
      if (worker.exited) {
        onExit();
        return;
      }
      worker.worker.once('exit', onExit);
      task.cancel = () => {
        task.cancelled = true;
        if (terminating || settled) return;
        terminating = true;
        // The storlet sees its signal abort; if it has not finished after the grace, its thread
        // goes (and the pipes its sockets had taken over with it).
        worker.worker.postMessage({ type: 'cancel', taskId: task.id });
        setTimeout(() => {
          if (!worker.exited) void worker.worker.terminate();
        }, CANCEL_GRACE_MS).unref();
      };
      worker.worker.postMessage(task.message);
    });
  }

  private cancel(taskId: string | undefined): Reply {
    const task = taskId ? this.tasks.get(taskId) : undefined;
    if (!task) return { status: false, message: `no running task ${JSON.stringify(taskId ?? '')}` };
    task.cancelled = true;
    task.cancel?.();
    return { status: true, message: 'task cancelled' };
  }
}

/** The task's thread wrote its success on the status pipe itself (see STATUS_CELL). */
function statusWritten(task: Task): boolean {
  return task.worker !== undefined && Atomics.load(task.worker.owned, STATUS_CELL) === task.message.seq;
}

/**
 * Closes the task's pipes that no socket of its worker took over. Run once the task is over: the
 * worker finished it or is gone. A pipe whose cell the worker had set is closed by libuv.
 */
function closeUnowned(task: Task): void {
  const owned = task.worker?.owned;
  const seq = task.message.seq;
  closeQuietly(task.handed.filter((_, slot) => owned === undefined || Atomics.load(owned, slot) !== seq));
}

/**
 * Writes a small message to a pipe and closes it: one non-blocking write when it fits (the usual
 * case), else a stream for the rest. Takes ownership of fd.
 */
function writeAndClose(fd: number, bytes: Buffer): void {
  let written = 0;
  try {
    written = native.tryWrite(fd, bytes);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EAGAIN') {
      closeQuietly([fd]); // the reader is gone
      return;
    }
  }
  if (written === bytes.length) {
    closeQuietly([fd]);
    return;
  }
  const rest = writableFromFd(fd);
  rest.on('error', () => rest.destroy());
  rest.end(bytes.subarray(written), () => rest.destroy());
}

function stringRecord(value: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

function parseRange(storlets: Record<string, unknown>): { start: number; end: number } | undefined {
  if (storlets.start === undefined && storlets.end === undefined) return undefined;
  const start = Number(storlets.start ?? 0);
  const end = Number(storlets.end);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new Error(`bad range start=${String(storlets.start)} end=${String(storlets.end)}`);
  }
  return { start, end };
}
