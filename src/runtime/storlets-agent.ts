// Drives an unmodified OpenStack Storlets agent (its Python daemon factory, bound at a path) the
// way Storlets' own container gateway does: the storlet's files go where the agent looks for them
// (StorletsLayout), START_DAEMON carries Storlets' params, EXECUTE Storlets' fds and per-fd
// metadata, all in JSON and within libsbus's 4096-byte datagram. The agent is started by whoever
// runs it (Storlets' Docker runtime, or by hand); sandlet only talks to it.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import pino, { type Logger } from 'pino';
import { replaceDir } from '../cache/scope-installer.js';
import { SandletError, oneLine } from '../errors.js';
import { InvocationLogs } from '../invocation/invocation-log.js';
import { invokeStorlet, type InputWatch, type ByteRange, type ExtraInput, type InvocationInput, type InvocationResult } from '../invocation/invocation.js';
import { SBusClient } from '../sbus/client.js';
import { validateDependencyName } from '../names.js';
import { StorletsLayout, checkMain, type StorletsLayoutRoots } from './storlets-layout.js';

export interface StorletsAgentOptions extends StorletsLayoutRoots {
  logger?: Logger;
  /** Reply deadline of a command. Default 5 s. */
  sbusTimeoutMs?: number;
  /** Reply deadline of START_DAEMON: Storlets' factory sleeps 1 s, then pings the daemon up to 10 times a second apart. Default 30 s. */
  startTimeoutMs?: number;
  /** START_DAEMON's pool_size (tasks a daemon runs at once). Default 5, as Storlets' gateway. */
  poolSize?: number;
  /** START_DAEMON's log_level. Default DEBUG, as Storlets' gateway. */
  logLevel?: string;
  /** How long an invocation waits for output metadata, and then between output bytes. Default 40 s. */
  storletTimeoutMs?: number;
  /** Longest the output may wait for a caller that does not read it. Default 60 s. */
  outputStallMs?: number;
  /** Bound on the output metadata. Default 4096 bytes: Storlets' gateway reads it with one 4096-byte read. */
  maxMetadataBytes?: number;
  pipeBufferBytes?: number;
  /** Invocation logs rotate at this size (Storlets' agent does not bound what one task writes). Default 1 MiB. */
  logMaxBytes?: number;
  /** Open log fds shared with other agents (closed by their owner); default: this driver's own. */
  logs?: InvocationLogs;
}

/** One file of a storlet: the storlet's module, or a dependency beside it. */
export interface StorletsFile {
  name: string;
  content: Buffer | string;
  /** Permission bits; Storlets keeps only the owner's (`& 0o700`), default 0o600. */
  mode?: number;
}

/** A Python storlet as Storlets registers it. */
export interface PythonStorlet {
  /** `module.Class`: the daemon imports `module` from the storlet's dir. */
  main: string;
  /** The module file (`module.py`). */
  storlet: StorletsFile;
  dependencies?: StorletsFile[];
  /** START_DAEMON's daemon_language_version. Default '3'. */
  languageVersion?: string;
}

/** What activate() needs of a storlet, however its files are installed. */
export interface StorletsDaemonSpec {
  main: string;
  /** Changes whenever the files change: another version stops the running daemon and reinstalls. */
  version: string;
  /** The storlet's file name and its dependencies' (START_DAEMON's class path). */
  storletFile: string;
  dependencies: string[];
  /** START_DAEMON's daemon_language_version. Default '3'. */
  languageVersion?: string;
  /** Puts the files into `stage`, a fresh dir then swapped in for the storlet's dir. */
  install: (stage: string) => Promise<unknown>;
}

export interface StorletsInvocation {
  input: InvocationInput;
  inputMetadata?: Record<string, string>;
  params?: Record<string, string>;
  range?: ByteRange;
  extraInputs?: (InvocationInput | ExtraInput)[];
  timeoutMs?: number;
  signal?: AbortSignal;
  /** This invocation's log goes to this fd instead of the storlet's log (the caller's; never closed here). */
  logFd?: number;
  /** Watches the caller's input streams from the start of its call (made here when absent). */
  inputWatch?: InputWatch;
}

/** The agent's lifecycle commands of one scope, and invocations, as Storlets' gateway sends them. */
export class StorletsAgent {
  readonly layout: StorletsLayout;
  private readonly opts: StorletsAgentOptions;
  private readonly log: Logger;
  private readonly factory: SBusClient;
  private readonly clients = new Map<string, SBusClient>();
  /** Daemons this driver started, by main: the digest of the files they run. */
  private readonly running = new Map<string, string>();
  private readonly lifecycle = new PQueue({ concurrency: 1 });
  private readonly logs: InvocationLogs;
  private readonly ownLogs: boolean;

