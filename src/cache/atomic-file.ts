// Small files written whole: temp file in the same filesystem, fsync, rename. A reader sees the
// old content or the new, never part of one, and a crash leaves at worst a temp file to sweep.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Temp names start with this, so a sweep can find what a crash left behind. */
export const TEMP_PREFIX = '.tmp-';

export function tempName(dir: string, base: string): string {
  return path.join(dir, `${TEMP_PREFIX}${base}.${randomBytes(6).toString('hex')}`);
}

export function atomicWriteFileSync(file: string, content: Buffer | string, mode = 0o644, tmpDir = path.dirname(file)): void {
  fs.mkdirSync(tmpDir, { recursive: true });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tempName(tmpDir, path.basename(file));
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Removes temp files a crashed writer left in `dir`; returns how many. */
export function sweepTemps(dir: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    fs.rmSync(path.join(dir, name), { force: true, recursive: true });
    n++;
  }
  return n;
}
