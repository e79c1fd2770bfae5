import type { Logger } from 'pino';
import type { SandletConfig } from '../config.js';
import { oneLine } from '../errors.js';
import { DockerBackend } from './backends/docker.js';
import { ProcessBackend } from './backends/process.js';
import { StorletsAgentBackend } from './backends/storlets-agent.js';
import type { InvocationLogs } from '../invocation/invocation-log.js';
import { connectDocker, inspectImage, pingEngine } from './docker-engine.js';
import type { SandboxBackend } from './sandbox-backend.js';

export interface SelectedBackend {
  backend: SandboxBackend;
  /** Set when `auto` fell back to the process backend: one line saying why. */
  notice?: string;
  /** The same fallback's cause alone (what a caller that refuses to fall back reports). */
  fallbackReason?: string;
}

function fallback(logger: Logger, reason: string): SelectedBackend {
  return { backend: new ProcessBackend(logger), notice: `${reason}; using the process backend (no isolation)`, fallbackReason: reason };
}

/**
 * `docker` needs an engine; `process` and `storlets-agent` need nothing; `auto` takes Docker when an engine answers
 * and the default image exists, else the process backend with a notice.
 */
export async function selectBackend(config: SandletConfig, logger: Logger, logs?: InvocationLogs): Promise<SelectedBackend> {
  if (config.backend === 'process') return { backend: new ProcessBackend(logger) };
  if (config.backend === 'storlets-agent') return { backend: new StorletsAgentBackend(config, logger, logs) };
  const docker = connectDocker(config.docker_socket);
  if (config.backend === 'docker') {
    await pingEngine(docker, config.docker_socket);
    return { backend: new DockerBackend(docker, config, logger) };
  }
  try {
    await pingEngine(docker, config.docker_socket, 1500);
  } catch (err) {
    return fallback(logger, oneLine(err));
  }
  if (!(await inspectImage(docker, config.default_container_image_name).catch(() => undefined))) {
    return fallback(logger, `default image ${config.default_container_image_name} is missing (sandlet image build)`);
  }
  return { backend: new DockerBackend(docker, config, logger) };
}
