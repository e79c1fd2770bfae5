import type { ResolvedStorlet, StorletCatalog } from '../cache/catalog.js';
import type { StoreAuth } from '../cache/storlet-store.js';
import type { InvocationResult } from '../invocation/invocation.js';
import type { ScopePaths, SandboxRoots } from './scope-paths.js';
import type { StorletsInvocation } from './storlets-agent.js';

export interface SandboxExit {
  code: number | null;
  signal: string | null;
  /** e.g. "killed by the OOM killer"; empty when nothing more is known. */
  reason: string;
}

/** A running sandbox of one scope, as its backend started it. */
export interface SandboxHandle {
  /** Process id or container id. */
  readonly id: string;
  /** The image a container runs (docker backend only). */
  readonly image?: string;
  /** Settles once, when the sandbox is gone for whatever reason. */
  readonly exited: Promise<SandboxExit>;
  isAlive(): boolean;
  /** Ends the sandbox now (the graceful HALT is the Sandbox's job, done before this). */
  kill(): Promise<void>;
  /** Calls back when the engine reports an OOM kill inside the sandbox (docker backend only). */
  onOom?(listener: () => void): () => void;
  /** The last lines the agent logged, for error messages. */
  logTail(lines?: number): Promise<string>;
}

export interface SandboxStartSpec {
  paths: ScopePaths;
  logLevel: string;
  maxDatagramBytes: number;
}

/** How sandboxes are made. `process` runs the agent on the host; `docker` in a container. */
export interface SandboxBackend {
  readonly name: string;
  /** Where this backend's sandboxes see the scope's dirs. */
  sandboxRoots(hostPipeDir: string, hostStorletsDir: string): SandboxRoots;
  /** The user the storlet runs as, when it differs from the gateway's: files with declared permissions go to it. */
  readonly fileOwner?: { uid: number; gid: number };
  start(spec: SandboxStartSpec): Promise<SandboxHandle>;
  /** A sandbox of this scope left running by an earlier gateway, if it may be kept. */
  adopt?(paths: ScopePaths): Promise<SandboxHandle | undefined>;
  /** Releases what the backend itself holds (event streams); sandboxes are left alone. */
  close?(): Promise<void>;
  /**
   * Present when the backend drives agents it does not start (storlets-agent): it runs the whole
   * invocation itself, and the gateway keeps no sandbox for the scope.
   */
  invoke?(scope: string, resolved: ResolvedStorlet, catalog: StorletCatalog, req: StorletsInvocation, auth?: StoreAuth): Promise<InvocationResult>;
}
