// The facade object-store middleware uses: invoke a storlet in a scope's sandbox.
import type { Readable } from 'node:stream';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { parseSize, resolveConfig, type SandletConfig, type SandletConfigInput } from './config.js';
import { SandletError, isSandletError, oneLine } from './errors.js';
import { tenantImage, validateScopeName, validateStorletName } from './names.js';
import { createLogger } from './log.js';
import { CacheMetrics } from './cache/cache-metrics.js';
import { StorletCatalog, type ResolvedStorlet } from './cache/catalog.js';
import { ContentCache } from './cache/content-cache.js';
import { openStore } from './cache/open-store.js';
import { replaceDir } from './cache/scope-installer.js';
import type { DeployInput, StoreAuth, StorletStore } from './cache/storlet-store.js';
import type { DependencyRegistration, StorletRegistration } from './cache/registration.js';
import { InvocationLogs } from './invocation/invocation-log.js';
import { InputWatch, callerGone, invokeStorlet, isExtraInput, isFdInput, type ByteRange, type ExtraInput, type InvocationInput } from './invocation/invocation.js';
import { ProcessBackend } from './runtime/backends/process.js';
import { DockerBackend } from './runtime/backends/docker.js';
import { selectBackend } from './runtime/select-backend.js';
import type { SandboxBackend } from './runtime/sandbox-backend.js';
import { Sandbox } from './runtime/sandbox.js';
import { ScopePaths } from './runtime/scope-paths.js';
import { GATEWAY_KEPT_HEAP_BYTES, keepFreedHeap } from './util/keep-freed-heap.js';
import { sweepArrayBuffersInline } from './util/sweep-array-buffers-inline.js';

export interface InvokeRequest {
  scope: string;
  storlet: string;
  params?: Record<string, string>;
  input: InvocationInput;
  inputMetadata?: Record<string, string>;
  extraInputs?: (InvocationInput | ExtraInput)[];
  range?: ByteRange;
  /** Longest the storlet may stay silent: before its metadata, and between output chunks. */
  timeoutMs?: number;
  /**
   * Where the storlet's name resolves (default: the gateway's store). The Swift front door passes
   * the account's catalog, read with the caller's credentials (storeAuth).
   */
  catalog?: StorletCatalog;
  /** The caller's credentials for the catalog's store, should the storlet have to be read from it. */
  storeAuth?: StoreAuth;
  /**
   * Aborted when the caller goes away: the task is cancelled at once (also before its metadata
   * came), invoke() rejects with ECANCELLED, or the body errors with it, and everything is freed.
   */
  signal?: AbortSignal;
  /**
   * This invocation's log goes to this fd instead of the storlet's invocation log (the caller's:
   * never closed by the gateway; the agent still caps it at storlet_log_max_bytes).
   */
  logFd?: number;
}

export interface InvokeResult {
  metadata: Record<string, string>;
  /** The output object. Errors (never ends early) when the storlet fails mid-stream. */
  body: Readable;
}

export interface GatewayOptions {
  logger?: Logger;
  backend?: SandboxBackend;
}

export class Gateway {
  readonly config: SandletConfig;
  /** Where storlets come from (config `storlet_store`). */
  readonly store: StorletStore;
  /** The node's verified content cache, and the name → content resolution above it. */
  readonly cache: ContentCache;
  readonly catalog: StorletCatalog;
  /** Cache hits, misses, evictions, bytes and fetch time; `observe()` adds hooks. */
  readonly cacheMetrics = new CacheMetrics();
  readonly logger: Logger;
  private backend: SandboxBackend | undefined;
  private readying: Promise<void> | undefined;
  /** Set when `auto` chose the process backend: why, in one line. */
  notice: string | undefined;
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly logs: InvocationLogs;
  private readonly admission = new PQueue({ concurrency: 1 });
  private readonly starting = new Set<Sandbox>();
  private closed = false;
  /** Scopes whose running containers ready() removed (not adoptable): stopAll() reports them once. */
  private removedAtStart: string[] = [];

