// Where an OpenStack Storlets agent expects a scope's files, as Storlets' own container gateway
// lays them out (storlets/gateway/gateways/container/runtime.py, RunTimePaths): everything of a
// storlet is named by its main (`module.Class`), the daemon's PYTHONPATH included.
import path from 'node:path';
import { PYTHON_MAIN } from '../agent/languages.js';
import { SandletError } from '../errors.js';
import { validateStorletName } from '../names.js';
import { checkSocketPath } from './scope-paths.js';

/** Storlets' sandbox side: its channel dir and its storlets dir, as its containers mount them. */
export const STORLETS_SANDBOX_PIPE_DIR = '/mnt/channels';
export const STORLETS_SANDBOX_STORLETS_DIR = '/var/lib/storlets';
const FACTORY_PIPE = 'factory_pipe';

export interface StorletsLayoutRoots {
  /** The host dir the agent sees as its channel dir: its factory_pipe, and one pipe per storlet. */
  hostPipeDir: string;
  /** The host dir the agent sees as its storlets dir: one dir per storlet, named by its main. */
  hostStorletsDir: string;
  /** Where the invocation logs go on the host: `<dir>/<main>/storlet_invoke.log`. */
  hostLogDir: string;
  /** The agent's view of hostPipeDir; default /mnt/channels. */
  sandboxPipeDir?: string;
  /** The agent's view of hostStorletsDir; default /var/lib/storlets. */
  sandboxStorletsDir?: string;
}

/** The paths of one Storlets scope, host side and agent side, per storlet main. */
export class StorletsLayout {
  readonly hostPipeDir: string;
  readonly hostStorletsDir: string;
  readonly hostLogDir: string;
  readonly sandboxPipeDir: string;
  readonly sandboxStorletsDir: string;

  constructor(roots: StorletsLayoutRoots) {
    this.hostPipeDir = path.resolve(roots.hostPipeDir);
    this.hostStorletsDir = path.resolve(roots.hostStorletsDir);
    this.hostLogDir = path.resolve(roots.hostLogDir);
    this.sandboxPipeDir = roots.sandboxPipeDir ?? STORLETS_SANDBOX_PIPE_DIR;
    this.sandboxStorletsDir = roots.sandboxStorletsDir ?? STORLETS_SANDBOX_STORLETS_DIR;
    checkSocketPath(this.hostFactoryPipe, 'factory pipe of the Storlets agent');
  }

  get hostFactoryPipe(): string {
    return path.join(this.hostPipeDir, FACTORY_PIPE);
  }

  hostStorletPipe(main: string): string {
    const p = path.join(this.hostPipeDir, checkMain(main));
    checkSocketPath(p, `pipe of storlet ${main}`);
    return p;
  }

  /** START_DAEMON's uds_path: where the daemon binds, as the agent sees it. */
  sandboxStorletPipe(main: string): string {
    return path.posix.join(this.sandboxPipeDir, checkMain(main));
  }

  hostStorletDir(main: string): string {
    return path.join(this.hostStorletsDir, checkMain(main));
  }

  /** The storlet's dir as the agent sees it: the daemon's PYTHONPATH, and `storlet_execution_path`. */
  sandboxStorletDir(main: string): string {
    return path.posix.join(this.sandboxStorletsDir, checkMain(main));
  }

  /**
   * START_DAEMON's storlet_path: the class path Storlets' gateway sends for every language (the
   * storlet file, then each dependency, `:`-joined, so it ends in `:` when there is none). Its
   * Python factory does not read it; it is sent as Storlets sends it.
   */
  sandboxClassPath(main: string, storletFile: string, dependencies: readonly string[]): string {
    const dir = this.sandboxStorletDir(main);
    return `${path.posix.join(dir, storletFile)}:${dependencies.map((d) => path.posix.join(dir, d)).join(':')}`;
  }

  hostLogPath(main: string): string {
    return path.join(this.hostLogDir, checkMain(main), 'storlet_invoke.log');
  }
}

/** A Storlets Python main (`module.Class`, no nested module): also a path component here. */
export function checkMain(main: string): string {
  if (!PYTHON_MAIN.test(main)) {
    throw new SandletError('EBADNAME', `storlet main ${JSON.stringify(main.slice(0, 80))} must be module.Class, as Storlets names a Python storlet`);
  }
  return validateStorletName(main);
}
