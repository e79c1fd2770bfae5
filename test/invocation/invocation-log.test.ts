import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvocationLogs, openInvocationLog } from '../../src/invocation/invocation-log.js';
import { openFds, tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe('invocation log', () => {
  it('appends, then rotates at the cap keeping N old files', () => {
    const log = path.join(dir, 's', 'm', 'storlet_invoke.log');
    for (let i = 0; i < 5; i++) {
      const fd = openInvocationLog(log, 1024, 2);
      fs.writeSync(fd, `${i}`.repeat(1024));
      fs.closeSync(fd);
    }
    expect(fs.readFileSync(log, 'utf8')).toBe('4'.repeat(1024));
    expect(fs.readFileSync(`${log}.1`, 'utf8')).toBe('3'.repeat(1024));
    expect(fs.readFileSync(`${log}.2`, 'utf8')).toBe('2'.repeat(1024));
    expect(fs.existsSync(`${log}.3`)).toBe(false);
  });

  it('truncates in place when no old files are kept', () => {
    const log = path.join(dir, 'l.log');
    for (let i = 0; i < 2; i++) {
      const fd = openInvocationLog(log, 10, 0);
      fs.writeSync(fd, 'x'.repeat(20));
      fs.closeSync(fd);
    }
    expect(fs.statSync(log).size).toBe(20);
    expect(fs.readdirSync(dir)).toEqual(['l.log']);
  });

  it('keeps one fd per log, and closes those of a released scope only', () => {
    const logs = new InvocationLogs(1 << 20, 1);
    const held = () => openFds().filter((e) => e.includes(dir)).length;
    const a1 = logs.fdFor(path.join(dir, 'a', 'one', 'storlet_invoke.log'));
    expect(logs.fdFor(path.join(dir, 'a', 'one', 'storlet_invoke.log'))).toBe(a1);
    logs.fdFor(path.join(dir, 'a', 'two', 'storlet_invoke.log'));
    logs.fdFor(path.join(dir, 'ab', 'one', 'storlet_invoke.log'));
    expect(held()).toBe(3);
    logs.closeUnder(path.join(dir, 'a'));
    expect(held()).toBe(1); // 'ab' is another scope, though its name starts the same
    logs.closeAll();
    expect(held()).toBe(0);
  });
});
