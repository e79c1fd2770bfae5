// The facade object-store middleware uses: invoke a storlet in a scope's sandbox.
import type { Readable } from 'node:stream';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { parseSize, resolveConfig, type SandletConfig, type SandletConfigInput } from './config.js';
import { SandletError, isSandletError, oneLine } from './errors.js';
import { validateScopeName, validateStorletName } from './names.js';
import { createLogger } from './log.js';
import { CacheMetrics } from './cache/cache-metrics.js';
import { StorletCatalog } from './cache/catalog.js';
import { ContentCache } from './cache/content-cache.js';
import { openStore } from './cache/open-store.js';
import { replaceDir } from './cache/scope-installer.js';
import type { DeployInput, StorletStore } from './cache/storlet-store.js';
import type { DependencyRegistration, StorletRegistration } from './cache/registration.js';
import { InvocationLogs } from './invocation/invocation-log.js';
import { invokeStorlet, isExtraInput, isFdInput, type ByteRange, type ExtraInput, type InvocationInput } from './invocation/invocation.js';
import { ProcessBackend } from './runtime/backends/process.js';
import { DockerBackend } from './runtime/backends/docker.js';
import { selectBackend } from './runtime/select-backend.js';
import type { SandboxBackend } from './runtime/sandbox-backend.js';
import { Sandbox } from './runtime/sandbox.js';
import { ScopePaths } from './runtime/scope-paths.js';

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
   * the account's catalog, read with the caller's credentials.
   */
  catalog?: StorletCatalog;
  /** Aborting it cancels the invocation at once (the caller went away). */
  signal?: AbortSignal;
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

  constructor(config: SandletConfig, opts: GatewayOptions = {}) {
    this.config = config;
    this.logger = opts.logger ?? createLogger(config.log_level);
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
        const selected = await selectBackend(this.config, this.logger);
        this.backend = selected.backend;
        this.notice = selected.notice;
        if (selected.notice) this.logger.warn(selected.notice);
      }
      if (this.backend instanceof DockerBackend) {
        // A tag moved to a new image: sandboxes on that tag restart at their next idle moment.
        this.backend.onImageTagged((ref) => {
          for (const sb of this.sandboxes.values()) {
            const tenant = `${this.config.image_namespace}/${sb.scope.toLowerCase()}:latest`;
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
      await backend.remove(c.id);
    }
  }

  /** The scope's sandbox object (created on first use; nothing is started until needed). */
  sandbox(scope: string): Sandbox {
    // The map holds validated names only: a hit needs no second check (invoke() calls this per call).
    let sb = this.sandboxes.get(scope);
    if (!sb) {
      const name = validateScopeName(scope);
      if (!this.backend) throw new SandletError('ESANDBOX', 'the gateway has not chosen its backend yet: await gateway.ready() first');
      const host = { pipesDir: this.config.pipes_dir, storletsDir: this.config.storlets_dir, logDir: this.config.log_dir };
      const probe = new ScopePaths(name, host);
      const paths = new ScopePaths(name, host, this.backend.sandboxRoots(probe.hostPipeDir, probe.hostStorletsDir));
      sb = new Sandbox({
        paths,
        backend: this.backend,
        logger: this.logger,
        codec: this.config.sbus_codec,
        sbusTimeoutMs: this.config.sbus_timeout_ms,
        readyTimeoutMs: this.config.sandbox_ready_timeout_ms,
        maxDatagramBytes: this.config.max_datagram_bytes,
        logLevel: this.config.storlet_daemon_log_level,
        idleTimeoutMs: this.config.idle_timeout * 1000,
      });
      this.sandboxes.set(name, sb);
    }
    return sb;
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

  async invoke(req: InvokeRequest): Promise<InvokeResult> {
    if (this.closed) throw new SandletError('ECLOSED', 'gateway is closed');
    const storlet = validateStorletName(req.storlet);
    validateScopeName(req.scope);
    if (!this.backend || this.readying === undefined) await this.ready();
    const sandbox = this.sandbox(req.scope);
    const params = checkStringRecord(req.params ?? {}, 'params');
    const inputMetadata = checkStringRecord(req.inputMetadata ?? {}, 'inputMetadata');
    if (req.range && !(Number.isSafeInteger(req.range.start) && Number.isSafeInteger(req.range.end) && req.range.start >= 0 && req.range.end >= req.range.start)) {
      throw new SandletError('EBADNAME', `range ${req.range.start}-${req.range.end} is not a valid byte range`);
    }
    // Two tries: a daemon found dead when EXECUTE is sent (nothing consumed yet) is restarted once.
    for (let attempt = 1; ; attempt++) {
      if (sandbox.state !== 'running') await this.admit(sandbox);
      await this.activate(sandbox, storlet, req.catalog ?? this.catalog);
      const startedAt = Date.now();
      sandbox.begin();
      let settled = false;
      const done = (): void => {
        if (!settled) {
          settled = true;
          sandbox.end();
        }
      };
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
          maxMetadataBytes: this.config.max_metadata_bytes,
          pipeBufferBytes: this.config.pipe_buffer_bytes,
          logPath: sandbox.logPath(storlet),
          logMaxBytes: this.config.storlet_log_max_bytes,
          logs: this.logs,
          withStatus: sandbox.agentIsSandlet,
          logger: this.logger,
          onDone: done,
          explainFailure: () => sandbox.explainDeath(this.config.container_mem_limit, startedAt),
        });
        return { metadata: result.metadata, body: result.body };
      } catch (err) {
        done();
        // Gone before it took the task (no listener), or dying as it took it (no reply; the
        // task cannot have read an input we still hold: a stream is pumped only after the
        // reply, and bytes are written again). A caller's fd may have been read from: no retry.
        const gone = isSandletError(err, 'ENOLISTENER') || (isSandletError(err, 'ENOREPLY') && !passesFd(req));
        if (attempt === 1 && gone) {
          this.logger.warn({ scope: sandbox.scope, storlet }, 'storlet daemon was gone; starting it again');
          sandbox.forgetDaemon(storlet);
          continue;
        }
        throw err;
      }
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

  private async activate(sandbox: Sandbox, storlet: string, catalog: StorletCatalog): Promise<void> {
    const r = await catalog.resolve(storlet);
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
      install: () => replaceDir(sandbox.paths.hostStorletDir(reg.name), (stage) => catalog.install(r, stage, this.backend?.fileOwner)),
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
   * Closes the gateway. Process sandboxes always stop (they are its children); Docker sandboxes
   * keep running for the next gateway to adopt, unless `stopSandboxes` (or the config's
   * `stop_sandboxes_on_close`) asks otherwise.
   */
  async close(opts: { stopSandboxes?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stop = opts.stopSandboxes ?? (this.config.stop_sandboxes_on_close || this.backend?.name !== 'docker');
    if (stop) await Promise.all([...this.sandboxes.values()].map((s) => s.stop().catch(() => {})));
    await this.backend?.close?.();
    this.sandboxes.clear();
    this.logs.closeAll();
  }

  // Minimal stopAll for the CLI's `scopes stop --all` (the gateway branch has the full one; the
  // lead reconciles): stops every sandbox this gateway has, adopted ones included.
  async stopAll(): Promise<{ scope: string; error?: string }[]> {
    return Promise.all(
      [...this.sandboxes.values()]
        .filter((s) => s.state !== 'stopped')
        .map(async (s) => {
          try {
            await s.stop('stopped by stopAll');
            return { scope: s.scope };
          } catch (err) {
            return { scope: s.scope, error: oneLine(err) };
          }
        }),
    );
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
