import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, HTTP_ERROR_CODES } from '../src/errors.js';
import { PACKAGE_ROOT } from '../src/package-root.js';

/** Codes in the README's tables headed `| code | meaning |`. */
function readmeCodes(): string[] {
  const lines = fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8').split('\n');
  const codes: string[] = [];
  let inTable = false;
  for (const line of lines) {
    if (/^\| *code *\| *meaning *\|/.test(line)) inTable = true;
    else if (!line.startsWith('|')) inTable = false;
    else if (inTable) {
      const m = /^\| *`(E[A-Z0-9]+)` *\|/.exec(line);
      if (m) codes.push(m[1]!);
    }
  }
  return codes;
}

/** Every `E…` code src/ answers with outside the typed SandletError: RequestError(status, 'E…') and `code: 'E…'` bodies. */
function codesAnsweredInSource(): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = fs.readFileSync(p, 'utf8');
        for (const m of text.matchAll(/RequestError\(\s*\d+,\s*'(E[A-Z0-9]+)'|\bcode: '(E[A-Z0-9]+)'/g)) found.add((m[1] ?? m[2])!);
      }
    }
  };
  walk(path.join(PACKAGE_ROOT, 'src'));
  return found;
}

describe('error codes', () => {
  it('the README lists exactly the codes the code has, each once', () => {
    const documented = readmeCodes();
    expect(new Set(documented).size, 'a code is listed twice').toBe(documented.length);
    expect([...documented].sort()).toEqual([...ERROR_CODES, ...HTTP_ERROR_CODES].sort());
  });

  it('every code the HTTP layer answers with is a listed one', () => {
    const listed = new Set<string>([...ERROR_CODES, ...HTTP_ERROR_CODES]);
    const found = codesAnsweredInSource();
    // The scan must see the known ones, or it proves nothing.
    expect(found).toContain('EAUTH');
    expect([...found].filter((c) => !listed.has(c))).toEqual([]);
  });
});
