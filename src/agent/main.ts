#!/usr/bin/env node
// Entry point of the in-sandbox agent: `main.js factory --pipe PATH` or `main.js daemon ...`.
// Imports nothing host-only and runs on Node 18, so the engine image can use Debian's nodejs.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { createAgentLogger } from './log.js';
import { DaemonFactory } from './factory.js';
import { StorletDaemon } from './daemon.js';
import { parseMainSpec, resolveMainPath } from './main-spec.js';
import { oneLine } from '../errors.js';

const USAGE = `usage: sandlet agent factory --pipe PATH [--log-level L]
       sandlet agent daemon --pipe PATH --storlet-path DIR --storlet-name FILE[:EXPORT] [--pool-size N] [--log-level L]`;

export async function runAgent(argv: string[]): Promise<void> {
  const [role, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      pipe: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'storlet-path': { type: 'string' },
      'storlet-name': { type: 'string' },
      'pool-size': { type: 'string', default: '4' },
      'max-datagram-bytes': { type: 'string' },
    },
    strict: true,
  });
  if (!values.pipe) throw new Error(`--pipe is required\n${USAGE}`);
  const maxDatagramBytes = values['max-datagram-bytes'] ? Number(values['max-datagram-bytes']) : undefined;
  const level = values['log-level']!;

  if (role === 'factory') {
    const logger = createAgentLogger('sandlet-factory', level);
    const factory = new DaemonFactory({ pipe: values.pipe, logger, logLevel: level, maxDatagramBytes });
    factory.listen();
    exitWithParent(() => void factory.halt());
    process.once('SIGTERM', () => void factory.halt());
    process.once('SIGINT', () => void factory.halt());
    return;
  }
  if (role === 'daemon') {
    const storletPath = values['storlet-path'];
    const storletName = values['storlet-name'];
    if (!storletPath || !storletName) throw new Error(`--storlet-path and --storlet-name are required\n${USAGE}`);
    const logger = createAgentLogger(`sandlet-daemon:${storletName}`, level);
    const spec = parseMainSpec(storletName);
    const daemon = new StorletDaemon({
      pipe: values.pipe,
      modulePath: resolveMainPath(path.resolve(storletPath), spec),
      exportName: spec.exportName,
      poolSize: Number(values['pool-size']),
      logger,
      maxDatagramBytes,
    });
    try {
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
  throw new Error(`unknown agent role ${JSON.stringify(role ?? '')}\n${USAGE}`);
}

/** With an IPC channel to a parent, the parent's death (channel closed) ends this process too. */
function exitWithParent(stop: () => void): void {
  if (!process.send) return;
  process.once('disconnect', stop);
  // The channel must not keep an otherwise idle process alive, nor end it: the SBus socket does.
  process.channel?.unref();
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (isMain) {
  runAgent(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`sandlet agent: ${oneLine(err)}\n`);
    process.exit(2);
  });
}
