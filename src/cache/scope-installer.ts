// Replaces a storlet's dir in a scope as one directory swap: the daemon (stopped meanwhile) finds
// the complete old set of files or the complete new one, never a mix.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Builds the new dir with `fill(stage)`, then swaps it in for `targetDir`; returns what fill returned. */
export async function replaceDir<T>(targetDir: string, fill: (stage: string) => Promise<T>): Promise<T> {
  const parent = path.dirname(targetDir);
  await fs.mkdir(parent, { recursive: true });
  const tag = randomBytes(6).toString('hex');
  const staging = path.join(parent, `.staging-${path.basename(targetDir)}-${tag}`);
  const old = path.join(parent, `.old-${path.basename(targetDir)}-${tag}`);
  await fs.mkdir(staging, { mode: 0o755 });
  try {
    const filled = await fill(staging);
    let hadOld = true;
    try {
      await fs.rename(targetDir, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      hadOld = false;
    }
    await fs.rename(staging, targetDir);
    if (hadOld) await fs.rm(old, { recursive: true, force: true });
    return filled;
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
}
