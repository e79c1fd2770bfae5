import type fs from 'node:fs';

/** What tells a file changed without reading it: inode, size and mtime. */
export interface FileIdentity {
  ino: number;
  size: number;
  mtimeMs: number;
}

export function identity(st: fs.Stats): FileIdentity {
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
