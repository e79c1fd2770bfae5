import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The same code runs from dist/ (installed) and from src/ (under vitest); both sit one level
// below the package root, where build/ and dist/ live.
function find(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the sandlet package root');
}

export const PACKAGE_ROOT = find();
/** The compiled agent entry point, run by the process backend and copied into engine images. */
export const AGENT_MAIN = path.join(PACKAGE_ROOT, 'dist', 'agent', 'main.js');
export const SAMPLES_DIR = path.join(PACKAGE_ROOT, 'samples');
/** The Python storlet host's source (shipped in the package; staged beside the agent in engine images). */
export const PYTHON_HOST_SOURCE = path.join(PACKAGE_ROOT, 'src', 'agent', 'python', 'storlet_host.py');
