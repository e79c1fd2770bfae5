// Sandboxes through real agent processes (process backend): a daemon that stops answering is
// restarted, a missing storlet starts nothing, idle scopes release what they held, and a scope
// whose pipe dir another gateway's live sandbox holds is refused untouched.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { childPids, isAlive, openFds } from '../helpers/fs.js';
import { testGateway } from '../helpers/gateway.js';
import { collect } from '../helpers/streams.js';

const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});
function gateway(config: Parameters<typeof testGateway>[0] = {}): { gw: Gateway; root: string } {
  const t = testGateway(config);
  closers.push(t.close);
  return { gw: t.gateway, root: t.root };
}
const run = async (gw: Gateway, scope: string, input = 'x', storlet = 'identity.mjs'): Promise<string> =>
  text((await gw.invoke({ scope, storlet, input: Buffer.from(input), timeoutMs: 5000 })).body);

describe('a daemon that stops answering', () => {
  it('is restarted, not left wedged: EXECUTE unanswered (its factory is frozen) → the next calls are served', async () => {
    // Also what the new sandbox gets to answer in: long enough for a loaded machine.
    const { gw } = gateway({ sbus_timeout_ms: 3000 });
    expect(await run(gw, 'w1', 'before')).toBe('before');
    const pid = Number(gw.sandbox('w1').describe().id);
    // A real process that stops answering: frozen, its socket still bound.
    process.kill(pid, 'SIGSTOP');
    try {
      await expect(run(gw, 'w1')).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/^no reply to SBUS_CMD_EXECUTE within 3 s/) });
      // Served again, by a new sandbox; the frozen one is gone.
      expect(await run(gw, 'w1', 'after')).toBe('after');
      expect(Number(gw.sandbox('w1').describe().id)).not.toBe(pid);
      await expect.poll(() => isAlive(pid), { timeout: 10_000 }).toBe(false);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
  });
});

describe('a daemon whose tasks keep timing out', () => {
  it('is stopped after 3 timeouts in a row and started afresh at the next call', async () => {
    const { gw } = gateway();
    expect(await run(gw, 't1', 'warm', 'misbehave.mjs')).toBe('warm');
    const spin = () => gw.invoke({ scope: 't1', storlet: 'misbehave.mjs', params: { mode: 'busy-loop' }, input: Buffer.from(''), timeoutMs: 300 });
    for (let i = 0; i < 2; i++) await expect(spin()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(gw.sandbox('t1').describe().daemons).toContain('misbehave.mjs');
    await expect(spin()).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(gw.sandbox('t1').describe().daemons).not.toContain('misbehave.mjs');
    expect(await run(gw, 't1', 'served', 'misbehave.mjs')).toBe('served');
    expect(gw.sandbox('t1').describe().daemons).toContain('misbehave.mjs');
    expect(gw.sandbox('t1').restarts).toHaveLength(1); // the daemon restarted, not the sandbox
  });
});

describe('stopAll()', () => {
  it('stops every sandbox of the gateway and reports each scope', async () => {
    const { gw } = gateway();
    for (const scope of ['b', 'a']) expect(await run(gw, scope)).toBe('x');
    const pids = ['a', 'b'].map((scope) => Number(gw.sandbox(scope).describe().id));
    expect(await gw.stopAll()).toEqual([{ scope: 'a' }, { scope: 'b' }]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(gw.scopes()).toEqual([]);
    expect(await gw.stopAll()).toEqual([]);
  });
});

describe('a storlet that does not exist', () => {
  it('costs no sandbox and evicts nobody, however many new scope names ask for it', async () => {
    const { gw, root } = gateway({ max_containers_per_node: 1 });
    expect(await run(gw, 'tenant-a', 'mine')).toBe('mine');
    const running = gw.sandbox('tenant-a').describe().id;
    const children = childPids(process.pid).length;
    for (let i = 0; i < 30; i++) {
      await expect(run(gw, `probe${i}`, 'x', 'no-such-storlet.mjs')).rejects.toMatchObject({ code: 'ENOSTORLET' });
    }
    expect(childPids(process.pid).length).toBe(children);
    expect(gw.scopes().map((s) => s.scope)).toEqual(['tenant-a']);
    expect(gw.sandbox('tenant-a').describe()).toMatchObject({ id: running, state: 'running' });
    expect(fs.readdirSync(path.join(root, 'pipes'))).toEqual(['tenant-a']);
  });
});

describe('per-scope state', () => {
  // Pipes and files only: sockets come and go with the engine and the test runner.
  const fds = (): string[] => openFds().filter((e) => !e.includes('socket:'));

  it('is released when scopes stop idle: scope records and invocation-log fds return to the baseline', async () => {
    const { gw } = gateway({ idle_timeout: 1, max_containers_per_node: 4 });
    // Warm what a gateway opens once (cache, store, its first agent), then let it idle away.
    expect(await run(gw, 'warm')).toBe('x');
    await expect.poll(() => gw.scopes().length, { timeout: 20_000 }).toBe(0);
    const baseline = fds();
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 4 }, async (_, i) => {
          const scope = `many${round}-${i}`;
          expect(await run(gw, scope, scope)).toBe(scope);
          expect(await run(gw, scope, scope, 'uppercase.mjs')).toBe(scope.toUpperCase());
        }),
      );
    }
    expect(fds().filter((e) => e.includes('storlet_invoke.log')).length).toBeGreaterThan(0);
    await expect.poll(() => gw.scopes().length, { timeout: 30_000 }).toBe(0);
    expect(fds().filter((e) => e.includes('storlet_invoke.log'))).toEqual([]);
    expect(fds().length).toBe(baseline.length);
    // A released scope starts afresh when used again.
    expect(await run(gw, 'many0-0', 'again')).toBe('again');
  });
});

describe('a scope another gateway runs on the same root', () => {
  it('is refused with a clear error, touching nothing; the owner keeps serving', async () => {
    const { gw: owner, root } = gateway();
    expect(await run(owner, 'shared', 'owner')).toBe('owner');
    const pid = Number(owner.sandbox('shared').describe().id);
    const pipeDir = path.join(root, 'pipes', 'shared');
    const before = fs.readdirSync(pipeDir).sort();
    // A second gateway on the same root (e.g. the other backend): same dirs, its own config.
    const other = gateway({ host_root: root });
    await expect(run(other.gw, 'shared')).rejects.toMatchObject({
      code: 'ESANDBOX',
      message: expect.stringMatching(/^scope shared has a sandbox this gateway did not start \(its channel .*sandlet\.sock is live\)/),
    });
    expect(fs.readdirSync(pipeDir).sort()).toEqual(before);
    expect(isAlive(pid)).toBe(true);
    expect(await run(owner, 'shared', 'still mine')).toBe('still mine');
    expect(Number(owner.sandbox('shared').describe().id)).toBe(pid);
  });
});
