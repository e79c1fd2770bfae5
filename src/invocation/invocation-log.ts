import fs from 'node:fs';
import path from 'node:path';

// The storlet's logger fd: appends to <log_dir>/S/M/storlet_invoke.log. The file is rotated
// when it reaches maxBytes (keeping `keep` old files, .1 newest), and the agent caps what one
// invocation may write at the same size, so a storlet can never fill the disk.

const madeDirs = new Set<string>();

export function openInvocationLog(file: string, maxBytes: number, keep: number): number {
  const dir = path.dirname(file);
  if (!madeDirs.has(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    madeDirs.add(dir);
  }
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
