// The production backend: one hardened container per scope, created through dockerode. It only
// knows how to start, watch and remove a container; the lifecycle lives in Sandbox.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { ContainerCreateOptions } from 'dockerode';
import type { Logger } from 'pino';
import { parseSize, type SandletConfig } from '../../config.js';
import { SandletError, oneLine } from '../../errors.js';
import { tenantImage } from '../../names.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../../version.js';
import { containerLogTail, inspectImage, removeContainer, thawIfPaused, type DockerClient } from '../docker-engine.js';
import type { SandboxBackend, SandboxExit, SandboxHandle, SandboxStartSpec } from '../sandbox-backend.js';
import type { SandboxRoots, ScopePaths } from '../scope-paths.js';

export const LABEL_MANAGED = 'io.sandlet.managed';
export const LABEL_SCOPE = 'io.sandlet.scope';
export const LABEL_IMAGE = 'io.sandlet.image';
export const LABEL_AGENT = 'io.sandlet.agent.version';
/** The gateway's pipes_dir: gateways sharing an engine never touch each other's containers. */
export const LABEL_ROOT = 'io.sandlet.root';
export const SANDBOX_PIPES = '/mnt/channels';
export const SANDBOX_STORLETS = '/home/storlet';
/**
 * The engine keeps a container's output (the agent's log, and whatever a storlet prints) on the
 * host's disk: capped, so a storlet printing without end cannot fill it.
 */
export const CONTAINER_LOG = { Type: 'json-file', Config: { 'max-size': '8m', 'max-file': '2' } };
/** Lines of a container's log kept in the scope's agent.log when the container is removed. */
export const AGENT_LOG_KEEP_LINES = 5000;

type DockerConfig = Pick<
  SandletConfig,
  | 'default_container_image_name' | 'image_namespace' | 'container_prefix' | 'sandbox_user' | 'container_mem_limit'
  | 'container_cpu_period' | 'container_cpu_quota' | 'container_cpuset_cpus' | 'container_cpuset_mems'
  | 'container_pids_limit' | 'container_nofile_limit' | 'container_tmpfs_size' | 'restart_linux_container_timeout'
  | 'pipes_dir' | 'container_runtime'
>;

/** A tenant image may ask for the stronger runtime (never a weaker one than the config's). */
export const LABEL_RUNTIME = 'io.sandlet.container-runtime';
export type ContainerRuntime = 'runc' | 'runsc';

interface Watched {
  resolve: (exit: SandboxExit) => void;
  oomListeners: Set<() => void>;
  oom: boolean;
  exited: boolean;
}

export class DockerBackend implements SandboxBackend {
  readonly name = 'docker';
  private readonly docker: DockerClient;
  private readonly cfg: DockerConfig;
  private readonly log: Logger;
  private readonly watched = new Map<string, Watched>();
  private events: Readable | undefined;
  private readonly tagListeners = new Set<(ref: string) => void>();
  private eventsReady: Promise<void> | undefined;

  constructor(docker: DockerClient, cfg: DockerConfig, logger: Logger) {
    this.docker = docker;
    this.cfg = cfg;
    this.log = logger.child({ backend: 'docker' });
  }

  get fileOwner(): { uid: number; gid: number } {
    const [uid, gid] = this.cfg.sandbox_user.split(':').map(Number);
    return { uid: uid!, gid: gid ?? uid! };
  }

  sandboxRoots(): SandboxRoots {
    return { pipesDir: SANDBOX_PIPES, storletsDir: SANDBOX_STORLETS };
  }

  containerName(scope: string): string {
    return `${this.cfg.container_prefix}${scope}`;
  }

  /** The scope's tenant image (names.ts: tenantImage) when it exists, else the default image. */
  async imageFor(scope: string): Promise<{ ref: string; id: string; runtime: ContainerRuntime }> {
    const tenant = tenantImage(this.cfg.image_namespace, scope);
    const own = await inspectImage(this.docker, tenant);
    if (own) {
      const runtime = own.labels[LABEL_RUNTIME] === 'runsc' ? 'runsc' : this.cfg.container_runtime;
      return { ref: tenant, id: own.id, runtime };
    }
    const ref = this.cfg.default_container_image_name;
    const fallback = await inspectImage(this.docker, ref);
    if (!fallback) {
      throw new SandletError('ESANDBOX', `default image ${ref} is missing: build it with \`sandlet image build --tag ${ref}\``);
    }
    this.log.debug({ scope, tenant, image: ref }, 'no tenant image; using the default image');
    return { ref, id: fallback.id, runtime: this.cfg.container_runtime };
  }

