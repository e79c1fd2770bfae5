// The daemon's handle on one task worker thread. Kept apart from the daemon (and light to import)
// so the factory can boot a blank worker before it loads anything else.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { MAX_TASK_FDS, type FromWorker, type WorkerInit } from './task-protocol.js';

const WORKER_SCRIPT = fileURLToPath(new URL('./task-worker.js', import.meta.url));
/** Longest retire() waits for a module load to end before it ends the thread anyway. */
const RETIRE_WAIT_MS = 5000;

export class TaskWorker {
  readonly worker: Worker;
  private loaded: Promise<void> | undefined;
  private listeners = new Set<(msg: FromWorker) => void>();
  exited = false;
  /** Why the thread died on its own (e.g. its heap limit), if it did. */
  failure: string | undefined;
  readonly exit: Promise<void>;
  /** Settles once the thread's own script ran, or it exited. */
  private readonly booted: Promise<void>;

  /** Which task pipes this worker's sockets own (see WorkerInit). */
  readonly owned = new Int32Array(new SharedArrayBuffer(4 * (MAX_TASK_FDS + 1))); // + STATUS_CELL

  /** Boots a blank worker thread; load() gives it its storlet. */
  constructor(heapLimitMb = workerHeapLimitMb()) {
    const data: WorkerInit = { owned: this.owned };
    const resourceLimits: ResourceLimits | undefined = heapLimitMb ? { maxOldGenerationSizeMb: heapLimitMb } : undefined;
    this.worker = new Worker(WORKER_SCRIPT, { workerData: data, stdout: false, stderr: false, resourceLimits });
    this.worker.on('message', (msg: FromWorker) => {
      for (const l of this.listeners) l(msg);
    });
    // Surfaces through 'exit'; the reason is kept for the task's error.
    this.worker.on('error', (err: Error & { code?: string }) => {
      this.failure = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `it ran out of memory (heap limit ${heapLimitMb ?? '?'} MB)` : err.message;
    });
    this.exit = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.exited = true;
        resolve();
      }),
    );
    this.booted = new Promise((resolve) => {
      const off = this.subscribe((msg) => {
        if (msg.type !== 'booted') return;
        off();
        resolve();
      });
      void this.exit.then(resolve);
    });
  }

  /**
   * Ends the thread once no module is loading in it (its own script, or the storlet's): a thread
   * ended while its module loader holds a file open leaks that fd in the process (seen in soaks:
   * the worker script and a storlet module, open after daemons were stopped mid-load). A load
   * still going after RETIRE_WAIT_MS is cut short all the same.
   */
  async retire(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      (this.loaded ?? this.booted).catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, RETIRE_WAIT_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    await this.worker.terminate();
  }

  /** Loads the storlet module in the thread; resolves when it found invoke. Idempotent. */
  load(modulePath: string, exportName: string | undefined): Promise<void> {
    if (this.loaded) return this.loaded;
    this.loaded = new Promise((resolve, reject) => {
      const off = this.subscribe((msg) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'load-error') reject(new Error(msg.message));
        else return;
        off();
      });
      void this.exit.then(() => reject(new Error('storlet worker exited while loading the module')));
    });
    this.loaded.catch(() => void this.worker.terminate());
    this.worker.postMessage({ type: 'load', modulePath, exportName });
    return this.loaded;
  }

  subscribe(fn: (msg: FromWorker) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

let heapLimit: number | undefined | null = null;

/**
 * A heap bound for each task thread: half the sandbox's memory limit (cgroup v2 or v1), so a
 * storlet that hoards JS objects loses its thread before the OOM killer takes the whole agent
 * (every daemon of the scope lives in this one process). None without a limit.
 */
export function workerHeapLimitMb(): number | undefined {
  if (heapLimit !== null) return heapLimit;
  heapLimit = undefined;
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    // cgroup v1 says "no limit" with a huge number, v2 with "max".
    if (Number.isSafeInteger(bytes) && bytes > 0 && bytes < 2 ** 50) heapLimit = Math.max(16, Math.floor(bytes / 2 / 2 ** 20));
    break;
  }
  return heapLimit;
}
