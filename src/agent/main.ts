#!/usr/bin/env node
// Entry point of the in-sandbox agent: `main.js factory --pipe PATH` or `main.js daemon ...`.
// Imports nothing host-only and runs on Node 18, so the engine image can use Debian's nodejs.
// Kept tiny on purpose: the factory starts booting its first task worker thread before it loads
// anything else, so both boot side by side (cold start is on the critical path of a first
// invocation, and Debian's node boots without a start-up snapshot).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { oneLine } from '../errors.js';
import { TaskWorker } from './task-thread.js';

const USAGE = `usage: sandlet agent factory (--pipe PATH | --connect PATH --scope SCOPE) [--log-level L]
       sandlet agent daemon --pipe PATH --storlet-path DIR --storlet-name FILE[:EXPORT] [--pool-size N] [--log-level L]`;

export async function runAgent(argv: string[]): Promise<void> {
  const [role, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      pipe: { type: 'string' },
      connect: { type: 'string' },
      scope: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'storlet-path': { type: 'string' },
      'storlet-name': { type: 'string' },
      'pool-size': { type: 'string', default: '4' },
      'max-datagram-bytes': { type: 'string' },
    },
    strict: true,
  });
  const maxDatagramBytes = values['max-datagram-bytes'] ? Number(values['max-datagram-bytes']) : undefined;
  const level = values['log-level']!;

  if (role === 'factory') {
    // --connect wins over --pipe: the engine image's entrypoint names factory_pipe (Storlets' way)
    // and sandlet's backends add --connect to dial out instead.
    if (values.connect && !values.scope) throw new Error(`--connect needs --scope\n${USAGE}`);
    const connect = values.connect ? { path: values.connect, scope: values.scope! } : undefined;
    if (!connect && !values.pipe) throw new Error(`--pipe or --connect is required\n${USAGE}`);
    const spare = new TaskWorker();
    const { runFactory } = await import('./factory-main.js');
    runFactory({ pipe: connect ? undefined : values.pipe, connect, level, maxDatagramBytes, spare });
    return;
  }
  if (role === 'daemon') {
    const { runDaemon } = await import('./daemon-main.js');
    await runDaemon({
      pipe: values.pipe,
      storletPath: values['storlet-path'],
      storletName: values['storlet-name'],
      poolSize: Number(values['pool-size']),
      level,
      maxDatagramBytes,
      usage: USAGE,
    });
    return;
  }
  throw new Error(`unknown agent role ${JSON.stringify(role ?? '')}\n${USAGE}`);
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (isMain) {
  runAgent(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`sandlet agent: ${oneLine(err)}\n`);
    process.exit(2);
  });
}
