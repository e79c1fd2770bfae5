// One scope's sandbox, whatever backend makes it: ping → wait → restart → activate daemon.
// Lifecycle steps of a scope run one at a time (p-queue, concurrency 1); invocations do not
// queue here once the sandbox and daemon are up.
import fs from 'node:fs';
import path from 'node:path';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { Availability } from './availability.js';
import { identity, sameIdentity, type FileIdentity } from '../cache/file-identity.js';
import { SandletError, oneLine } from '../errors.js';
import { SBusClient } from '../sbus/client.js';
import { notConnected, type Transport } from '../sbus/transport.js';
import { FactoryChannel } from './factory-channel.js';
import type { Codec } from '../sbus/protocol.js';
import type { SandboxBackend, SandboxHandle } from './sandbox-backend.js';
import type { ScopePaths } from './scope-paths.js';

/** In a scope's channel dir: which backend runs its sandbox, so another refuses it untouched. */
const BACKEND_MARKER = 'backend';

export type SandboxState = 'stopped' | 'starting' | 'running' | 'dead';

export interface SandboxOptions {
  paths: ScopePaths;
  backend: SandboxBackend;
  logger: Logger;
  codec: Codec;
  sbusTimeoutMs: number;
  readyTimeoutMs: number;
  maxDatagramBytes: number;
  logLevel: string;
  /** A sandbox that dies within this long of starting counts as a crash (flapping). */
  flapWindowMs?: number;
  /** A sandbox idle (no invocation in flight) this long is stopped; 0 never. */
  idleTimeoutMs?: number;
  /** Called after each stop (idle, evicted, asked to): the owner may release the sandbox's record. */
  onStopped?: (sandbox: Sandbox) => void;
}

/** Invocations in a row that timed out waiting for a daemon before it is deemed wedged and restarted. */
export const WEDGED_AFTER_TIMEOUTS = 3;

/**
 * Back-off after K early deaths in a row. One death is restarted at once (a killed factory is
 * just restarted); from the second on, it is flapping: 1 s, doubling, at most 60 s.
 */
export function backoffMs(crashes: number): number {
  if (crashes < 2) return 0;
  return Math.min(60_000, 1000 * 2 ** (crashes - 2));
}

export interface DaemonSpec {
  /** Storlet name: also the daemon's pipe name and its dir name. */
  name: string;
  /** Main module spec (`file.mjs` or `file.mjs:Export`): START_DAEMON's storlet_name. */
  main: string;
  /** Changes whenever the storlet or a dependency changes: a different version restarts the daemon. */
  version: string;
  language: string;
  languageVersion?: string;
  poolSize: number;
  logLevel: string;
  /** Puts the storlet's files in its host dir (runs with the daemon stopped); returns what it put. */
  install: () => Promise<InstalledFiles>;
  /** Cache digests of the files the daemon runs: kept from eviction while it runs. */
  contents?: string[];
}

/** The files of a storlet dir as installed (name in the dir → identity), to notice them changed or gone. */
export type InstalledFiles = Map<string, FileIdentity>;

/** Why a sandbox started, as a metrics label: the free-text reason says more. */
export type RestartKind = 'start' | 'crash' | 'adopted' | 'operator' | 'image-changed' | 'daemon-stop-failed' | 'repair';

export interface RestartRecord {
  at: Date;
  reason: string;
  kind?: RestartKind;
}

