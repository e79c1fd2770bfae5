// `npm ci` refuses a lockfile that lacks any platform's optional package (npm records only the
// installing platform's when the lockfile is written from a partial tree): every optional
// dependency of every locked package must itself be locked.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/package-root.js';

type Locked = { version?: string; optionalDependencies?: Record<string, string> };

describe('package-lock.json', () => {
  it('locks every optional dependency, for every platform', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Locked> };
    const packages = lock.packages;
    const missing: string[] = [];
    let optional = 0;
    for (const [where, pkg] of Object.entries(packages)) {
      for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
        optional++;
        // Resolved as node does: beside the dependent first, then up to the top.
        const parts = where ? where.split('/node_modules/') : [];
        let found = false;
        for (let i = parts.length; i >= 0 && !found; i--) {
          const base = parts.slice(0, i).join('/node_modules/');
          found = `${base ? `${base}/` : ''}node_modules/${dep}` in packages;
        }
        if (!found) missing.push(`${where || '(root)'} -> ${dep}`);
      }
    }
    expect(optional).toBeGreaterThan(10); // rollup's and esbuild's platform packages at least
    expect(missing).toEqual([]);
  });
});
