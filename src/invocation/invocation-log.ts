import fs from 'node:fs';
import path from 'node:path';
import { native } from '../sbus/native.js';

// The storlet's logger fd: appends to <log_dir>/S/M/storlet_invoke.log. The file is rotated
// when it reaches maxBytes (keeping `keep` old files, .1 newest), and the agent caps what one
// invocation may write at the same size, so a storlet can never fill the disk.

/**
 * The open log fds of a gateway, one per storlet and scope, kept across invocations: each
 * EXECUTE passes the fd (the kernel gives the agent its own copy), so opening and closing the
 * file per invocation would be wasted work on the hot path. Rotation is checked before each use.
 */
export class InvocationLogs {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {}

  fdFor(file: string): number {
    const fd = this.open.get(file);
    if (fd !== undefined) {
      let size = -1;
      try {
        size = native.fileSize(fd);
      } catch {
        // closed under us: open again below
      }
      if (size >= 0 && size < this.maxBytes) return fd;
      this.open.delete(file);
      try {
        fs.closeSync(fd);
      } catch {
        // already gone
      }
    }
    // Agents still writing to the old file keep their own copy of its fd: rotation is safe.
    const fresh = openInvocationLog(file, this.maxBytes, this.keep);
    this.open.set(file, fresh);
    return fresh;
  }

  /** Closes the fds of every log under `dir` (a scope's log dir, when the scope is released). */
  closeUnder(dir: string): void {
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    for (const [file, fd] of this.open) {
      if (!file.startsWith(prefix)) continue;
      this.open.delete(file);
      try {
        fs.closeSync(fd);
      } catch {
        // already gone
      }
    }
  }

  closeAll(): void {
    for (const fd of this.open.values()) {
      try {
        fs.closeSync(fd);
      } catch {
        // already gone
      }
    }
    this.open.clear();
  }
}

export function openInvocationLog(file: string, maxBytes: number, keep: number): number {
  // Once per open fd, not per invocation (fds are kept): no set of every dir ever made is needed.
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a', 0o640);
  if (fs.fstatSync(fd).size < maxBytes) return fd;
  fs.closeSync(fd);
  rotate(file, keep);
  return fs.openSync(file, 'a', 0o640);
}

function rotate(file: string, keep: number): void {
  if (keep <= 0) {
    fs.truncateSync(file, 0);
    return;
  }
  fs.rmSync(`${file}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    try {
      fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    } catch {
      // a gap in the series is fine
    }
  }
  fs.renameSync(file, `${file}.1`);
}