export class Sandbox {
  readonly scope: string;
  readonly paths: ScopePaths;
  private readonly opts: SandboxOptions;
  private readonly log: Logger;
  private readonly lifecycle = new PQueue({ concurrency: 1 });
  private readonly factory: SBusClient;
  private handle: SandboxHandle | undefined;
  /** Running daemons by storlet name: the version and main they were started with. */
  private readonly daemons = new Map<string, { version: string; main: string; contents: string[]; files: InstalledFiles }>();
  /** The scope's storlets dir the sandbox was started with (a bind mount follows the inode, not the name). */
  private storletsDirIno: number | undefined;
  /** Invocations in a row per storlet that timed out on its daemon (reset by any answer). */
  private readonly timeouts = new Map<string, number>();
  /** Per storlet: a client routed to its daemon by main, through the factory's connection. */
  private readonly clients = new Map<string, { main: string; client: SBusClient }>();
  /** The control channel of the running sandbox (a new one per start). */
  private channel: FactoryChannel | undefined;
  /** Commands go over the current channel, whichever start made it. */
  private readonly transport: Transport;
  private readonly logPaths = new Map<string, string>();
  private _state: SandboxState = 'stopped';
  /** True when the factory's PING reply carried a sandlet version (it understands TASK_STATUS). */
  agentIsSandlet = false;
  agentVersion: unknown;
  startedAt: Date | undefined;
  inFlight = 0;
  /** The last 100 starts, with their reasons. */
  readonly restarts: RestartRecord[] = [];
  /** Starts by kind since the gateway began (not capped like `restarts`). */
  readonly restartCounts = new Map<RestartKind, number>();
  readonly availability = new Availability();
  /** Crashes in a row (deaths within the flap window of a start); 0 once a sandbox stays up. */
  crashes = 0;
  backoffUntil = 0;
  lastExit: string | undefined;
  lastUsed = Date.now();
  /** When the engine last reported an OOM kill in this sandbox (ms since epoch; 0 = never). */
  lastOomAt = 0;
  /** Why the sandbox was last stopped (idle, evicted, asked to), if it was. */
  lastStop: RestartRecord | undefined;
  /** Set when the image the sandbox runs changed: it restarts at its next idle moment. */
  private staleReason: { reason: string; kind: RestartKind } | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(opts: SandboxOptions) {
    this.opts = opts;
    this.paths = opts.paths;
    this.scope = opts.paths.scope;
    this.log = opts.logger.child({ scope: this.scope });
    const name = `factory of scope ${this.scope}`;
    this.transport = {
      name,
      send: (body, fds) => {
        if (!this.channel) throw notConnected(name);
        this.channel.send(body, fds);
      },
    };
    this.factory = new SBusClient(this.transport, {
      timeoutMs: opts.sbusTimeoutMs,
      codec: opts.codec,
      maxDatagramBytes: opts.maxDatagramBytes,
    });
  }

  get state(): SandboxState {
    if (this._state === 'running' && (!this.handle?.isAlive() || !this.channel?.connected)) return 'dead';
    return this._state;
  }

  /**
   * A client for a storlet's daemon, with this scope's codec and bounds: its commands go over the
   * factory's connection, addressed to the daemon by the main it was started with. Clients are
   * stateless: one per storlet, kept (asked per invocation) until its main changes.
   */
  daemonClient(storlet: string): SBusClient {
    const main = this.daemons.get(storlet)?.main ?? storlet;
    let kept = this.clients.get(storlet);
    if (!kept || kept.main !== main) {
      const client = new SBusClient(this.transport, {
        timeoutMs: this.opts.sbusTimeoutMs,
        codec: this.opts.codec,
        maxDatagramBytes: this.opts.maxDatagramBytes,
        daemon: main,
      });
      kept = { main, client };
      this.clients.set(storlet, kept);
    }
    return kept.client;
  }

  /** The storlet's invocation log on the host, kept per storlet as daemonClient() is. */
  logPath(storlet: string): string {
    let file = this.logPaths.get(storlet);
    if (file === undefined) {
      file = this.paths.hostLogPath(storlet);
      this.logPaths.set(storlet, file);
    }
    return file;
  }

  /** Whether the storlet's daemon runs at this version (activateDaemon() would do nothing). */
  runsDaemon(name: string, version: string): boolean {
    return this.state === 'running' && this.daemons.get(name)?.version === version;
  }

  async ping(timeoutMs = this.opts.sbusTimeoutMs): Promise<boolean> {
    try {
      const reply = await this.factory.ping(timeoutMs);
      return reply.status;
    } catch {
      return false;
    }
  }

  /** Makes sure the factory runs; cheap when it does. */
  async ensureRunning(): Promise<void> {
    if (this.state === 'running') return;
    await this.lifecycle.add(async () => {
      if (this.state === 'running') return;
      await this.startAfterBackoff();
    });
  }

