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
