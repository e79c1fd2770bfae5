// A storlet runtime other than the daemon's own JS task threads: Python (python-runtime.ts) or an
// executable (exec-runtime.ts). The daemon keeps the SBus side (EXECUTE, CANCEL, the task status
// pipe); the runtime runs each task in a process of its own, which a cancel kills.

export interface RuntimeTask {
  id: string;
  /** inputs[0] is the object; further entries are the extra inputs. Blocking fds. */
  inputs: { fd: number; metadata: Record<string, string>; range?: { start: number; end: number } }[];
  output: number;
  metadata: number;
  logger: { fd: number; maxBytes: number } | undefined;
  params: Record<string, string>;
}

export interface RuntimeOutcome {
  ok: boolean;
  message: string;
}

export interface StorletRuntime {
  /** Loads the storlet (a Python import error fails the daemon's start here). */
  start(): Promise<void>;
  /**
   * Runs a task. The runtime owns every fd of the task from the call on and has closed its copies
   * by the time the promise settles; it never rejects.
   */
  run(task: RuntimeTask): Promise<RuntimeOutcome>;
  /** Kills the task's processes; its run() then settles. */
  cancel(taskId: string): void;
  /** Ends every task and the runtime's own processes. */
  stop(): Promise<void>;
  /** Set by the daemon: the runtime died on its own after it started (why), and serves no more. */
  onExit?: (why: string) => void;
}