  /** Takes over a sandbox an earlier gateway left running, if its factory answers. */
  async adopt(handle: SandboxHandle): Promise<boolean> {
    const adopted = await this.lifecycle.add(async () => {
      try {
        this.openChannel(handle);
        await this.wait(handle, Math.min(this.opts.readyTimeoutMs, 3000));
      } catch {
        this.closeChannel();
        return false;
      }
      this.handle = handle;
      this.watchExit(handle);
      this.startedAt = new Date();
      this.storletsDirIno = inodeOf(this.paths.hostStorletsDir);
      this._state = 'running';
      this.record('adopted after a gateway restart', 'adopted');
      this.availability.up(Date.now());
      this.log.info({ id: handle.id }, 'adopted running sandbox');
      return true;
    });
    return adopted === true;
  }

  /** Restart, unless the sandbox is flapping: then fail fast until its back-off ends. */
  private async startAfterBackoff(): Promise<void> {
    await this.settleLostConnection();
    const wait = this.backoffUntil - Date.now();
    if (wait > 0) {
      throw new SandletError(
        'EBACKOFF',
        `scope ${this.scope} is backing off after ${this.crashes} crash${this.crashes === 1 ? '' : 'es'}; next try in ${Math.ceil(wait / 1000)} s${this.lastExit ? ` (last: ${this.lastExit})` : ''}`,
      );
    }
    if (this._state === 'stopped') await this.doRestart('first use', 'start');
    else await this.doRestart(`sandbox died${this.lastExit ? `: ${this.lastExit}` : ''}`, 'crash');
  }

  /**
   * The factory's connection closed while the engine still reports the sandbox alive: its exit
   * event usually trails. Wait for it briefly, so the death is counted once, with its reason (an
   * OOM kill, say); a sandbox still alive without its factory is a death all the same.
   */
  private async settleLostConnection(): Promise<void> {
    const handle = this.handle;
    if (this._state !== 'running' || !handle || this.channel?.connected) return;
    // Generous: on a loaded host the engine's event can trail by seconds, and the reason it
    // carries (an OOM kill) is what the operator needs.
    if (handle.isAlive()) await exitedWithin(handle, 3000);
    if (this.handle === handle && this._state === 'running') this.noteDeath('its factory closed the control connection');
  }

  private noteCrash(reason: string): void {
    this.crashes++;
    this.lastExit = reason;
    this.backoffUntil = Date.now() + backoffMs(this.crashes);
    this.log.warn({ crashes: this.crashes, backoffMs: backoffMs(this.crashes), reason }, 'sandbox died soon after starting');
  }

  private watchExit(handle: SandboxHandle): void {
    handle.onOom?.(() => {
      this.lastOomAt = Date.now();
      this.log.warn('OOM kill in the sandbox');
    });
    void handle.exited.then((exit) => {
      if (this.handle === handle) this.noteDeath(exit.reason);
    });
  }

  /** The running sandbox is gone (or past saving): counted once, flapping if it was young. */
  private noteDeath(reason: string): void {
    this.availability.failed(Date.now());
    this.daemons.clear();
    this.lastExit = reason;
    this._state = 'dead';
    const upMs = Date.now() - (this.startedAt?.getTime() ?? 0);
    if (upMs < (this.opts.flapWindowMs ?? 10_000)) this.noteCrash(reason);
    else this.crashes = 0;
    this.log.warn({ reason, upMs }, 'sandbox exited');
  }

  /** Restarts now (an operator's request); the reason is recorded. */
  restart(reason: string): Promise<void> {
    return this.lifecycle.add(() => this.doRestart(reason, 'operator'));
  }

  /** Makes sure the storlet's daemon runs at `spec.version`; cheap when it does. */
  async activateDaemon(spec: DaemonSpec): Promise<void> {
    if (this.runsDaemon(spec.name, spec.version)) return;
    await this.lifecycle.add(async () => {
      if (this.state !== 'running') await this.startAfterBackoff();
      if (this.daemons.get(spec.name)?.version === spec.version) return;
      try {
        await this.doActivate(spec);
      } catch (err) {
        // Gone (no listener) or deaf (no reply in time): either way the factory is lost.
        if (!(err instanceof SandletError) || (err.code !== 'ENOLISTENER' && err.code !== 'ETIMEDOUT')) throw err;
        await this.recoverLostFactory(oneLine(err));
        await this.doActivate(spec);
      }
    });
  }

