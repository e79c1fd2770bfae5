// Messages between a storlet daemon and its task workers.

/** The most fds one SBus datagram carries (the kernel's SCM_MAX_FD), so the most a task has. */
export const MAX_TASK_FDS = 253;

/**
 * The cell of `owned` (after the fd slots) where a worker stores a task's seq once it writes that
 * task's status line: the gateway may then close its end of the status pipe, which the daemon
 * must not take for a gateway that gave up.
 */
export const STATUS_CELL = MAX_TASK_FDS;

/** Bytes a pipe write takes whole or not at all (POSIX PIPE_BUF on Linux): a line this short never tears. */
export const ATOMIC_PIPE_WRITE_BYTES = 4096;

/**
 * Worker data: `owned` is an Int32Array on shared memory, a cell per task fd slot. Before the
 * worker hands a task's pipe to a libuv socket (which closes it, even when the thread is
 * terminated), it stores the task's seq in that pipe's cell. Every other pipe of the task stays
 * the daemon's to close when the task ends, so no fd is closed twice or left open, without a
 * message (and a thread wake-up) per fd. Worker threads never close fds with fs.close: Node warns
 * (with a stack trace) for every fd a worker closes that it did not open; a socket closes them.
 */
export interface WorkerInit {
  owned: Int32Array;
}

export interface TaskFd {
  fd: number;
  /** Pipes and sockets are read and written by the worker; file fds stay the daemon's. */
  pollable: boolean;
  /** A pollable fd's cell in `owned`. */
  slot?: number;
}

export interface TaskInput extends TaskFd {
  metadata: Record<string, string>;
  range?: { start: number; end: number };
}

export interface TaskMessage {
  type: 'task';
  taskId: string;
  /** What the worker stores in an fd's `owned` cell when it takes that fd over. */
  seq: number;
  inputs: TaskInput[];
  output: TaskFd;
  logger: (TaskFd & { maxBytes: number }) | undefined;
  params: Record<string, string>;
  /**
   * The output metadata pipe. The worker writes the metadata to it as one short JSON line and
   * closes it (no thread hop to the daemon on the way to the gateway); longer metadata, or a pipe
   * with no slot, goes to the daemon by message.
   */
  metadataPipe: TaskFd;
  /** The status pipe: the daemon's, which closes it; the worker may write a success line first. */
  statusFd: number | undefined;
}

/** A worker boots blank (so the factory can boot one ahead) and loads its module on `load`. */
export type ToWorker =
  | { type: 'load'; modulePath: string; exportName: string | undefined }
  | TaskMessage
  | { type: 'cancel'; taskId: string };

export type FromWorker =
  /** The thread's own script ran: its imports are loaded. */
  | { type: 'booted' }
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  /** Metadata too long for one atomic line, or that the line could not carry: the daemon writes it. */
  | { type: 'metadata'; taskId: string; json: string }
  | { type: 'done'; taskId: string; ok: boolean; message: string };