  constructor(config: SandletConfig, opts: GatewayOptions = {}) {
    this.config = config;
    this.logger = opts.logger ?? createLogger(config.log_level);
    keepFreedHeap(GATEWAY_KEPT_HEAP_BYTES);
    sweepArrayBuffersInline();
    // `process` needs no probing; `auto` and `docker` are resolved by ready().
    this.backend = opts.backend ?? (config.backend === 'process' ? new ProcessBackend(this.logger) : undefined);
    this.store = openStore(config);
    this.cache = new ContentCache({
      dir: config.cache_dir,
      maxBytes: parseSize(config.cache_max_bytes),
      logger: this.logger,
      metrics: this.cacheMetrics,
      inUse: () => this.contentsInUse(),
    });
    this.catalog = new StorletCatalog({
      store: this.store,
      cache: this.cache,
      metrics: this.cacheMetrics,
      logger: this.logger,
      ttlMs: config.cache_ttl * 1000,
      onRepaired: (sha) => this.cacheRepaired(sha),
    });
    this.logs = new InvocationLogs(config.storlet_log_max_bytes, config.storlet_log_keep);
  }

  /** Cached bytes with this digest were corrupted and fetched again: daemons using them reinstall. */
  cacheRepaired(sha: string): void {
    for (const sb of this.sandboxes.values()) {
      const names = sb.forgetDaemonsUsing(sha);
      if (names.length > 0) this.logger.warn({ scope: sb.scope, storlets: names, sha256: sha }, 'cached file was corrupted: these daemons reinstall and restart at their next invocation');
    }
  }

  /** The backend in use, once ready() resolved ('process' or 'docker'). */
  get backendName(): string | undefined {
    return this.backend?.name;
  }

  /**
   * Chooses the backend (for `auto`/`docker`) and adopts sandboxes a previous gateway left running:
   * those that answer PING and run the image their scope should run are kept, the others removed.
   * invoke() calls it; call it yourself to fail early or to read `notice`.
   */
  ready(): Promise<void> {
    this.readying ??= (async () => {
      this.catalog.open();
      if (!this.backend) {
        const selected = await selectBackend(this.config, this.logger, this.logs);
        this.backend = selected.backend;
        this.notice = selected.notice;
        if (selected.notice) this.logger.warn(selected.notice);
      }
      if (this.backend instanceof DockerBackend) {
        // A tag moved to a new image: sandboxes on that tag restart at their next idle moment.
        this.backend.onImageTagged((ref) => {
          for (const sb of this.sandboxes.values()) {
            const tenant = tenantImage(this.config.image_namespace, sb.scope);
            if (sb.image === ref || ref === tenant) sb.markStale(`image ${ref} changed`);
          }
        });
        await this.adoptOrRemove(this.backend);
      }
    })();
    this.readying.catch(() => (this.readying = undefined));
    return this.readying;
  }

  private async adoptOrRemove(backend: DockerBackend): Promise<void> {
    for (const c of await backend.listManaged()) {
      let sb: Sandbox | undefined;
      try {
        sb = this.sandbox(c.scope);
      } catch {
        sb = undefined; // a label we cannot use as a scope: not ours to keep
      }
      const handle = sb && c.running ? await backend.adopt(sb.paths) : undefined;
      if (sb && handle && handle.id === c.id && (await sb.adopt(handle))) continue;
      this.logger.info({ container: c.id.slice(0, 12), scope: c.scope }, 'removing a sandbox container that cannot be adopted');
      await backend.remove(c.id, sb?.paths);
      if (c.running) this.removedAtStart.push(c.scope);
      if (sb) this.release(sb); // nothing of it runs: no record kept
    }
  }

  /** The scope's sandbox object (created on first use; nothing is started until needed). */
  sandbox(scope: string): Sandbox {
    // The map holds validated names only: a hit needs no second check (invoke() calls this per call).
    let sb = this.sandboxes.get(scope);
    if (!sb) {
      const name = validateScopeName(scope);
      const paths = this.pathsFor(name);
      sb = new Sandbox({
        paths,
        backend: this.backend!,
        logger: this.logger,
        codec: this.config.sbus_codec,
        sbusTimeoutMs: this.config.sbus_timeout_ms,
        readyTimeoutMs: this.config.sandbox_ready_timeout_ms,
        maxDatagramBytes: this.config.max_datagram_bytes,
        logLevel: this.config.storlet_daemon_log_level,
        idleTimeoutMs: this.config.idle_timeout * 1000,
        onStopped: (stopped) => this.release(stopped),
      });
      this.sandboxes.set(name, sb);
    }
    return sb;
  }

