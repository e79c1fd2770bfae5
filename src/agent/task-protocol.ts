// Messages between a storlet daemon and its task workers.

/**
 * Worker data: `opened` is a one-cell Int32Array on shared memory. The worker stores a task's seq
 * there as soon as it wrapped the task's pipes, so the daemon knows who must close them without
 * a message (and a thread wake-up) per task.
 */
export interface WorkerInit {
  opened: Int32Array;
}

export interface TaskFd {
  fd: number;
  /** Pipes and sockets belong to the worker once it says "opened"; file fds stay the daemon's. */
  pollable: boolean;
}

export interface TaskInput extends TaskFd {
  metadata: Record<string, string>;
  range?: { start: number; end: number };
}

export interface TaskMessage {
  type: 'task';
  taskId: string;
  /** Stored in the worker's shared `opened` cell once it holds the task's pipes. */
  seq: number;
  inputs: TaskInput[];
  output: TaskFd;
  logger: (TaskFd & { maxBytes: number }) | undefined;
  params: Record<string, string>;
}

/** A worker boots blank (so the factory can boot one ahead) and loads its module on `load`. */
export type ToWorker =
  | { type: 'load'; modulePath: string; exportName: string | undefined }
  | TaskMessage
  | { type: 'cancel'; taskId: string };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  /** The daemon writes metadata and status itself: those fds never enter a worker. */
  | { type: 'metadata'; taskId: string; json: string }
  | { type: 'done'; taskId: string; ok: boolean; message: string };
