// The daemon factory: the sandbox's one listener on factory_pipe. It starts, checks and stops
// storlet daemons, one child process per storlet.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { SBusClient } from '../sbus/client.js';
import { Command, type Reply } from '../sbus/protocol.js';
import { SBusServer, type SBusRequest } from '../sbus/server.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../version.js';
import { oneLine } from '../errors.js';
import { DaemonProcess } from './daemon-process.js';

export const SUPPORTED_LANGUAGES = ['js'] as const;
const LANGUAGE_ALIASES: Record<string, string> = { js: 'js', javascript: 'js', node: 'js', nodejs: 'js' };

export interface FactoryOptions {
  pipe: string;
  logger: Logger;
  logLevel: string;
  /** How long a daemon may take from spawn to answering PING. */
  daemonStartTimeoutMs?: number;
  maxDatagramBytes?: number;
  /** A daemon process already booting (spawned before the factory loaded its code). */
  spare?: DaemonProcess;
}

interface DaemonEntry {
  name: string;
  pipe: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** Settles when the daemon answered PING, or failed to. */
  started: Promise<void>;
}

export class DaemonFactory {
  private readonly opts: FactoryOptions;
  private readonly server: SBusServer;
  private readonly daemons = new Map<string, DaemonEntry>();
  private readonly log: Logger;
  private halting = false;
  onHalt: () => void = () => process.exit(0);

  constructor(opts: FactoryOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.spare = opts.spare;
    this.server = new SBusServer(opts.pipe, { logger: opts.logger, maxDatagramBytes: opts.maxDatagramBytes });
    this.server
      .on(Command.PING, () => ({
        status: true,
        message: 'factory is running',
        version: { agent: AGENT_VERSION, protocol: PROTOCOL_VERSION },
      }))
      .on(Command.START_DAEMON, (req) => this.startDaemon(req))
      .on(Command.STOP_DAEMON, (req) => this.stopDaemon(requireName(req)))
      .on(Command.DAEMON_STATUS, (req) => this.daemonStatus(requireName(req)))
      .on(Command.STOP_DAEMONS, () => this.stopAll())
      .on(Command.HALT, async () => {
        await this.stopAll();
        setImmediate(() => void this.halt());
        return { status: true, message: 'factory is stopping' };
      });
  }

  listen(): void {
    // Boot the first daemon process now, beside our own start-up, so it is ready for START_DAEMON.
    this.spare ??= new DaemonProcess(this.opts.maxDatagramBytes);
    this.server.listen();
    this.log.info({ pipe: this.opts.pipe, version: AGENT_VERSION }, 'daemon factory listening');
  }

  async halt(): Promise<void> {
    if (this.halting) return;
    this.halting = true;
    await this.stopAll();
    this.spare?.child.kill('SIGKILL');
    this.spare = undefined;
    this.server.close();
    this.onHalt();
  }

