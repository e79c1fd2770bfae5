// Backend `storlets-agent`: the gateway drives unmodified OpenStack Storlets agents, one per
// scope, that someone else runs (Storlets' Docker runtime, or an operator): the scope's agent binds
// <pipes_dir>/<scope>/factory_pipe and sees <pipes_dir>/<scope> as /mnt/channels and
// <storlets_dir>/<scope> as /var/lib/storlets, as Storlets' own gateway mounts them. sandlet starts
// no sandbox here; it installs each Python storlet in Storlets' layout and runs it (StorletsAgent).
import path from 'node:path';
import type { Logger } from 'pino';
import type { SandletConfig } from '../../config.js';
import { SandletError } from '../../errors.js';
import { validateScopeName } from '../../names.js';
import type { ResolvedStorlet, StorletCatalog } from '../../cache/catalog.js';
import type { StoreAuth } from '../../cache/storlet-store.js';
import { InvocationLogs } from '../../invocation/invocation-log.js';
import type { InvocationResult } from '../../invocation/invocation.js';
import type { SandboxBackend, SandboxHandle } from '../sandbox-backend.js';
import type { SandboxRoots } from '../scope-paths.js';
import { StorletsAgent, type StorletsInvocation } from '../storlets-agent.js';
import { STORLETS_SANDBOX_PIPE_DIR, STORLETS_SANDBOX_STORLETS_DIR } from '../storlets-layout.js';

export class StorletsAgentBackend implements SandboxBackend {
  readonly name = 'storlets-agent';
  private readonly agents = new Map<string, StorletsAgent>();
  private readonly logs: InvocationLogs;
  private readonly ownLogs: boolean;

  /** `logs`: the gateway's open log fds, when it has them; else this backend keeps its own. */
  constructor(
    private readonly config: SandletConfig,
    private readonly logger: Logger,
    logs?: InvocationLogs,
  ) {
    this.ownLogs = logs === undefined;
    this.logs = logs ?? new InvocationLogs(config.storlet_log_max_bytes, config.storlet_log_keep);
  }

  sandboxRoots(): SandboxRoots {
    return { pipesDir: STORLETS_SANDBOX_PIPE_DIR, storletsDir: STORLETS_SANDBOX_STORLETS_DIR };
  }

  start(): Promise<SandboxHandle> {
    return Promise.reject(
      new SandletError('ESANDBOX', `the storlets-agent backend starts no sandbox: run an OpenStack Storlets agent per scope, its factory bound at ${path.join(this.config.pipes_dir, '<scope>', 'factory_pipe')}`),
    );
  }

  /** The scope's agent driver (kept per scope, as the gateway keeps sandboxes). */
  agent(scope: string): StorletsAgent {
    const name = validateScopeName(scope);
    let agent = this.agents.get(name);
    if (!agent) {
      const c = this.config;
      agent = new StorletsAgent({
        hostPipeDir: path.join(c.pipes_dir, name),
        hostStorletsDir: path.join(c.storlets_dir, name),
        hostLogDir: path.join(c.log_dir, name),
        logger: this.logger.child({ scope: name }),
        sbusTimeoutMs: c.sbus_timeout_ms,
        poolSize: c.storlet_daemon_thread_pool_size,
        logLevel: c.storlet_daemon_log_level.toUpperCase(),
        storletTimeoutMs: c.storlet_timeout_ms,
        outputStallMs: c.output_stall_timeout_ms,
        maxMetadataBytes: c.max_metadata_bytes,
        pipeBufferBytes: c.pipe_buffer_bytes,
        logs: this.logs,
      });
      this.agents.set(name, agent);
    }
    return agent;
  }

  /**
   * One invocation of a resolved storlet on the scope's agent: its daemon activated first (as
   * Storlets' gateway does before every invocation), its files installed from the catalog.
   */
  async invoke(scope: string, r: ResolvedStorlet, catalog: StorletCatalog, req: StorletsInvocation, auth?: StoreAuth): Promise<InvocationResult> {
    const meta = r.storlet.meta;
    if (meta.language !== 'python') {
      throw new SandletError('ESTORLET', `storlet ${meta.name} is ${meta.language}; a Storlets agent runs Python storlets only (backend storlets-agent)`);
    }
    const agent = this.agent(scope);
    await agent.activate({
      main: meta.main,
      version: r.version,
      storletFile: r.storlet.name,
      dependencies: r.dependencies.map((d) => d.name),
      ...(meta.languageVersion ? { languageVersion: meta.languageVersion } : {}),
      install: (stage) => catalog.install(r, stage, undefined, auth),
    });
    return agent.invoke(meta.main, req);
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) a.close();
    this.agents.clear();
    if (this.ownLogs) this.logs.closeAll();
  }
}
