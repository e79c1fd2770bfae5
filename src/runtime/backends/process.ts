// The embedded default backend: the scope's agent factory as a child process of the gateway.
// It gives NO isolation (the storlet runs as the gateway's user, on the host): for development
// and tests only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from 'pino';
import { AGENT_MAIN } from '../../package-root.js';
import type { SandboxBackend, SandboxExit, SandboxHandle, SandboxStartSpec } from '../sandbox-backend.js';
import type { SandboxRoots } from '../scope-paths.js';
import { readTail } from '../../util/read-tail.js';

export class ProcessBackend implements SandboxBackend {
  readonly name = 'process';
  private readonly log: Logger;

  constructor(logger: Logger) {
    this.log = logger;
  }

  sandboxRoots(hostPipeDir: string, hostStorletsDir: string): SandboxRoots {
    return { pipesDir: hostPipeDir, storletsDir: hostStorletsDir };
  }

  async start(spec: SandboxStartSpec): Promise<SandboxHandle> {
    const logPath = spec.paths.hostAgentLog;
    fs.mkdirSync(spec.paths.hostLogDir, { recursive: true });
    const logFd = fs.openSync(logPath, 'a');
    const args = [
      AGENT_MAIN, 'factory', '--connect', spec.paths.sandboxChannelSocket, '--scope', spec.paths.scope,
      '--log-level', spec.logLevel, '--max-datagram-bytes', String(spec.maxDatagramBytes),
    ];
    // The IPC channel ties the factory's life to the gateway's: no orphan survives a crash.
    let child;
    try {
      child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd, 'ipc'], detached: false });
    } finally {
      fs.closeSync(logFd); // the child has its own copy; ours goes whether spawn worked or threw
    }
    child.channel?.unref();
    const exited = new Promise<SandboxExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal, reason: signal ? `killed by ${signal}` : `exited with code ${code}` }));
      child.once('error', (err) => resolve({ code: null, signal: null, reason: `could not start: ${err.message}` }));
    });
    this.log.info({ scope: spec.paths.scope, pid: child.pid }, 'started agent factory process');
    return {
      id: String(child.pid ?? 'unstarted'),
      exited,
      isAlive: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined,
      kill: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
      logTail: (lines = 20) => readTail(logPath, lines),
    };
  }
}
