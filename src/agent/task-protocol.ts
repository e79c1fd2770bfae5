// Messages between a storlet daemon and its task workers.

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
  inputs: TaskInput[];
  output: TaskFd;
  logger: (TaskFd & { maxBytes: number }) | undefined;
  params: Record<string, string>;
}

export type ToWorker = TaskMessage | { type: 'cancel'; taskId: string };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; message: string }
  | { type: 'opened'; taskId: string }
  /** The daemon writes metadata and status itself: those fds never enter a worker. */
  | { type: 'metadata'; taskId: string; json: string }
  | { type: 'done'; taskId: string; ok: boolean; message: string };