  /**
   * Forgets a stopped, idle scope: its record and its invocation-log fds. Per-scope state is then
   * bounded by the scopes that run, not by every name ever seen. Its next use starts afresh.
   */
  private release(sb: Sandbox): void {
    if (this.sandboxes.get(sb.scope) !== sb || !sb.releasable || this.starting.has(sb)) return;
    this.sandboxes.delete(sb.scope);
    this.logs.closeUnder(sb.paths.hostLogDir);
  }

  scopes(): Sandbox[] {
    return [...this.sandboxes.values()];
  }

  /** The scope's sandbox if this gateway has one (never creates it). */
  findSandbox(scope: string): Sandbox | undefined {
    return this.sandboxes.get(validateScopeName(scope));
  }

  /** Where a storlet's invocation log of a scope lives (whether or not it exists yet). */
  logPath(scope: string, storlet: string): string {
    const host = { pipesDir: this.config.pipes_dir, storletsDir: this.config.storlets_dir, logDir: this.config.log_dir };
    return new ScopePaths(scope, host).hostLogPath(storlet);
  }

  /** The scope's paths on the host and as the backend's sandboxes see them. */
  private pathsFor(scope: string): ScopePaths {
    if (!this.backend) throw new SandletError('ESANDBOX', 'the gateway has not chosen its backend yet: await gateway.ready() first');
    const host = { pipesDir: this.config.pipes_dir, storletsDir: this.config.storlets_dir, logDir: this.config.log_dir };
    const probe = new ScopePaths(scope, host);
    return new ScopePaths(scope, host, this.backend.sandboxRoots(probe.hostPipeDir, probe.hostStorletsDir));
  }

  /** A label's scope may be anything: its paths when it is a valid scope name. */
  private pathsIfValid(scope: string): ScopePaths | undefined {
    try {
      return this.pathsFor(scope);
    } catch {
      return undefined;
    }
  }

  async invoke(req: InvokeRequest): Promise<InvokeResult> {
    if (this.closed) throw new SandletError('ECLOSED', 'gateway is closed');
    const storlet = validateStorletName(req.storlet);
    validateScopeName(req.scope);
    // From here, an input that fails is the caller's error to get back, never an unhandled event.
    const inputWatch = new InputWatch([req.input, ...(req.extraInputs ?? [])]);
    try {
      return await this.invokeWatched(req, storlet, inputWatch);
    } finally {
      inputWatch.stop();
    }
  }

