import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';

/** The live processes whose parent is `pid`, from /proc. */
export function childrenOf(pid: number): string[] {
  return fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && parentOf(p) === pid);
}

function parentOf(pid: string): number | undefined {
  try {
    return Number(/PPid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Stops a child we started (SIGTERM) and waits for it; one already gone is left be. */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}
