// The daemon factory: the sandbox's one listener (its connection to the gateway, or factory_pipe in
// Storlets' layout). It starts, checks and stops storlet daemons. Each daemon lives in this
// process, reached through the factory's connection (or on its own SBus pipe), and runs its tasks in
// worker threads: one Node boot per sandbox instead of one per storlet, which is most of a cold
// start on a small machine. The container is the isolation boundary; the storlets in it belong to
// one scope, and a storlet that kills the process restarts the scope's sandbox.
import path from 'node:path';
import type { Logger } from 'pino';
import { SBusClient } from '../sbus/client.js';
import { Command, type Reply } from '../sbus/protocol.js';
import { SBusServer, type SBusRequest } from '../sbus/server.js';
import { closeQuietly, native } from '../sbus/native.js';
import { encodeHello } from '../sbus/hello.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../version.js';
import { oneLine } from '../errors.js';
import { StorletDaemon } from './daemon.js';
import { normalizeLevel } from './log.js';
import { parseMainSpec, resolveMainPath } from './main-spec.js';
import { TaskWorker } from './task-thread.js';
import { STORLET_LANGUAGES, storletLanguage, type StorletLanguage } from './languages.js';
import { makeRuntime } from './runtimes.js';

export interface FactoryOptions {
  /** Storlets' way: bind this path and serve it (daemons bind their uds_path). */
  pipe?: string;
  /**
   * sandlet's way: dial the gateway's listening socket at `path` and serve that one connection
   * (daemons are reached through it; nothing is bound). The hello names `scope`.
   */
  connect?: { path: string; scope: string };
  logger: Logger;
  logLevel: string;
  /** How long a daemon may take to load its storlet and answer PING. */
  daemonStartTimeoutMs?: number;
  maxDatagramBytes?: number;
  /** A blank task worker already booting (started before the factory loaded its code). */
  spare?: TaskWorker;
}

