// Puts a storlet and its dependencies into a scope's storlet dir, as one directory swap: the
// daemon (stopped meanwhile) finds the complete old set or the complete new one.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { LocalStore } from './local-store.js';
import type { DependencyRegistration, StorletRegistration } from './registration.js';

export async function installStorlet(
  store: LocalStore,
  targetDir: string,
  reg: StorletRegistration,
  deps: DependencyRegistration[],
): Promise<void> {
  const parent = path.dirname(targetDir);
  await fs.mkdir(parent, { recursive: true });
  const tag = randomBytes(6).toString('hex');
  const staging = path.join(parent, `.staging-${path.basename(targetDir)}-${tag}`);
  const old = path.join(parent, `.old-${path.basename(targetDir)}-${tag}`);
  await fs.mkdir(staging, { mode: 0o755 });
  try {
    for (const item of [reg, ...deps]) {
      const dest = path.join(staging, item.name);
      await fs.copyFile(store.objectPath(item.sha256), dest, fs.constants.COPYFILE_FICLONE);
      await fs.chmod(dest, 0o444);
    }
    let hadOld = true;
    try {
      await fs.rename(targetDir, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      hadOld = false;
    }
    await fs.rename(staging, targetDir);
    if (hadOld) await fs.rm(old, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }
}