  private async invokeWatched(req: InvokeRequest, storlet: string, inputWatch: InputWatch): Promise<InvokeResult> {
    const signal = req.signal;
    if (!this.backend || this.readying === undefined) await this.ready();
    const params = checkStringRecord(req.params ?? {}, 'params');
    const inputMetadata = checkStringRecord(req.inputMetadata ?? {}, 'inputMetadata');
    if (req.range && !(Number.isSafeInteger(req.range.start) && Number.isSafeInteger(req.range.end) && req.range.start >= 0 && req.range.end >= req.range.start)) {
      throw new SandletError('EBADNAME', `range ${req.range.start}-${req.range.end} is not a valid byte range`);
    }
    // The storlet first: a name that does not resolve costs no sandbox, no eviction, no record.
    const catalog = req.catalog ?? this.catalog;
    let resolved = await catalog.resolve(storlet, req.storeAuth);
    if (signal?.aborted) throw callerGone(storlet);
    const backend = this.backend;
    if (backend?.invoke) {
      const { input, extraInputs, range, timeoutMs, logFd } = req;
      const opts = { input, inputMetadata, params, extraInputs, range, inputWatch, ...(timeoutMs ? { timeoutMs } : {}), ...(signal ? { signal } : {}), ...(logFd !== undefined ? { logFd } : {}) };
      const { metadata, body } = await backend.invoke(req.scope, resolved, catalog, opts, req.storeAuth);
      return { metadata, body };
    }
    const sandbox = this.sandbox(req.scope);
    // Counted busy from here on, so neither the idle stop nor a release can take it meanwhile.
    sandbox.begin();
    let ended = false;
    const end = (err: Error | null): void => {
      if (ended) return;
      ended = true;
      // A storlet that failed may have lost its files behind our back: repaired at the next call.
      if (isSandletError(err, 'ESTORLET')) sandbox.checkDaemonFiles(storlet);
      sandbox.end();
    };
    try {
      // Two tries: a daemon found dead when EXECUTE is sent (nothing consumed yet) is restarted once.
      for (let attempt = 1; ; attempt++) {
        if (sandbox.state !== 'running') await this.admit(sandbox);
        if (signal?.aborted) throw callerGone(storlet);
        await this.activate(sandbox, resolved, catalog, req.storeAuth);
        if (signal?.aborted) throw callerGone(storlet);
        const startedAt = Date.now();
        try {
          const result = await invokeStorlet({
            storlet,
            client: sandbox.daemonClient(storlet),
            input: req.input,
            inputMetadata,
            extraInputs: req.extraInputs ?? [],
            range: req.range,
            params,
            timeoutMs: req.timeoutMs ?? this.config.storlet_timeout_ms,
            outputStallMs: this.config.output_stall_timeout_ms,
            maxMetadataBytes: this.config.max_metadata_bytes,
            pipeBufferBytes: this.config.pipe_buffer_bytes,
            logPath: sandbox.logPath(storlet),
            ...(req.logFd !== undefined ? { logFd: req.logFd } : {}),
            logMaxBytes: this.config.storlet_log_max_bytes,
            logs: this.logs,
            withStatus: sandbox.agentIsSandlet,
            logger: this.logger,
            ...(signal ? { signal } : {}),
            inputWatch,
            onUnanswered: (what) => sandbox.daemonUnanswered(storlet, what),
            onDaemonTimeout: (timedOut) => sandbox.noteOutcome(storlet, timedOut),
            onDone: end,
            explainFailure: () => sandbox.explainDeath(this.config.container_mem_limit, startedAt),
          });
          return { metadata: result.metadata, body: result.body };
        } catch (err) {
          // Gone before it took the task (no listener), or dying as it took it (no reply; the
          // task cannot have read an input we still hold: a stream is pumped only after the
          // reply, and bytes are written again). A caller's fd may have been read from: no retry.
          const gone = isSandletError(err, 'ENOLISTENER') || (isSandletError(err, 'ENOREPLY') && !passesFd(req));
          if (attempt === 1 && gone && !ended && !signal?.aborted) {
            this.logger.warn({ scope: sandbox.scope, storlet }, 'storlet daemon was gone; starting it again');
            sandbox.forgetDaemon(storlet);
            resolved = await catalog.resolve(storlet, req.storeAuth);
            continue;
          }
          throw err;
        }
      }
    } catch (err) {
      end(err as Error); // once the body is handed out, its end calls end() instead
      throw err;
    }
  }

  /**
   * Makes room for a sandbox about to start: at max_containers_per_node, the least recently used
   * idle sandbox is stopped; only when every one is busy is the start refused. One decision at a
   * time, so a burst of new scopes cannot overshoot the cap.
   */
  private admit(sandbox: Sandbox): Promise<void> {
    return this.admission.add(async () => {
      if (sandbox.state === 'running' || this.starting.has(sandbox)) return;
      const max = this.config.max_containers_per_node;
      const live = [...this.sandboxes.values()].filter((s) => s !== sandbox && (s.state === 'running' || this.starting.has(s)));
      if (live.length >= max) {
        const idle = live.filter((s) => s.inFlight === 0 && !this.starting.has(s)).sort((a, b) => a.lastUsed - b.lastUsed)[0];
        if (!idle) {
          throw new SandletError('ESANDBOX', `all ${max} sandboxes are busy (max_containers_per_node ${max}); scope ${sandbox.scope} cannot start now`);
        }
        this.logger.info({ evicted: idle.scope, for: sandbox.scope }, 'at capacity: stopping the least recently used idle sandbox');
        await idle.stop(`evicted for scope ${sandbox.scope} (max_containers_per_node ${max})`);
      }
      // Counted as live until it runs (or fails to), so concurrent admissions see it.
      this.starting.add(sandbox);
      sandbox.ensureRunning().then(
        () => this.starting.delete(sandbox),
        () => this.starting.delete(sandbox),
      );
    }) as Promise<void>;
  }

