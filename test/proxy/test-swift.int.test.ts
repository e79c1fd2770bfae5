import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

// The real Swift the front-door tests run against: it must start, serve, and leave nothing behind.
describe.skipIf(skipSwift)('test Swift', () => {
  let swift: TestSwift;
  beforeAll(async () => {
    requireSwift();
    swift = await startSwift();
  });
  afterAll(() => swift?.stop());

  it('serves tempauth and objects, and the swift CLI works against it', async () => {
    const token = await swiftToken(swift.url, SWIFT_USERS.admin);
    const put = await fetch(`${swift.url}/v1/AUTH_test/c1`, { method: 'PUT', headers: { 'X-Auth-Token': token } });
    expect([201, 202]).toContain(put.status);
    const obj = await fetch(`${swift.url}/v1/AUTH_test/c1/o`, { method: 'PUT', headers: { 'X-Auth-Token': token }, body: 'hello' });
    expect(obj.status).toBe(201);
    const out = execFileSync('swift', ['-A', `${swift.url}/auth/v1.0`, '-U', SWIFT_USERS.admin.user, '-K', SWIFT_USERS.admin.key, 'download', 'c1', 'o', '-o', '-'], { encoding: 'utf8' });
    expect(out).toBe('hello');
  });

  it('stops every process and removes its dir', async () => {
    const dir = swift.dir;
    const pids = execFileSync('pgrep', ['-f', dir], { encoding: 'utf8' }).trim().split('\n');
    expect(pids.length).toBeGreaterThanOrEqual(4);
    await swift.stop();
    expect(existsSync(dir)).toBe(false);
    let left = '';
    try { left = execFileSync('pgrep', ['-f', dir], { encoding: 'utf8' }); } catch { /* none */ }
    expect(left).toBe('');
  });
});

// What the benchmarks start: no log line of Swift's reaches this process.
describe.skipIf(skipSwift)('test Swift without its log lines', () => {
  it('serves, says its lines are not kept, and leaves nothing behind', async () => {
    requireSwift();
    const swift = await startSwift({ logs: false });
    try {
      const token = await swiftToken(swift.url, SWIFT_USERS.admin);
      const put = await fetch(`${swift.url}/v1/AUTH_test/quiet`, { method: 'PUT', headers: { 'X-Auth-Token': token } });
      expect([201, 202]).toContain(put.status);
      await expect(swift.settled()).rejects.toThrow(/logs: false/);
      expect(() => swift.count('PUT', '/v1/AUTH_test/quiet')).toThrow(/logs: false/);
    } finally {
      await swift.stop();
    }
    expect(existsSync(swift.dir)).toBe(false);
    let left = '';
    try { left = execFileSync('pgrep', ['-f', swift.dir], { encoding: 'utf8' }); } catch { /* none */ }
    expect(left).toBe('');
  });
});
