// A storlet daemon as a process of its own, started by flags (the factory hosts its daemons in
// its own process; this role is for running one storlet by hand).
import path from 'node:path';
import { oneLine } from '../errors.js';
import { StorletDaemon } from './daemon.js';
import { createAgentLogger } from './log.js';
import { parseMainSpec, resolveMainPath } from './main-spec.js';
import { exitWithParent } from './parent-link.js';

export interface DaemonFlags {
  pipe?: string;
  storletPath?: string;
  storletName?: string;
  poolSize: number;
  level: string;
  maxDatagramBytes?: number;
  usage: string;
}

export async function runDaemon(values: DaemonFlags): Promise<void> {
  const { pipe, storletPath, storletName, level, maxDatagramBytes, usage: USAGE } = values;
  if (!pipe || !storletPath || !storletName) throw new Error(`--pipe, --storlet-path and --storlet-name are required\n${USAGE}`);
  const logger = createAgentLogger(`sandlet-daemon:${storletName}`, level);
  let daemon: StorletDaemon;
  try {
    const spec = parseMainSpec(storletName);
    daemon = new StorletDaemon({
      pipe,
      modulePath: resolveMainPath(path.resolve(storletPath), spec),
      exportName: spec.exportName,
      poolSize: values.poolSize,
      logger,
      maxDatagramBytes,
    });
    await daemon.start();
  } catch (err) {
    logger.error({ err: oneLine(err) }, 'storlet daemon failed to start');
    process.exitCode = 1;
    return;
  }
  exitWithParent(() => void daemon.halt());
  process.once('SIGTERM', () => void daemon.halt());
}
