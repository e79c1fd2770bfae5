import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { escapeLogText, makeStorletLogger } from '../../src/agent/storlet-log.js';
import { tempDir } from '../helpers/fs.js';

const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) [^\n]*$/;

describe('storlet log lines', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  it('escapes what could forge, overwrite or hide a line', () => {
    expect(escapeLogText('a\nb\rc\td\\e')).toBe('a\\nb\\rc\\td\\\\e');
    expect(escapeLogText('\x1b[2K\x1b[1A\x00\x07\x7f\x85\x9b')).toBe('\\x1b[2K\\x1b[1A\\x00\\x07\\x7f\\x85\\x9b');
    expect(escapeLogText('x\u2028y\u2029z\u202eevil\u2066')).toBe('x\\u2028y\\u2029z\\u202eevil\\u2066');
    // Escapes are unambiguous: a literal backslash-n is not a newline.
    expect(escapeLogText('\\n')).not.toBe(escapeLogText('\n'));
    expect(escapeLogText('plain text, caf\u00e9 \u2603')).toBe('plain text, caf\u00e9 \u2603');
  });

  it('writes one line per call to the log fd, however the storlet dresses its message', () => {
    const file = path.join(dir, 'invocation.log');
    const fd = fs.openSync(file, 'a');
    const log = makeStorletLogger(fd, 1 << 20);
    log.info('honest line');
    log.warn(`x\r${new Date().toISOString()} ERROR forged over the line\n${new Date().toISOString()} INFO forged line`);
    log.error('\x1b[1A\x1b[2Khidden');
    fs.closeSync(fd);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).toMatch(LINE);
    expect(lines[1]).toContain(' WARN x\\r');
    expect(lines[1]).toContain('\\n');
    expect(lines[2]).toMatch(/ ERROR \\x1b\[1A\\x1b\[2Khidden$/);
  });
});
