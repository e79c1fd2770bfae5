// Python storlets (the OpenStack Storlets Python API): one python3 host process per daemon
// (python/storlet_host.py) imports the storlet once and forks worker processes from it, so a
// task starts warm and a cancel kills just its worker's process group, busy loop, blocking read
// or sleep alike.
// Tasks go to the host as datagrams carrying their fds (SCM_RIGHTS); outcomes come back as JSON
// lines on its stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { PYTHON_HOST_SOURCE } from '../package-root.js';
import { closeQuietly, native } from '../sbus/native.js';
import { PYTHON_MAIN } from './languages.js';
import type { RuntimeOutcome, RuntimeTask, StorletRuntime } from './storlet-runtime.js';


interface HostEvent {
  type: 'ready' | 'load-error' | 'done' | 'drained';
  id?: string;
  ok?: boolean;
  message?: string;
}

/**
 * Debian's python3 (the engine image's, or the host's for the process backend): /usr/bin/python3
 * before any python3 on PATH, which may be a version manager's shim.
 */
export function pythonExecutable(): string {
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** The host program: beside this module (src/ under tests, dist/ in the engine image), else the package's. */
export function hostScript(): string {
  const beside = path.join(path.dirname(fileURLToPath(import.meta.url)), 'python', 'storlet_host.py');
  return fs.existsSync(beside) ? beside : PYTHON_HOST_SOURCE;
}

export class PythonRuntime implements StorletRuntime {
  private host: ChildProcess | undefined;
  private readonly socket = path.join(os.tmpdir(), `sandlet-py-${randomBytes(6).toString('hex')}.sock`);
  private readonly pending = new Map<string, (o: RuntimeOutcome) => void>();
  /**
   * Datagrams waiting for room: a Unix datagram socket queues few (net.unix.max_dgram_qlen, 10
   * by default), fewer than a large pool's tasks. When a send finds the queue full, the host is
   * asked (a byte on its stdin) to drain it and say so; the backlog is sent then, in order.
   */
  private readonly backlog: { body: Buffer; fds: number[]; taskId?: string }[] = [];
  private exited: string | undefined;
  private stopping = false;
  onExit?: (why: string) => void;

  constructor(
    private readonly storletDir: string,
    private readonly main: string,
    private readonly poolSize: number,
    private readonly log: Logger,
  ) {
    if (!PYTHON_MAIN.test(main)) throw new Error(`python storlet main ${JSON.stringify(main)} must be module.Class`);
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const host = spawn(pythonExecutable(), ['-I', hostScript(), this.socket, this.storletDir, this.main, String(this.poolSize)], {
        cwd: this.storletDir,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      });
      this.host = host;
      host.stdin!.on('error', () => {}); // a host that died: its 'exit' fails what is pending
      let started = false;
      host.on('error', (err) => {
        this.exited = `python3 could not start: ${err.message}`;
        if (!started) reject(new Error(this.exited));
      });
      // Its stderr: the host's own troubles and a failed import's traceback.
      readline.createInterface({ input: host.stderr! }).on('line', (line) => this.log.debug({ python: line }, 'python host'));
      readline.createInterface({ input: host.stdout! }).on('line', (line) => {
        let ev: HostEvent;
        try {
          ev = JSON.parse(line) as HostEvent;
        } catch {
          return;
        }
        if (ev.type === 'ready') {
          started = true;
          resolve();
        } else if (ev.type === 'load-error') {
          reject(new Error(ev.message ?? 'cannot load the storlet'));
        } else if (ev.type === 'drained') {
          this.flush();
        } else if (ev.type === 'done' && ev.id) {
          this.settle(ev.id, { ok: ev.ok === true, message: ev.message ?? '' });
        }
      });
      host.on('exit', (code, signal) => {
        this.exited ??= `python host exited (${signal ?? `code ${code}`})`;
        if (!started) reject(new Error(this.exited));
        for (const settle of this.pending.values()) settle({ ok: false, message: this.exited });
        this.pending.clear();
        for (const b of this.backlog.splice(0)) closeQuietly(b.fds);
        fs.rmSync(this.socket, { force: true });
        if (started && !this.stopping) this.onExit?.(this.exited);
      });
    });
  }

  run(task: RuntimeTask): Promise<RuntimeOutcome> {
    const fds = [task.output, task.metadata, ...(task.logger ? [task.logger.fd] : []), ...task.inputs.map((i) => i.fd)];
    const header = {
      type: 'task',
      id: task.id,
      logger: task.logger !== undefined,
      logMaxBytes: task.logger?.maxBytes,
      inputs: task.inputs.map((i) => ({ metadata: i.metadata, range: i.range })),
      params: task.params,
    };
    if (this.exited) {
      closeQuietly(fds);
      return Promise.resolve({ ok: false, message: this.exited });
    }
    const outcome = new Promise<RuntimeOutcome>((resolve) => this.pending.set(task.id, resolve));
    this.send({ body: Buffer.from(JSON.stringify(header)), fds, taskId: task.id });
    return outcome;
  }

  cancel(taskId: string): void {
    if (!this.pending.has(taskId) || this.exited) return;
    const queued = this.backlog.findIndex((b) => b.taskId === taskId);
    if (queued >= 0) {
      // Never sent: it ends here.
      closeQuietly(this.backlog.splice(queued, 1)[0]!.fds);
      this.settle(taskId, { ok: false, message: 'storlet task was cancelled' });
      return;
    }
    this.send({ body: Buffer.from(JSON.stringify({ type: 'cancel', id: taskId })), fds: [] });
  }

  /** Sends now, or queues behind the backlog; the host has its own copies of the fds once sent. */
  private send(item: { body: Buffer; fds: number[]; taskId?: string }): void {
    if (this.backlog.length === 0 && this.trySend(item)) return;
    this.backlog.push(item);
    if (this.backlog.length === 1) this.host?.stdin?.write('\n');
  }

  /** False when the host's queue is full (EAGAIN); any other failure fails the item's task. */
  private trySend(item: { body: Buffer; fds: number[]; taskId?: string }): boolean {
    try {
      native.send(this.socket, item.body, item.fds);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return false;
      if (item.taskId) this.settle(item.taskId, { ok: false, message: `cannot hand the task to python: ${(err as Error).message}` });
    }
    closeQuietly(item.fds);
    return true;
  }

  private flush(): void {
    while (this.backlog.length > 0) {
      if (!this.trySend(this.backlog[0]!)) {
        this.host?.stdin?.write('\n');
        return;
      }
      this.backlog.shift();
    }
  }

  private settle(taskId: string, outcome: RuntimeOutcome): void {
    const settle = this.pending.get(taskId);
    this.pending.delete(taskId);
    settle?.(outcome);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const host = this.host;
    if (!host || host.exitCode !== null || host.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => host.once('exit', () => resolve()));
    // SIGTERM: the host kills every task's group, reaps them and removes its socket.
    host.kill('SIGTERM');
    const timer = setTimeout(() => host.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(timer);
  }
}
