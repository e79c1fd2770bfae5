// The daemon factory process: the sandbox's entry point.
import type { TaskWorker } from './task-thread.js';
import { DaemonFactory } from './factory.js';
import { createAgentLogger } from './log.js';
import { exitWithParent } from './parent-link.js';

export function runFactory(opts: {
  pipe?: string;
  connect?: { path: string; scope: string };
  level: string;
  maxDatagramBytes?: number;
  spare: TaskWorker;
}): void {
  const logger = createAgentLogger('sandlet-factory', opts.level);
  const factory = new DaemonFactory({ pipe: opts.pipe, connect: opts.connect, logger, logLevel: opts.level, maxDatagramBytes: opts.maxDatagramBytes, spare: opts.spare });
  factory.listen();
  exitWithParent(() => void factory.halt());
  process.once('SIGTERM', () => void factory.halt());
  process.once('SIGINT', () => void factory.halt());
}
