import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { connectDocker, inspectImage, pingEngine } from '../../src/runtime/docker-engine.js';

export const ENGINE_IMAGE = process.env.SANDLET_TEST_IMAGE ?? 'sandlet/engine:latest';
/**
 * The OCI runtimes the Docker tests run sandboxes under (CI runs the suites once per runtime). The
 * wall tests run under each one listed; the other Docker suites under the first.
 */
export const TEST_RUNTIMES = (process.env.SANDLET_TEST_RUNTIME ?? 'runc').split(',').filter(Boolean) as ('runc' | 'runsc')[];
export const TEST_RUNTIME = TEST_RUNTIMES[0] ?? 'runc';
export const docker = connectDocker('/var/run/docker.sock');

/** Why Docker tests cannot run here, or undefined when they can. */
export async function dockerUnavailable(): Promise<string | undefined> {
  try {
    await pingEngine(docker, '/var/run/docker.sock', 2000);
  } catch (err) {
    return (err as Error).message;
  }
  if (!(await inspectImage(docker, ENGINE_IMAGE))) return `engine image ${ENGINE_IMAGE} is missing (sandlet image build)`;
  return undefined;
}

/**
 * Docker tests run when an engine and the engine image are there. In CI they must run: a missing
 * engine is a failure there, never a skip.
 */
export const dockerReason = await dockerUnavailable();
export const skipDocker = dockerReason !== undefined && !process.env.CI;
export function requireDocker(): void {
  if (dockerReason) throw new Error(`Docker tests are required in CI: ${dockerReason}`);
}

/** Names unique to one test run, so runs on a shared engine never meet. */
export function runId(): string {
  return randomBytes(3).toString('hex');
}

/** Runs a command in a running container, as its user, through the engine (`docker exec`); its stdout. */
export async function execIn(container: string, cmd: string[]): Promise<string> {
  const exec = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on('data', (c: Buffer) => out.push(c));
  const stderr = new PassThrough().on('data', (c: Buffer) => err.push(c));
  docker.modem.demuxStream(stream, stdout, stderr);
  await new Promise((resolve, reject) => stream.on('end', resolve).on('close', resolve).on('error', reject));
  const { ExitCode } = await exec.inspect();
  if (ExitCode !== 0) throw new Error(`${cmd.join(' ')} in ${container} exited with ${ExitCode}: ${Buffer.concat(err).toString().trim()}`);
  return Buffer.concat(out).toString();
}