  /**
   * The factory stopped listening while its sandbox looked alive: the sandbox is dying (its
   * daemons live in the factory's process, so an OOM kill takes them all) and the engine's event
   * trails. Wait for that event briefly, so the death is counted as one; then start afresh.
   */
  private async recoverLostFactory(why: string): Promise<void> {
    const handle = this.handle;
    if (handle?.isAlive()) await exitedWithin(handle, 3000);
    this.log.warn({ why, exited: !handle?.isAlive() }, 'the factory no longer answers; restarting the sandbox');
    // Alive but deaf: a death all the same (doRestart's stop then removes it).
    if (handle?.isAlive() && this.handle === handle) this.noteDeath(`factory stopped answering: ${why}`);
    await this.startAfterBackoff();
  }

  /**
   * Why a task's daemon died without a word, when the sandbox knows: an OOM kill reported by the
   * engine within `waitMs` (its event may trail the pipes closing).
   */
  explainDeath(memoryLimit: string, since: number, waitMs = 3000): Promise<string | undefined> {
    const handle = this.handle;
    const why = `it was killed: the sandbox ran out of memory (container_mem_limit ${memoryLimit})`;
    if (this.lastOomAt >= since) return Promise.resolve(why);
    if (!handle?.onOom) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const done = (why: string | undefined): void => {
        clearTimeout(timer);
        off();
        resolve(why);
      };
      const off = handle.onOom!(() => done(why));
      const timer = setTimeout(() => done(undefined), waitMs);
    });
  }

  /** An invocation starts: the sandbox is not idle. */
  begin(): void {
    this.inFlight++;
    this.lastUsed = Date.now();
  }

  /** An invocation ended: at the last one, an idle moment (restart if stale, else arm the idle stop). */
  end(): void {
    this.inFlight--;
    this.lastUsed = Date.now();
    if (this.inFlight === 0 && this._state === 'running') this.onIdle();
  }

  private onIdle(): void {
    if (this.staleReason) {
      const { reason, kind } = this.staleReason;
      this.staleReason = undefined;
      void this.lifecycle
        .add(async () => {
          if (this.inFlight === 0 && this.state === 'running') await this.doRestart(reason, kind);
        })
        .catch((err) => this.log.warn({ err: oneLine(err) }, 'restart at idle failed'));
      return;
    }
    const idleMs = this.opts.idleTimeoutMs ?? 0;
    if (idleMs <= 0) return;
    // One timer per sandbox, pushed back at every idle moment: nothing allocated per invocation.
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // Busy now: its last invocation's end arms the timer again.
      if (this.inFlight === 0 && this.state === 'running') void this.stop(`idle for ${idleMs / 1000} s`).catch(() => {});
    }, idleMs);
    this.idleTimer.unref();
  }

  /** Restart now if idle, else at the next idle moment (an image changed, or an operator asked). */
  markStale(reason: string, kind: RestartKind = 'image-changed'): void {
    if (this.state !== 'running') return;
    this.staleReason = { reason, kind };
    if (this.inFlight === 0) this.onIdle();
  }

  get image(): string | undefined {
    return this.handle?.image;
  }

  /** Forget a daemon that stopped answering, so the next activation starts it again. */
  forgetDaemon(name: string): void {
    this.daemons.delete(name);
    this.timeouts.delete(name);
  }

  /**
   * The storlet's daemon left a command unanswered (EXECUTE or CANCEL): it is wedged. The next
   * activation stops it (DAEMON_STATUS, STOP_DAEMON; a factory that does not answer either
   * restarts the sandbox) and starts it afresh.
   */
  daemonUnanswered(name: string, what: string): void {
    const known = this.daemons.get(name);
    if (!known) return;
    this.log.warn({ storlet: name, unanswered: what }, 'storlet daemon stopped answering; stopping it (it restarts at its next invocation)');
    this.forgetDaemon(name);
    // Stopped now, so tasks queued behind its held threads fail at once instead of timing out.
    void this.lifecycle
      .add(async () => {
        if (this.daemons.has(name) || this.state !== 'running') return; // started afresh meanwhile, or gone
        const stopped = await this.factory.stopDaemon(known.main).catch((err: Error) => ({ status: false, message: oneLine(err) }));
        if (!stopped.status) await this.doRestart(`wedged daemon ${name} did not stop: ${stopped.message}`, 'daemon-stop-failed');
      })
      .catch((err) => this.log.warn({ storlet: name, err: oneLine(err) }, 'stopping a wedged daemon failed'));
  }

  /**
   * An invocation of the storlet ended: a timeout waiting on its daemon counts toward deeming it
   * wedged (WEDGED_AFTER_TIMEOUTS in a row); anything it answered resets the count.
   */
  noteOutcome(name: string, timedOut: boolean): void {
    if (!timedOut) {
      if (this.timeouts.size > 0) this.timeouts.delete(name);
      return;
    }
    const n = (this.timeouts.get(name) ?? 0) + 1;
    this.timeouts.set(name, n);
    if (n >= WEDGED_AFTER_TIMEOUTS) this.daemonUnanswered(name, `${n} invocations in a row timed out`);
  }

  /**
   * After a storlet failed: whether its installed files are still as installed. A dir deleted or
   * changed behind the gateway's back makes new task workers fail to load; the daemon is then
   * forgotten, so the next invocation reinstalls its files from the cache and restarts it.
   */
  checkDaemonFiles(name: string): boolean {
    const files = this.daemons.get(name)?.files;
    if (!files) return true;
    if (inodeOf(this.paths.hostStorletsDir) !== this.storletsDirIno) {
      // A new dir under the old name is invisible to a container that mounted the old one.
      this.log.warn({ storlet: name }, "the scope's storlets dir was removed behind the gateway's back; restarting the sandbox");
      this.forgetDaemon(name);
      this.markStale("its storlets dir was removed behind the gateway's back", 'repair');
      return false;
    }
    const dir = this.paths.hostStorletDir(name);
    for (const [base, was] of files) {
      const file = path.join(dir, base);
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(file);
      } catch {
        st = undefined;
      }
      if (!st || !sameIdentity(identity(st), was)) {
        this.log.warn({ storlet: name, file }, `storlet file ${st ? 'changed' : 'is gone'} behind the gateway's back; reinstalling it at the next invocation`);
        this.forgetDaemon(name);
        return false;
      }
    }
    return true;
  }

  /** Cache digests the running daemons use. */
  *daemonContents(): Iterable<string> {
    for (const d of this.daemons.values()) yield* d.contents;
  }

  /**
   * Daemons whose files include `sha256` are no longer trusted to match the cache: the next
   * activation stops them, reinstalls their dir and starts them again.
   */
  forgetDaemonsUsing(sha256: string): string[] {
    const names = [...this.daemons.entries()].filter(([, d]) => d.contents.includes(sha256)).map(([n]) => n);
    for (const n of names) this.daemons.delete(n);
    return names;
  }

  async stopDaemon(name: string): Promise<void> {
    await this.lifecycle.add(async () => {
      const known = this.daemons.get(name);
      this.daemons.delete(name);
      if (known && this.state === 'running') await this.factory.stopDaemon(known.main);
    });
  }

  /** HALT the agent, then make sure the sandbox is gone. */
  async stop(reason = 'stopped'): Promise<void> {
    try {
      await this.lifecycle.add(async () => {
        if (this.handle) this.lastStop = { at: new Date(), reason };
        await this.doStop();
      });
    } finally {
      this.opts.onStopped?.(this);
    }
  }

  /** Whether nothing of this sandbox is left to keep: stopped, idle, not backing off, nothing queued. */
  get releasable(): boolean {
    return this._state === 'stopped' && this.inFlight === 0 && this.lifecycle.size === 0 && this.lifecycle.pending === 0 && this.backoffUntil <= Date.now();
  }

  private async doStop(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.daemons.clear();
    this.timeouts.clear();
    this._state = 'stopped';
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (!handle) return;
    try {
      if (handle.isAlive()) await this.haltGracefully(handle);
    } finally {
      await handle.kill();
      this.closeChannel();
      // The channel of a stopped sandbox is stale: its dir goes with it.
      fs.rmSync(this.paths.hostPipeDir, { recursive: true, force: true });
    }
  }

  private async haltGracefully(handle: SandboxHandle): Promise<void> {
    try {
      await this.factory.halt(2000);
      await exitedWithin(handle, 3000);
    } catch (err) {
      this.log.debug({ err: oneLine(err) }, 'HALT failed; killing the sandbox');
    }
  }

  private record(reason: string, kind: RestartKind): void {
    this.restarts.push({ at: new Date(), reason, kind });
    if (this.restarts.length > 100) this.restarts.shift();
    this.restartCounts.set(kind, (this.restartCounts.get(kind) ?? 0) + 1);
  }

  private async doRestart(reason: string, kind: RestartKind): Promise<void> {
    await this.doStop();
    // The channel first: a live one of another gateway on this root refuses the start here.
    this.closeChannel();
    this.openChannel(undefined);
    this._state = 'starting';
    this.record(reason, kind);
    this.log.info({ reason }, 'starting sandbox');
    fs.mkdirSync(this.paths.hostStorletsDir, { recursive: true });
    this.storletsDirIno = inodeOf(this.paths.hostStorletsDir);
    this.startedAt = new Date();
    let handle: SandboxHandle;
    try {
      handle = await this.opts.backend.start({
        paths: this.paths,
        logLevel: this.opts.logLevel,
        maxDatagramBytes: this.opts.maxDatagramBytes,
      });
    } catch (err) {
      this._state = 'dead'; // never 'starting' with nothing started
      this.closeChannel();
      throw err;
    }
    this.handle = handle;
    this.watchChannel(handle);
    try {
      await this.wait(handle, this.opts.readyTimeoutMs);
    } catch (err) {
      this._state = 'dead';
      this.noteCrash((err as Error).message);
      await handle.kill();
      this.closeChannel();
      throw err;
    }
    this.startedAt = new Date();
    this.watchExit(handle);
    this._state = 'running';
    this.availability.up(Date.now());
  }

  /**
   * The scope's channel: a listening socket the gateway owns in a dir it owns, which the sandbox
   * sees read-only. A live socket there (another gateway or backend on this root runs the scope)
   * refuses with ESANDBOX, touching nothing.
   */
  private openChannel(handle: SandboxHandle | undefined): void {
    const backend = this.opts.backend.name;
    const marker = path.join(this.paths.hostPipeDir, BACKEND_MARKER);
    let owner: string | undefined;
    try {
      owner = fs.readFileSync(marker, 'utf8').trim();
    } catch {
      owner = undefined;
    }
    if (owner !== undefined && owner !== backend) {
      throw new SandletError(
        'ESANDBOX',
        `scope ${this.scope} has a sandbox this gateway did not start (the ${owner} backend left it at ${this.paths.hostPipeDir}): another gateway or backend on this root runs it; stop it there (or with \`sandlet scopes stop --all\` and that backend) first`,
      );
    }
    // Gateway-owned, searchable but not writable by the sandbox's user: nothing in it is theirs.
    fs.mkdirSync(this.paths.hostPipeDir, { recursive: true, mode: 0o711 });
    fs.chmodSync(this.paths.hostPipeDir, 0o711);
    this.channel = new FactoryChannel(this.scope, this.paths.hostChannelSocket, this.opts.logger, this.opts.backend.fileOwner);
    // Only once the channel is ours: a refused start touches nothing.
    fs.writeFileSync(marker, `${backend}\n`, { mode: 0o644 });
    if (handle) this.watchChannel(handle);
  }

  /**
   * The factory's connection closing makes the sandbox 'dead' (see state) at once; its exit, which
   * usually follows, is what counts the death (watchExit), with the engine's reason.
   */
  private watchChannel(handle: SandboxHandle): void {
    const channel = this.channel;
    if (!channel) return;
    channel.onLost = (why) => {
      if (this.channel === channel && this.handle === handle) this.log.warn({ why }, 'lost the factory connection');
    };
  }

  /**
   * Lets go of a sandbox left running for the next gateway (Docker, on close): its channel closes,
   * its factory dials again until a gateway listens at the same path and adopts it.
   */
  release(): void {
    this.closeChannel();
  }

  private closeChannel(): void {
    this.channel?.close();
    this.channel = undefined;
  }

  /** Resolves once the factory dialled in, said hello and answers PING; the sandbox's exit or the deadline ends it. */
  private async wait(handle: SandboxHandle, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const channel = this.channel;
    if (!channel) throw new SandletError('ESANDBOX', `scope ${this.scope} has no channel to wait on`);
    try {
      await channel.waitConnected(timeoutMs, handle.exited);
      const reply = await this.factory.ping(Math.max(1, deadline - Date.now()));
      if (!reply.status) throw new SandletError('ESANDBOX', `factory of scope ${this.scope} answered PING with failure: ${reply.message}`);
      this.agentVersion = reply.version;
      this.agentIsSandlet = typeof reply.version === 'object' && reply.version !== null;
    } catch (err) {
      if (!handle.isAlive()) {
        const exit = await handle.exited;
        throw new SandletError('ESANDBOX', `sandbox of scope ${this.scope} ${exit.reason} before it was ready${await tail(handle)}`);
      }
      if (err instanceof SandletError && err.code === 'ETIMEDOUT') {
        throw new SandletError('ESANDBOX', `sandbox of scope ${this.scope} was not ready within ${timeoutMs / 1000} s${await tail(handle)}`);
      }
      throw err;
    }
  }

  private async doActivate(spec: DaemonSpec): Promise<void> {
    const known = this.daemons.get(spec.name);
    this.daemons.delete(spec.name);
    // The factory knows daemons by main; a storlet whose main changed runs under the old one.
    for (const main of new Set([known?.main ?? spec.main, spec.main])) {
      const status = await this.factory.daemonStatus(main);
      if (!status.status && known === undefined) continue;
      const stopped = await this.factory.stopDaemon(main).catch((err: Error) => ({ status: false, message: oneLine(err) }));
      if (!stopped.status) {
        // A daemon that will not stop must not keep running old code: restart the whole sandbox.
        this.log.warn({ storlet: spec.name, message: stopped.message }, 'STOP_DAEMON failed; restarting the sandbox');
        await this.doRestart(`STOP_DAEMON of ${spec.name} failed: ${stopped.message}`, 'daemon-stop-failed');
        break;
      }
    }
    const files = await spec.install();
    const reply = await this.factory.startDaemon(
      {
        daemon_language: spec.language,
        storlet_path: this.paths.sandboxStorletDir(spec.name),
        storlet_name: spec.main,
        uds_path: this.paths.sandboxStorletPipe(spec.name),
        log_level: spec.logLevel,
        pool_size: spec.poolSize,
        ...(spec.languageVersion ? { daemon_language_version: spec.languageVersion } : {}),
      },
      // Loading a storlet may take longer than a PING.
      Math.max(this.opts.sbusTimeoutMs, 15_000),
    );
    if (!reply.status) throw new SandletError('ESTORLET', `storlet ${spec.name} could not start: ${reply.message}`);
    this.daemons.set(spec.name, { version: spec.version, main: spec.main, contents: spec.contents ?? [], files });
    this.timeouts.delete(spec.name);
    this.log.info({ storlet: spec.name, version: spec.version }, 'storlet daemon active');
  }

  describe(): {
    scope: string; state: SandboxState; id: string | undefined; image: string | undefined; startedAt: Date | undefined;
    inFlight: number; daemons: string[]; crashes: number;
  } {
    return {
      scope: this.scope,
      state: this.state,
      id: this.handle?.id,
      image: this.handle?.image,
      crashes: this.crashes,
      startedAt: this.startedAt,
      inFlight: this.inFlight,
      daemons: [...this.daemons.keys()],
    };
  }
}

function inodeOf(dir: string): number | undefined {
  try {
    return fs.statSync(dir).ino;
  } catch {
    return undefined;
  }
}

/** Resolves when the sandbox exited or after ms, whichever comes first. */
async function exitedWithin(handle: SandboxHandle, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([handle.exited, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

async function tail(handle: SandboxHandle): Promise<string> {
  const text = await handle.logTail(5);
  return text ? `; last agent log lines: ${text.replace(/\n/g, ' | ')}` : '';
}
