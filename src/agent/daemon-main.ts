// A storlet daemon process: a spare (booted ahead, waiting for its storlet) or started by flags.
import path from 'node:path';
import { oneLine } from '../errors.js';
import { StorletDaemon, TaskWorker } from './daemon.js';
import { createAgentLogger } from './log.js';
import { parseMainSpec, resolveMainPath } from './main-spec.js';
import { exitWithParent } from './parent-link.js';

export interface DaemonFlags {
  spare: boolean;
  pipe?: string;
  storletPath?: string;
  storletName?: string;
  poolSize: number;
  level: string;
  maxDatagramBytes?: number;
  usage: string;
}

export async function runDaemon(values: DaemonFlags): Promise<void> {
  const { level, maxDatagramBytes, usage: USAGE } = values;
  // A spare waits for the factory to say which storlet to serve; otherwise flags say it.
  // A spare boots its first task worker too, while it waits.
  const firstWorker = values.spare ? new TaskWorker() : undefined;
  const work = values.spare
    ? await awaitAssignment()
    : {
        pipe: values.pipe,
        storletPath: values.storletPath,
        storletName: values.storletName,
        poolSize: values.poolSize,
        logLevel: level,
      };
  const { pipe, storletPath, storletName } = work;
  if (!pipe || !storletPath || !storletName) throw new Error(`--pipe, --storlet-path and --storlet-name are required\n${USAGE}`);
  const logger = createAgentLogger(`sandlet-daemon:${storletName}`, work.logLevel);
  let daemon: StorletDaemon;
  try {
    const spec = parseMainSpec(storletName);
    daemon = new StorletDaemon({
      pipe,
      modulePath: resolveMainPath(path.resolve(storletPath), spec),
      exportName: spec.exportName,
      poolSize: work.poolSize,
      logger,
      maxDatagramBytes,
      firstWorker,
    });
    await daemon.start();
  } catch (err) {
    process.send?.({ type: 'error', message: oneLine(err) });
    logger.error({ err: oneLine(err) }, 'storlet daemon failed to start');
    process.exitCode = 1;
    process.disconnect?.();
    setImmediate(() => process.exit(1));
    return;
  }
  process.send?.({ type: 'listening' });
  exitWithParent(() => void daemon.halt());
  process.once('SIGTERM', () => void daemon.halt());
  return;
}

/** Tells the factory this spare booted, then waits for its storlet (or for the factory to go). */
function awaitAssignment(): Promise<{ pipe?: string; storletPath?: string; storletName?: string; poolSize: number; logLevel: string }> {
  return new Promise((resolve) => {
    const orphaned = (): never => process.exit(0);
    process.once('disconnect', orphaned);
    process.on('message', function onAssign(msg: { type?: string; pipe?: string; storletPath?: string; storletName?: string; poolSize?: number; logLevel?: string }) {
      if (msg.type !== 'assign') return;
      process.off('message', onAssign);
      process.off('disconnect', orphaned);
      resolve({ pipe: msg.pipe, storletPath: msg.storletPath, storletName: msg.storletName, poolSize: msg.poolSize ?? 4, logLevel: msg.logLevel ?? 'info' });
    });
    process.send?.({ type: 'spare-ready' });
  });
}