  async start(spec: SandboxStartSpec): Promise<SandboxHandle> {
    const { paths } = spec;
    const image = await this.imageFor(paths.scope);
    await this.watchEvents();
    const name = this.containerName(paths.scope);
    await this.remove(name, paths); // a leftover of ours, never adopted: it goes
    this.prepareDirs(paths);
    const container = await this.docker
      .createContainer(this.containerSpec(name, image, spec))
      .catch((err: unknown) => {
        throw new SandletError('ESANDBOX', `cannot create container ${name} from ${image.ref}: ${oneLine(err)}`);
      });
    const handle = this.handleFor(container.id, image.ref, paths);
    try {
      await container.start();
    } catch (err) {
      await removeContainer(this.docker, container.id).catch(() => {});
      throw new SandletError('ESANDBOX', `cannot start container ${name}: ${oneLine(err)}`);
    }
    this.checkStillRunning(container.id);
    this.log.info({ scope: paths.scope, container: container.id.slice(0, 12), image: image.ref, runtime: image.runtime }, 'started sandbox container');
    return handle;
  }

  /** A running managed container of this scope, on the image the scope should run now. */
  async adopt(paths: ScopePaths): Promise<SandboxHandle | undefined> {
    const name = this.containerName(paths.scope);
    let info;
    try {
      info = await this.docker.getContainer(name).inspect();
    } catch {
      return undefined;
    }
    const labels = info.Config.Labels ?? {};
    if (labels[LABEL_MANAGED] !== 'true' || labels[LABEL_ROOT] !== this.cfg.pipes_dir || !info.State.Running) return undefined;
    const wanted = await this.imageFor(paths.scope).catch(() => undefined);
    if (!wanted || info.Image !== wanted.id || (info.HostConfig.Runtime ?? 'runc') !== wanted.runtime) return undefined;
    await this.watchEvents();
    const handle = this.handleFor(info.Id, wanted.ref, paths);
    this.checkStillRunning(info.Id);
    return handle;
  }