  constructor(opts: StorletsAgentOptions) {
    this.opts = opts;
    this.layout = new StorletsLayout(opts);
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ storletsAgent: this.layout.hostFactoryPipe });
    this.factory = this.client(this.layout.hostFactoryPipe);
    this.ownLogs = opts.logs === undefined;
    this.logs = opts.logs ?? new InvocationLogs(opts.logMaxBytes ?? 1024 * 1024, 1);
  }

  private client(pipe: string): SBusClient {
    return new SBusClient(pipe, { codec: 'json', libsbusPeer: true, timeoutMs: this.opts.sbusTimeoutMs ?? 5000 });
  }

  /** Whether the factory answers PING with success. */
  async ping(timeoutMs?: number): Promise<boolean> {
    return (await this.factory.ping(timeoutMs)).status;
  }

  /** activate() with the storlet's files given as bytes (the version is their digest). */
  async start(storlet: PythonStorlet): Promise<void> {
    const files = [storlet.storlet, ...(storlet.dependencies ?? [])];
    for (const f of files) validateDependencyName(f.name);
    await this.activate({
      main: storlet.main,
      version: digestOf(files),
      storletFile: storlet.storlet.name,
      dependencies: (storlet.dependencies ?? []).map((d) => d.name),
      ...(storlet.languageVersion ? { languageVersion: storlet.languageVersion } : {}),
      install: async (stage) => {
        for (const f of files) await fs.writeFile(path.join(stage, f.name), f.content, { mode: (f.mode ?? 0o600) & 0o700 });
      },
    });
  }

  /**
   * Makes the storlet's daemon run this version: cheap when it already does (one DAEMON_STATUS).
   * Otherwise stops the daemon of that main if the agent runs one, installs the files in
   * `<storlets dir>/<main>/`, and sends START_DAEMON. A daemon that cannot start (its module
   * fails to import, say) fails with ESTORLET and the agent's message.
   */
  async activate(spec: StorletsDaemonSpec): Promise<void> {
    const main = checkMain(spec.main);
    await this.lifecycle.add(async () => {
      if (this.running.get(main) === spec.version && (await this.factory.daemonStatus(main)).status) return;
      await this.stopIfRunning(main);
      await replaceDir(this.layout.hostStorletDir(main), async (stage) => {
        await fs.chmod(stage, 0o700); // as Storlets makes it: the agent runs as the gateway's user
        await spec.install(stage);
      });
      const reply = await this.factory.startDaemon(
        {
          daemon_language: 'python',
          storlet_path: this.layout.sandboxClassPath(main, spec.storletFile, spec.dependencies),
          storlet_name: main,
          uds_path: this.layout.sandboxStorletPipe(main),
          log_level: this.opts.logLevel ?? 'DEBUG',
          pool_size: this.opts.poolSize ?? 5,
          daemon_language_version: spec.languageVersion ?? '3',
        },
        this.opts.startTimeoutMs ?? 30_000,
      );
      if (!reply.status) throw new SandletError('ESTORLET', `storlet ${main} could not start on the Storlets agent: ${reply.message}`);
      this.running.set(main, spec.version);
      this.log.info({ storlet: main, version: spec.version }, 'storlet daemon started on the Storlets agent');
    });
  }

  /** STOP_DAEMON, when the agent runs a daemon of that main. */
  async stop(main: string): Promise<void> {
    checkMain(main);
    await this.lifecycle.add(() => this.stopIfRunning(main));
  }

  private async stopIfRunning(main: string): Promise<void> {
    this.running.delete(main);
    if (!(await this.factory.daemonStatus(main)).status) return;
    const stopped = await this.factory.stopDaemon(main);
    if (!stopped.status) throw new SandletError('ESANDBOX', `the Storlets agent did not stop storlet ${main}: ${stopped.message}`);
  }

  /**
   * One invocation of a started storlet (call start() before each, as Storlets' gateway activates
   * the daemon before each invocation: one DAEMON_STATUS when it runs; a daemon gone, or ended by
   * a CANCEL, is started again): EXECUTE on its daemon's pipe with Storlets' fds (input,
   * output, output metadata, logger, then extra inputs), params plus `storlet_execution_path`.
   * The output metadata and the output stream come back as from sandlet's own agent, except that
   * a Storlets agent reports no outcome: a storlet that fails before its metadata is known only by
   * its metadata pipe closing empty (its traceback is in the agent's syslog), and one that fails
   * after it ends the output early, unnoticed.
   */
  async invoke(main: string, req: StorletsInvocation): Promise<InvocationResult> {
    checkMain(main);
    let client = this.clients.get(main);
    if (!client) {
      client = this.client(this.layout.hostStorletPipe(main));
      this.clients.set(main, client);
    }
    return invokeStorlet({
      storlet: main,
      client,
      input: req.input,
      inputMetadata: req.inputMetadata ?? {},
      extraInputs: req.extraInputs ?? [],
      range: req.range,
      params: { ...req.params, storlet_execution_path: this.layout.sandboxStorletDir(main) },
      timeoutMs: req.timeoutMs ?? this.opts.storletTimeoutMs ?? 40_000,
      outputStallMs: this.opts.outputStallMs ?? 60_000,
      maxMetadataBytes: this.opts.maxMetadataBytes ?? 4096,
      pipeBufferBytes: this.opts.pipeBufferBytes ?? 1024 * 1024,
      logPath: this.layout.hostLogPath(main),
      logs: this.logs,
      withStatus: false,
      logger: this.log,
      ...(req.signal ? { signal: req.signal } : {}),
      ...(req.logFd !== undefined ? { logFd: req.logFd } : {}),
      ...(req.inputWatch ? { inputWatch: req.inputWatch } : {}),
      // Storlets' daemon leaves its main loop after answering CANCEL: the next start() starts it afresh.
      onCancel: () => this.running.delete(main),
      onDone: (err) => {
        if (err) this.log.debug({ storlet: main, err: oneLine(err) }, 'invocation failed');
      },
    });
  }

  /** Closes the invocation-log fds this driver keeps; the agent and its daemons are left running. */
  close(): void {
    if (this.ownLogs) this.logs.closeAll();
  }
}

function digestOf(files: StorletsFile[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f.name}\0${(f.mode ?? 0o600) & 0o700}\0`).update(f.content).update('\0');
  return h.digest('hex');
}