interface DaemonEntry {
  name: string;
  /** The daemon's own socket (Storlets' way); none when it is reached through the factory's connection. */
  pipe: string | undefined;
  daemon: StorletDaemon;
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
    const name = opts.pipe ?? `connection to ${opts.connect?.path}`;
    this.server = new SBusServer(name, { logger: opts.logger, maxDatagramBytes: opts.maxDatagramBytes });
    this.server
      .on(Command.PING, (req) =>
        req.daemon !== undefined
          ? this.toDaemon(req)
          : { status: true, message: 'factory is running', version: { agent: AGENT_VERSION, protocol: PROTOCOL_VERSION } },
      )
      // On the connection, a daemon's commands come to the factory, addressed by `daemon`.
      .on(Command.EXECUTE, (req) => this.toDaemon(req))
      .on(Command.CANCEL, (req) => this.toDaemon(req))
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
    // A blank worker boots beside our own start-up, so the first START_DAEMON only loads a module.
    this.spare ??= new TaskWorker();
    if (this.opts.connect) {
      this.dial(this.opts.connect);
      return;
    }
    this.server.listen();
    this.log.info({ pipe: this.opts.pipe, version: AGENT_VERSION }, 'daemon factory listening');
  }

  private redialMs = 20;

  /**
   * Connects to the gateway, says hello and serves the connection. When the gateway is not there
   * (yet, or any more: it restarted) it dials again with back-off; daemons and tasks run on
   * meanwhile, so a restarted gateway adopts the sandbox as it was. A connection the gateway hangs
   * up on at once (it refused it) counts as a failed dial: no tight loop of refusals.
   */
  private dial(target: { path: string; scope: string }): void {
    if (this.halting) return;
    let fd: number | undefined;
    try {
      fd = native.connectSeqpacket(target.path);
      native.sendOn(fd, encodeHello(target.scope), []);
    } catch (err) {
      closeQuietly([fd]);
      this.log.debug({ err: oneLine(err), retryMs: this.redialMs }, 'gateway not reachable; dialling again');
      this.redialLater(target);
      return;
    }
    const connectedAt = Date.now();
    this.server.serve(fd, () => {
      // A connection that served a while was accepted: the next gateway is dialled at once.
      if (Date.now() - connectedAt > 2000) this.redialMs = 20;
      this.log.warn('the gateway closed the connection; dialling again');
      this.redialLater(target);
    });
    this.log.info({ connect: target.path, scope: target.scope, version: AGENT_VERSION }, 'daemon factory connected');
  }

  // No event tells that a listener appeared: back off and try again (at most once a second).
  private redialLater(target: { path: string; scope: string }): void {
    setTimeout(() => this.dial(target), this.redialMs);
    this.redialMs = Math.min(this.redialMs * 2, 1000);
  }

  /** A daemon's command that came on the factory's connection, passed to the daemon it names. */
  private async toDaemon(req: SBusRequest): Promise<Reply> {
    const name = req.daemon;
    const entry = name === undefined ? undefined : this.daemons.get(name);
    if (!entry) return { status: false, message: `daemon ${name ?? '(none named)'} is not running` };
    try {
      await entry.started;
    } catch {
      return { status: false, message: `daemon ${name} is not running` };
    }
    return entry.daemon.handle(req);
  }

  async halt(): Promise<void> {
    if (this.halting) return;
    this.halting = true;
    await this.stopAll();
    await this.spare?.retire();
    this.spare = undefined;
    this.server.close();
    this.onHalt();
  }

  private async startDaemon(req: SBusRequest): Promise<Reply> {
    const p = req.params;
    const name = requireName(req);
    const language = storletLanguage(p.daemon_language);
    if (!language) {
      return {
        status: false,
        message: `unsupported daemon_language ${JSON.stringify(p.daemon_language)}; this agent supports: ${STORLET_LANGUAGES.join(', ')}`,
      };
    }
    // Reached through the connection, a daemon binds nothing: uds_path is then only informative.
    for (const key of this.opts.connect ? (['storlet_path'] as const) : (['storlet_path', 'uds_path'] as const)) {
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
    const pipe = this.opts.connect ? undefined : String(p.uds_path);
    let entry: DaemonEntry;
    try {
      entry = this.hostDaemon(name, language, String(p.storlet_path), pipe, poolSize, String(p.log_level ?? this.opts.logLevel));
    } catch (err) {
      return { status: false, message: oneLine(err) };
    }
    this.daemons.set(name, entry);
    try {
      await entry.started;
      this.log.info({ storlet: name }, 'storlet daemon started');
      return { status: true, message: `daemon ${name} started` };
    } catch (err) {
      if (this.daemons.get(name) === entry) this.daemons.delete(name);
      await entry.daemon.halt();
      this.log.warn({ storlet: name, err: oneLine(err) }, 'storlet daemon failed to start');
      return { status: false, message: oneLine(err) };
    }
  }

  /** The blank worker for the next daemon; replaced at once, so one is always booting or ready. */
  private spare: TaskWorker | undefined;

  private takeSpare(): TaskWorker {
    const ready = this.spare && !this.spare.exited ? this.spare : new TaskWorker();
    this.spare = this.halting ? undefined : new TaskWorker();
    return ready;
  }

  private hostDaemon(name: string, language: StorletLanguage, storletPath: string, pipe: string | undefined, poolSize: number, logLevel: string): DaemonEntry {
    const logger = this.log.child({ daemon: name }, { level: normalizeLevel(logLevel) });
    const dir = path.resolve(storletPath);
    const common = { pipe, poolSize, logger, maxDatagramBytes: this.opts.maxDatagramBytes };
    let daemon: StorletDaemon;
    if (language === 'js') {
      const spec = parseMainSpec(name);
      daemon = new StorletDaemon({ ...common, modulePath: resolveMainPath(dir, spec), exportName: spec.exportName, firstWorker: this.takeSpare() });
    } else {
      daemon = new StorletDaemon({ ...common, modulePath: dir, exportName: undefined, runtime: makeRuntime(language, dir, name, poolSize, logger) });
    }
    const entry: DaemonEntry = { name, pipe, daemon, started: Promise.resolve() };
    daemon.onHalt = () => {
      if (this.daemons.get(name) === entry) this.daemons.delete(name);
    };
    const timeoutMs = this.opts.daemonStartTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    entry.started = Promise.race([
      daemon.start(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`daemon ${name} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ])
      .then(async () => {
        // Trust but verify: START_DAEMON succeeds only once the daemon answers PING on its pipe.
        // (Reached through the connection, it has no pipe: start() resolving is the answer.)
        if (pipe === undefined) return;
        const r = await new SBusClient(pipe, { timeoutMs: 5000 }).ping();
        if (!r.status) throw new Error(`daemon ${name} answered PING with failure: ${r.message}`);
      })
      .finally(() => clearTimeout(timer));
    entry.started.catch(() => {});
    return entry;
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
      const reply = entry.pipe === undefined ? { status: true, message: '' } : await new SBusClient(entry.pipe, { timeoutMs: 2000 }).ping();
      return { status: reply.status, message: reply.status ? `daemon ${name} is running` : reply.message, pid: process.pid };
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

/**
 * Stops a daemon: its pipe goes, its tasks are cancelled, its threads end. One still loading its
 * module is stopped too (its START_DAEMON then fails), never waited for.
 */
async function stopEntry(entry: DaemonEntry): Promise<void> {
  await entry.daemon.halt();
}

function requireName(req: SBusRequest): string {
  const name = req.params.storlet_name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(name)) {
    throw new Error(`storlet_name ${JSON.stringify(name)} is missing or invalid`);
  }
  return name;
}
