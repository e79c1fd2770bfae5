// Every dockerode call sandlet makes goes through here once, with one clear error per failure.
import Docker from 'dockerode';
import { SandletError, oneLine } from '../errors.js';

export type DockerClient = Docker;

export function connectDocker(socketPath: string): DockerClient {
  return new Docker({ socketPath });
}

/** Resolves when the engine answers; rejects with a one-line reason otherwise. */
export async function pingEngine(docker: DockerClient, socketPath: string, timeoutMs = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    throw new SandletError('ESANDBOX', `no Docker engine answers at ${socketPath}: ${oneLine(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

export interface ImageInfo {
  id: string;
  labels: Record<string, string>;
}

export async function inspectImage(docker: DockerClient, ref: string): Promise<ImageInfo | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return { id: info.Id, labels: (info.Config?.Labels as Record<string, string> | null) ?? {} };
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw new SandletError('ESANDBOX', `cannot inspect image ${ref}: ${oneLine(err)}`);
  }
}

/**
 * Unpauses a paused container (a missing one is fine). Force-removing a paused container under
 * runsc leaves its containerd shim running, a process nobody owns (seen with runsc 20221219 and
 * Docker 20.10): a frozen sandbox is thawed before it is stopped or removed.
 */
export async function thawIfPaused(docker: DockerClient, idOrName: string): Promise<void> {
  const container = docker.getContainer(idOrName);
  const info = await container.inspect().catch(() => undefined);
  if (info?.State?.Paused) await container.unpause().catch(() => {});
}

/** Removes a container whatever its state (a paused one thawed first); a missing one is fine. */
export async function removeContainer(docker: DockerClient, idOrName: string): Promise<void> {
  try {
    await thawIfPaused(docker, idOrName);
    await docker.getContainer(idOrName).remove({ force: true, v: true });
  } catch (err) {
    const code = (err as { statusCode?: number }).statusCode;
    if (code !== 404 && code !== 409) throw new SandletError('ESANDBOX', `cannot remove container ${idOrName}: ${oneLine(err)}`);
  }
}

/** The last lines a container wrote (stdout and stderr), as text. */
export async function containerLogTail(docker: DockerClient, id: string, lines: number): Promise<string> {
  try {
    const raw = (await docker.getContainer(id).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
    return demux(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw))).trimEnd();
  } catch {
    return '';
  }
}

// Docker multiplexes stdout/stderr in 8-byte-framed chunks when there is no TTY.
function demux(buf: Buffer): string {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length && (buf[at] === 1 || buf[at] === 2) && buf[at + 1] === 0) {
    const len = buf.readUInt32BE(at + 4);
    out.push(buf.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
  return at === 0 ? buf.toString('utf8') : Buffer.concat(out).toString('utf8');
}
