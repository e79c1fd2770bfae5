import path from 'node:path';
import { SandletError } from '../errors.js';
import { validateScopeName, validateStorletName } from '../names.js';
import { CHANNEL_SOCKET_NAME } from '../sbus/hello.js';

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface HostRoots {
  pipesDir: string;
  storletsDir: string;
  logDir: string;
}

/** Where the sandbox sees a scope's pipe dir and storlet dir. */
export interface SandboxRoots {
  pipesDir: string;
  storletsDir: string;
}

/**
 * The host ↔ sandbox path mapping of one scope (ARCHITECTURE § Paths). Names are validated
 * before any path is built, so a hostile name never leaves its root.
 */
export class ScopePaths {
  readonly scope: string;
  readonly hostPipeDir: string;
  readonly hostStorletsDir: string;
  readonly hostLogDir: string;
  readonly sandbox: SandboxRoots;

  constructor(scope: string, host: HostRoots, sandbox?: SandboxRoots) {
    this.scope = validateScopeName(scope);
    this.hostPipeDir = path.join(host.pipesDir, this.scope);
    this.hostStorletsDir = path.join(host.storletsDir, this.scope);
    this.hostLogDir = path.join(host.logDir, this.scope);
    // Identity mapping unless the backend mounts the dirs elsewhere (docker: /mnt/channels, /home/storlet).
    this.sandbox = sandbox ?? { pipesDir: this.hostPipeDir, storletsDir: this.hostStorletsDir };
    checkSocketPath(this.hostFactoryPipe, `factory pipe of scope ${this.scope}`);
  }

  /** The gateway's listening socket that the scope's factory dials (see FactoryChannel). */
  get hostChannelSocket(): string {
    return path.join(this.hostPipeDir, CHANNEL_SOCKET_NAME);
  }

  get sandboxChannelSocket(): string {
    return path.join(this.sandbox.pipesDir, CHANNEL_SOCKET_NAME);
  }

  get hostFactoryPipe(): string {
    return path.join(this.hostPipeDir, 'factory_pipe');
  }

  get sandboxFactoryPipe(): string {
    return path.join(this.sandbox.pipesDir, 'factory_pipe');
  }

  hostStorletPipe(storlet: string): string {
    const p = path.join(this.hostPipeDir, validateStorletName(storlet));
    checkSocketPath(p, `pipe of storlet ${storlet}`);
    return p;
  }

  sandboxStorletPipe(storlet: string): string {
    return path.join(this.sandbox.pipesDir, validateStorletName(storlet));
  }

  hostStorletDir(storlet: string): string {
    return path.join(this.hostStorletsDir, validateStorletName(storlet));
  }

  sandboxStorletDir(storlet: string): string {
    return path.join(this.sandbox.storletsDir, validateStorletName(storlet));
  }

  hostLogPath(storlet: string): string {
    return path.join(this.hostLogDir, validateStorletName(storlet), 'storlet_invoke.log');
  }

  /** The agent's own log (factory and daemons), kept by the process backend. */
  get hostAgentLog(): string {
    return path.join(this.hostLogDir, 'agent.log');
  }
}

export function checkSocketPath(p: string, what: string): void {
  const bytes = Buffer.byteLength(p);
  if (bytes > MAX_SOCKET_PATH) {
    throw new SandletError(
      'EBADCONFIG',
      `the ${what} would be ${p} (${bytes} bytes), but unix socket paths hold at most ${MAX_SOCKET_PATH}: choose a shorter pipes_dir`,
    );
  }
}