  private async startDaemon(req: SBusRequest): Promise<Reply> {
    const p = req.params;
    const name = requireName(req);
    const language = LANGUAGE_ALIASES[String(p.daemon_language ?? '').toLowerCase()];
    if (!language) {
      return {
        status: false,
        message: `unsupported daemon_language ${JSON.stringify(p.daemon_language)}; this agent supports: ${SUPPORTED_LANGUAGES.join(', ')}`,
      };
    }
    for (const key of ['storlet_path', 'uds_path'] as const) {
      if (typeof p[key] !== 'string' || p[key] === '') return { status: false, message: `START_DAEMON needs ${key}` };
    }
    const poolSize = Number(p.pool_size ?? 1);
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 256) {
      return { status: false, message: `pool_size must be an integer from 1 to 256, not ${JSON.stringify(p.pool_size)}` };
    }
    const existing = this.daemons.get(name);
    if (existing) {
      await existing.started.catch(() => {});
      if (this.daemons.get(name) === existing) return { status: true, message: `daemon ${name} is already running` };
    }
    const entry = this.spawnDaemon(name, String(p.storlet_path), String(p.uds_path), poolSize, String(p.log_level ?? this.opts.logLevel));
    this.daemons.set(name, entry);
    try {
      await entry.started;
      this.log.info({ storlet: name, pid: entry.child.pid }, 'storlet daemon started');
      return { status: true, message: `daemon ${name} started` };
    } catch (err) {
      if (this.daemons.get(name) === entry) this.daemons.delete(name);
      entry.child.kill('SIGKILL');
      this.log.warn({ storlet: name, err: oneLine(err) }, 'storlet daemon failed to start');
      return { status: false, message: oneLine(err) };
    }
  }

  /** The next daemon to hand out, already booted; replaced as soon as it is taken. */
  private spare: DaemonProcess | undefined;

  private takeSpare(): DaemonProcess {
    const ready = this.spare?.alive ? this.spare : new DaemonProcess(this.opts.maxDatagramBytes);
    this.spare = this.halting ? undefined : new DaemonProcess(this.opts.maxDatagramBytes);
    return ready;
  }

  private spawnDaemon(name: string, storletPath: string, pipe: string, poolSize: number, logLevel: string): DaemonEntry {
    const proc = this.takeSpare();
    const child = proc.child;
    const exited = proc.exited.then(({ code, signal }) => {
      if (this.daemons.get(name)?.child !== child) return; // stopped on purpose
      this.daemons.delete(name);
      this.log.warn({ storlet: name, pid: child.pid, code, signal, stderr: proc.lastError().slice(2) }, 'storlet daemon exited');
    });
    const started = proc
      .assign({ pipe, storletPath, storletName: name, poolSize, logLevel }, this.opts.daemonStartTimeoutMs ?? 10_000)
      .then(async () => {
        // Trust but verify: START_DAEMON succeeds only once the daemon answers PING itself.
        const r = await new SBusClient(pipe, { timeoutMs: 5000 }).ping();
        if (!r.status) throw new Error(`daemon ${name} answered PING with failure: ${r.message}`);
      });
    started.catch(() => {});
    return { name, pipe, child, exited, started };
  }

  private async stopDaemon(name: string): Promise<Reply> {
    const entry = this.daemons.get(name);
    if (!entry) return { status: true, message: `daemon ${name} is not running` };
    this.daemons.delete(name);
    await stopEntry(entry);
    return { status: true, message: `daemon ${name} stopped` };
  }

  private async daemonStatus(name: string): Promise<Reply> {
    const entry = this.daemons.get(name);
    if (!entry) return { status: false, message: `daemon ${name} is not running` };
    try {
      await entry.started;
      const reply = await new SBusClient(entry.pipe, { timeoutMs: 2000 }).ping();
      return { status: reply.status, message: reply.status ? `daemon ${name} is running` : reply.message, pid: entry.child.pid };
    } catch (err) {
      return { status: false, message: `daemon ${name} is not responding: ${oneLine(err)}` };
    }
  }

  private async stopAll(): Promise<Reply> {
    const entries = [...this.daemons.values()];
    this.daemons.clear();
    await Promise.all(entries.map(stopEntry));
    return { status: true, message: `stopped ${entries.length} daemon(s)` };
  }
}

/** HALT over SBus, then SIGKILL if the daemon has not exited within 2 s. */
async function stopEntry(entry: DaemonEntry): Promise<void> {
  if (entry.child.exitCode !== null || entry.child.signalCode !== null) return;
  const kill = setTimeout(() => entry.child.kill('SIGKILL'), 2000);
  try {
    await new SBusClient(entry.pipe, { timeoutMs: 1000 }).halt();
  } catch {
    entry.child.kill('SIGKILL');
  }
  await entry.exited;
  clearTimeout(kill);
}

function requireName(req: SBusRequest): string {
  const name = req.params.storlet_name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(name)) {
    throw new Error(`storlet_name ${JSON.stringify(name)} is missing or invalid`);
  }
  return name;
}