  private async activate(sandbox: Sandbox, r: ResolvedStorlet, catalog: StorletCatalog, auth?: StoreAuth): Promise<void> {
    const reg = r.storlet.meta;
    if (sandbox.runsDaemon(reg.name, r.version)) return; // the usual case: build no spec
    await sandbox.activateDaemon({
      name: reg.name,
      main: reg.main,
      version: r.version,
      contents: r.contents,
      language: reg.language,
      ...(reg.languageVersion ? { languageVersion: reg.languageVersion } : {}),
      poolSize: this.config.storlet_daemon_thread_pool_size,
      logLevel: this.config.storlet_daemon_log_level,
      install: () => replaceDir(sandbox.paths.hostStorletDir(reg.name), (stage) => catalog.install(r, stage, this.backend?.fileOwner, auth)),
    });
  }

  /** Cache digests running daemons use: never evicted. */
  private *contentsInUse(): Iterable<string> {
    for (const sb of this.sandboxes.values()) yield* sb.daemonContents();
  }

  /**
   * Deploys a storlet or dependency to the configured store. The next invocation of that name asks
   * the store again (whatever `cache_ttl` says) and, when the content changed, restarts its daemon.
   */
  async deploy(content: Buffer, input: DeployInput): Promise<StorletRegistration | DependencyRegistration> {
    return this.catalog.deploy(content, input);
  }

  /**
   * Stops every sandbox of this root: those this gateway runs and, on Docker, those an earlier
   * gateway left running (found by their `io.sandlet.root` label, adopted or removed). Each scope
   * is reported, with the error that stopped it from stopping, if any; one failure does not stop
   * the others.
   */
  async stopAll(): Promise<{ scope: string; error?: string }[]> {
    if (this.closed) throw new SandletError('ECLOSED', 'gateway is closed');
    await this.ready();
    const results: { scope: string; error?: string }[] = [];
    const running = [...this.sandboxes.values()].filter((sb) => sb.state !== 'stopped');
    const ours = new Set(running.map((sb) => sb.describe().id));
    const stops = running.map(async (sb) => {
      try {
        await sb.stop('stopped by an operator (stop all)');
        results.push({ scope: sb.scope });
      } catch (err) {
        results.push({ scope: sb.scope, error: oneLine(err) });
      }
    });
    await Promise.all(stops);
    for (const scope of this.removedAtStart.splice(0)) results.push({ scope });
    // Containers of this root that appeared since ready() (another gateway left them): removed.
    if (this.backend instanceof DockerBackend) {
      for (const c of await this.backend.listManaged()) {
        if (ours.has(c.id)) continue;
        const known = this.sandboxes.get(c.scope);
        if (known && known.describe().id === c.id) continue;
        try {
          await this.backend.remove(c.id, this.pathsIfValid(c.scope));
          if (c.running) results.push({ scope: c.scope });
        } catch (err) {
          results.push({ scope: c.scope, error: oneLine(err) });
        }
      }
    }
    return results.sort((a, b) => a.scope.localeCompare(b.scope));
  }

  /**
   * Closes the gateway. Process sandboxes always stop (they are its children); Docker sandboxes
   * keep running for the next gateway to adopt, unless `stopSandboxes` (or the config's
   * `stop_sandboxes_on_close`) asks otherwise.
   */
  async close(opts: { stopSandboxes?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stop = opts.stopSandboxes ?? (this.config.stop_sandboxes_on_close || this.backend?.name !== 'docker');
    if (stop) await Promise.all([...this.sandboxes.values()].map((s) => s.stop('gateway closed').catch(() => {})));
    else for (const s of this.sandboxes.values()) s.release(); // their factories dial the next gateway
    await this.backend?.close?.();
    this.sandboxes.clear();
    this.logs.closeAll();
  }
}

function checkStringRecord(value: unknown, what: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SandletError('EBADNAME', `${what} must be an object of strings`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new SandletError('EBADNAME', `${what}.${k} must be a string`);
  }
  return value as Record<string, string>;
}

/** Creates a gateway. Nothing starts until the first invocation of a scope. */
export function createGateway(config: SandletConfigInput | SandletConfig = {}, opts: GatewayOptions = {}): Gateway {
  return new Gateway(resolveConfig(config as SandletConfigInput), opts);
}

/** Whether the request passes any input as a caller's fd (whose file offset a task moves). */
function passesFd(req: InvokeRequest): boolean {
  return isFdInput(req.input) || (req.extraInputs ?? []).some((e) => isFdInput(isExtraInput(e) ? e.input : e));
}