  /** This gateway's managed containers (same pipes_dir), with their scope label. */
  async listManaged(): Promise<{ id: string; scope: string; running: boolean }[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`${LABEL_MANAGED}=true`, `${LABEL_ROOT}=${this.cfg.pipes_dir}`] }),
    });
    return list.map((c) => ({ id: c.Id, scope: c.Labels[LABEL_SCOPE] ?? '', running: c.State === 'running' }));
  }

  /** Removes a container; with the scope's paths, its agent's log is kept in agent.log first. */
  async remove(id: string, paths?: ScopePaths): Promise<void> {
    if (paths) await this.keepLogs(id, paths);
    await removeContainer(this.docker, id);
  }

  /**
   * Appends what the container's agent logged (its last AGENT_LOG_KEEP_LINES lines) to the scope's
   * agent.log, as the process backend writes it: `docker logs` goes with the container.
   */
  private async keepLogs(id: string, paths: ScopePaths): Promise<void> {
    const text = await containerLogTail(this.docker, id, AGENT_LOG_KEEP_LINES);
    if (!text) return;
    try {
      await fs.promises.mkdir(paths.hostLogDir, { recursive: true });
      await fs.promises.appendFile(paths.hostAgentLog, `${text}\n`, { mode: 0o640 });
    } catch (err) {
      this.log.warn({ scope: paths.scope, err: oneLine(err) }, 'could not keep the sandbox agent log');
    }
  }

  /** Calls back with `repo:tag` whenever a tag is (re)pointed at an image. */
  onImageTagged(listener: (ref: string) => void): void {
    this.tagListeners.add(listener);
    void this.watchEvents().catch(() => {});
  }

  async close(): Promise<void> {
    this.events?.destroy();
    this.events = undefined;
    this.eventsReady = undefined;
  }

  private prepareDirs(paths: ScopePaths): void {
    // The channel dir is the gateway's (Sandbox made it, with the socket the agent dials): the
    // sandbox sees it read-only and owns nothing in it.
    fs.mkdirSync(paths.hostStorletsDir, { recursive: true, mode: 0o755 });
  }

  private containerSpec(name: string, image: { ref: string; runtime: ContainerRuntime }, spec: SandboxStartSpec): ContainerCreateOptions {
    const c = this.cfg;
    const memory = parseSize(c.container_mem_limit);
    const nofile = c.container_nofile_limit;
    const pids = pidsLimits(image.runtime, c.container_pids_limit);
    return {
      name,
      Image: image.ref,
      User: c.sandbox_user,
      Env: ['HOME=/tmp'],
      // --connect: the factory dials the gateway's socket instead of binding factory_pipe.
      Cmd: [
        '--connect', spec.paths.sandboxChannelSocket, '--scope', spec.paths.scope,
        '--log-level', spec.logLevel, '--max-datagram-bytes', String(spec.maxDatagramBytes),
      ],
      Labels: {
        [LABEL_MANAGED]: 'true',
        [LABEL_ROOT]: this.cfg.pipes_dir,
        [LABEL_SCOPE]: spec.paths.scope,
        [LABEL_IMAGE]: image.ref,
        [LABEL_AGENT]: AGENT_VERSION,
        'io.sandlet.protocol.version': String(PROTOCOL_VERSION),
      },
      NetworkDisabled: true,
      StopSignal: 'SIGTERM',
      StopTimeout: c.restart_linux_container_timeout,
      HostConfig: {
        Runtime: image.runtime,
        LogConfig: CONTAINER_LOG,
        // Only the scope's own channel dir and storlets, both read-only: nothing of the host is
        // writable from the sandbox except the fds an invocation hands it (connect() needs no
        // write access to the mount, only to the socket, which the gateway chowned to the sandbox user).
        Binds: [`${spec.paths.hostPipeDir}:${SANDBOX_PIPES}:ro`, `${spec.paths.hostStorletsDir}:${SANDBOX_STORLETS}:ro`],
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${parseSize(c.container_tmpfs_size)}` },
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges:true'],
        PidsLimit: pids.cgroup,
        Memory: memory,
        MemorySwap: memory, // no swap beyond the memory limit
        CpuPeriod: c.container_cpu_period,
        ...(c.container_cpu_quota > 0 ? { CpuQuota: c.container_cpu_quota } : {}),
        ...(c.container_cpuset_cpus ? { CpusetCpus: c.container_cpuset_cpus } : {}),
        ...(c.container_cpuset_mems ? { CpusetMems: c.container_cpuset_mems } : {}),
        Ulimits: [{ Name: 'nofile', Soft: nofile, Hard: nofile }, ...pids.ulimits],
        IpcMode: 'private',
        RestartPolicy: { Name: 'no' },
        // Docker's init as PID 1 reaps what a killed task group orphans (an exec storlet's or a
        // Python storlet's subprocesses): zombies would otherwise fill the pids limit.
        Init: true,
      },
    };
  }

  /** The event stream may have missed an exit that happened before it attached: look once. */
  private checkStillRunning(id: string): void {
    void this.docker
      .getContainer(id)
      .inspect()
      .then((info) => {
        if (!info.State.Running) this.watched.get(id)?.resolve(exitOf(info.State.ExitCode, info.State.OOMKilled, 'exited'));
      })
      .catch(() => this.watched.get(id)?.resolve({ code: null, signal: null, reason: 'container is gone' }));
  }

  private handleFor(id: string, image: string, paths: ScopePaths): SandboxHandle {
    const watched: Watched = { resolve: () => {}, oomListeners: new Set(), oom: false, exited: false };
    const exited = new Promise<SandboxExit>((resolve) => {
      watched.resolve = (exit) => {
        if (watched.exited) return;
        watched.exited = true;
        this.watched.delete(id);
        resolve(exit);
      };
    });
    this.watched.set(id, watched);
    return {
      id,
      image,
      exited,
      isAlive: () => !watched.exited,
      kill: async () => {
        try {
          await thawIfPaused(this.docker, id); // a frozen agent cannot hear the stop
          await this.docker.getContainer(id).stop({ t: this.cfg.restart_linux_container_timeout });
        } catch {
          // already stopped or gone
        }
        await this.remove(id, paths);
        watched.resolve({ code: null, signal: 'SIGKILL', reason: 'stopped by the gateway' });
      },
      logTail: (lines = 20) => containerLogTail(this.docker, id, lines),
      onOom: (listener) => {
        watched.oomListeners.add(listener);
        return () => watched.oomListeners.delete(listener);
      },
    };
  }

  /** One event stream for all our containers: die, oom and kill mark their sandbox dead. */
  private watchEvents(): Promise<void> {
    if (this.eventsReady) return this.eventsReady;
    this.eventsReady = (async () => {
      const stream = (await this.docker.getEvents({
        // Container deaths and image tags; events of containers we do not watch are ignored.
        filters: JSON.stringify({ type: ['container', 'image'], event: ['die', 'oom', 'kill', 'tag'] }),
      })) as unknown as Readable;
      this.events = stream;
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim()) this.onEvent(line);
        }
      });
      const restart = (): void => {
        if (this.events !== stream) return;
        this.events = undefined;
        this.eventsReady = undefined;
        this.log.warn('Docker event stream ended; reconnecting on next start');
      };
      stream.on('error', restart);
      stream.on('end', restart);
    })();
    this.eventsReady.catch(() => (this.eventsReady = undefined));
    return this.eventsReady;
  }

  private onEvent(line: string): void {
    let ev: { status?: string; Action?: string; id?: string; Actor?: { Attributes?: Record<string, string> } };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return;
    }
    const id = ev.id ?? '';
    if ((ev.Action ?? ev.status) === 'tag') {
      const name = ev.Actor?.Attributes?.name;
      if (name) for (const l of this.tagListeners) l(name.includes(':') ? name : `${name}:latest`);
      return;
    }
    const watched = this.watched.get(id);
    if (!watched) return;
    const action = ev.Action ?? ev.status ?? '';
    if (action === 'oom') {
      watched.oom = true;
      for (const l of watched.oomListeners) l();
    }
    else if (action === 'die') {
      const code = Number(ev.Actor?.Attributes?.exitCode ?? NaN);
      watched.resolve(exitOf(Number.isNaN(code) ? null : code, watched.oom, 'exited'));
    }
  }
}

function exitOf(code: number | null, oom: boolean, verb: string): SandboxExit {
  if (oom) return { code, signal: 'SIGKILL', reason: 'was killed by the OOM killer (container_mem_limit)' };
  if (code === 137) return { code, signal: 'SIGKILL', reason: `${verb}: killed (SIGKILL)` };
  return { code, signal: null, reason: `${verb} with code ${code ?? 'unknown'}` };
}

/** Host pids the gVisor backstop allows per sandbox task, and for gVisor itself (measured: 200 sandbox processes took 1,072 host pids). */
const GVISOR_HOST_PIDS_PER_TASK = 8;
const GVISOR_HOST_PIDS_BASE = 512;

/**
 * How `container_pids_limit` is enforced. Under runc the container's pids cgroup counts exactly the
 * sandbox's processes and threads. Under gVisor that cgroup also holds gVisor's own threads (the
 * Sentry's, the gofer's and, on the ptrace platform, host stubs: about 5 per sandbox process here),
 * and the Sentry exits (code 2) when it cannot make a thread: a Python daemon or a fork bomb ended
 * the whole sandbox. So under runsc the sandbox's kernel enforces the limit itself with
 * RLIMIT_NPROC (counted per uid inside that kernel only, threads included, like the cgroup: fork
 * and clone fail with EAGAIN), and the cgroup keeps a backstop with room for gVisor. Under runc
 * RLIMIT_NPROC would count every process of the sandbox uid on the host, across scopes: not used.
 */
export function pidsLimits(runtime: ContainerRuntime, limit: number): { cgroup: number; ulimits: { Name: string; Soft: number; Hard: number }[] } {
  if (runtime === 'runc') return { cgroup: limit, ulimits: [] };
  return { cgroup: limit * GVISOR_HOST_PIDS_PER_TASK + GVISOR_HOST_PIDS_BASE, ulimits: [{ Name: 'nproc', Soft: limit, Hard: limit }] };
}
