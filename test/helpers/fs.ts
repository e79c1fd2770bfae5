import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A temp dir removed by the returned cleanup. Short paths: unix socket paths hold 107 bytes. */
export function tempDir(prefix = 'sl-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Open pipes, sockets and files of a process, from /proc. Event-loop internals (epoll, eventfd:
 * anon inodes, one set per worker thread) are left out: they follow the pool size, not leaks.
 */
export function openFds(pid: number | 'self' = 'self'): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked (e.g. readdir's own fd)
    }
    if (!target.startsWith('anon_inode:')) out.push(`${fd} -> ${target}`);
  }
  return out;
}

/**
 * Fds a process got from across the sandbox wall: like openFds, minus pipes with both ends in the
 * process and /dev/null, which a worker thread opens for itself. An invocation's pipe always has
 * its other end in the gateway, so a leaked one is still counted.
 */
export function wallFds(pid: number): string[] {
  const all = openFds(pid);
  const seen = new Map<string, number>();
  for (const entry of all) {
    const target = entry.split(' -> ')[1]!;
    seen.set(target, (seen.get(target) ?? 0) + 1);
  }
  return all.filter((entry) => {
    const target = entry.split(' -> ')[1]!;
    return target !== '/dev/null' && !(target.startsWith('pipe:') && seen.get(target)! > 1);
  });
}

export function childPids(pid: number): number[] {
  try {
    const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? text.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

/** A zombie counts as dead: here PID 1 may not reap the orphans it inherits. */
export function isAlive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
