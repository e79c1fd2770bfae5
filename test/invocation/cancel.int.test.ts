// Callers that leave, fail or stop reading: the task is cancelled at once and its pool slot freed
// (process backend: a pool of ONE task thread per daemon, so a slot still held would make the
// next call of that storlet time out).
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { deploy, testGateway } from '../helpers/gateway.js';
import { collect } from '../helpers/streams.js';

const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();

/** Writes output until cancelled; then throws, so the invocation log records the cancellation. */
const ENDLESS = `export async function invoke({ inputs, output, signal }) {
  inputs[0].stream.resume();
  output.setMetadata({ endless: 'yes' });
  const chunk = Buffer.alloc(64 * 1024, 120);
  for (;;) {
    signal.throwIfAborted();
    if (!output.stream.write(chunk)) {
      await new Promise((r) => { output.stream.once('drain', r); signal.addEventListener('abort', r, { once: true }); });
    }
  }
}
`;

/** Resolves with the error the stream emits, without ever reading it. */
const errorOf = (body: Readable): Promise<Error> => new Promise((resolve) => body.once('error', resolve));

describe('cancellation by the caller (process backend, one task thread per daemon)', () => {
  let gw: Gateway;
  let root: string;
  let close: () => Promise<void>;
  const logOf = (scope: string, storlet: string): string => {
    try {
      return fs.readFileSync(path.join(root, 'logs', scope, storlet, 'storlet_invoke.log'), 'utf8');
    } catch {
      return '';
    }
  };
  /** Waits (generously) until the storlet's invocation log says a task was cancelled `n` times. */
  const cancelledTimes = async (scope: string, storlet: string, n: number): Promise<void> => {
    await expect.poll(() => logOf(scope, storlet).split('storlet task was cancelled').length - 1, { timeout: 20_000 }).toBeGreaterThanOrEqual(n);
  };

  beforeAll(() => {
    ({ gateway: gw, root, close } = testGateway({ storlet_daemon_thread_pool_size: 1, output_stall_timeout_ms: 1500 }));
    const file = path.join(root, 'endless.mjs');
    fs.writeFileSync(file, ENDLESS);
    deploy(gw, file);
  });
  afterAll(async () => {
    await close();
  });

  it('an aborted signal before metadata rejects with ECANCELLED and frees the only task thread', async () => {
    await text((await gw.invoke({ scope: 'c1', storlet: 'misbehave.mjs', input: Buffer.from('warm') })).body);
    const ac = new AbortController();
    // Spins before its metadata; its own timeout is far beyond this test's.
    const spinning = gw.invoke({ scope: 'c1', storlet: 'misbehave.mjs', params: { mode: 'busy-loop' }, input: Buffer.from('x'), timeoutMs: 600_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    await expect(spinning).rejects.toMatchObject({ code: 'ECANCELLED', message: 'invocation of storlet misbehave.mjs was cancelled: the caller went away' });
    // The thread was taken back: the next call gets it (a held thread would time this out).
    const r = await gw.invoke({ scope: 'c1', storlet: 'misbehave.mjs', input: Buffer.from('next'), timeoutMs: 15_000 });
    expect(await text(r.body)).toBe('next');
  });

  it('a signal already aborted starts nothing', async () => {
    await expect(gw.invoke({ scope: 'never-started', storlet: 'identity.mjs', input: Buffer.from('x'), signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ECANCELLED' });
    expect(gw.findSandbox('never-started')).toBeUndefined();
  });

  it('an abort mid-body errors the body with ECANCELLED and cancels the task', async () => {
    const ac = new AbortController();
    const r = await gw.invoke({ scope: 'c2', storlet: 'endless.mjs', input: Buffer.from(''), signal: ac.signal });
    expect(r.metadata).toEqual({ endless: 'yes' });
    const failed = errorOf(r.body);
    r.body.resume();
    ac.abort();
    expect(await failed).toMatchObject({ code: 'ECANCELLED' });
    await cancelledTimes('c2', 'endless.mjs', 1);
    const next = await gw.invoke({ scope: 'c2', storlet: 'identity.mjs', input: Buffer.from('served'), timeoutMs: 15_000 });
    expect(await text(next.body)).toBe('served');
  });

  it('destroying the body before its end cancels the task at once', async () => {
    for (let i = 1; i <= 3; i++) {
      const r = await gw.invoke({ scope: 'c3', storlet: 'endless.mjs', input: Buffer.from(''), timeoutMs: 15_000 });
      r.body.destroy();
      // With one thread, the next endless call can only start once this one was cancelled.
      await cancelledTimes('c3', 'endless.mjs', i);
    }
  });

  it('a caller whose input fails gets its input\'s error (EINPUT with the cause), never ECANCELLED, and the daemon keeps serving', async () => {
    for (let i = 0; i < 8; i++) {
      const cause = Object.assign(new Error(`upload ${i} reset by peer`), { code: 'ECONNRESET' });
      const input = new Readable({ read() {} });
      input.push(Buffer.alloc(512 * 1024, 1));
      setTimeout(() => input.destroy(cause), 20);
      const err = await gw
        .invoke({ scope: 'c4', storlet: 'identity.mjs', input, timeoutMs: 15_000 })
        .then((r) => collect(r.body))
        .then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'EINPUT', message: `input of storlet identity.mjs failed: upload ${i} reset by peer` });
      expect((err as Error).cause).toBe(cause);
    }
    // Not left wedged: served again (at once once the agent ends cancelled tasks promptly; else
    // after the gateway found a cancelled task that did not end and restarted its daemon).
    const serve = async (): Promise<string> => {
      try {
        return await text((await gw.invoke({ scope: 'c4', storlet: 'identity.mjs', input: Buffer.from('still serving'), timeoutMs: 3000 })).body);
      } catch (err) {
        return (err as Error).message;
      }
    };
    await expect.poll(serve, { timeout: 30_000, interval: 100 }).toBe('still serving');
  });

  it('an input that fails before EXECUTE is answered is reported as its own error, with no unhandled error', async () => {
    const input = new Readable({ read() {} });
    input.destroy(new Error('gone before it began'));
    await expect(gw.invoke({ scope: 'c4', storlet: 'identity.mjs', input, timeoutMs: 15_000 })).rejects.toMatchObject({
      code: 'EINPUT',
      message: 'input of storlet identity.mjs failed: gone before it began',
    });
  });

  it('readers that never read are cut off after output_stall_timeout_ms: tasks cancelled, threads freed, others served', async () => {
    // As many never-reading callers as the pool has threads (one), several times over.
    for (let i = 1; i <= 3; i++) {
      const r = await gw.invoke({ scope: 'c5', storlet: 'endless.mjs', input: Buffer.from(''), timeoutMs: 15_000 });
      const err = await errorOf(r.body); // never read: only the error is listened to
      expect(err).toMatchObject({ code: 'ETIMEDOUT' });
      expect(err.message).toBe('the caller read no output of storlet endless.mjs for 1.5 s (output_stall_timeout_ms); task cancelled');
      await cancelledTimes('c5', 'endless.mjs', i);
    }
    const other = await gw.invoke({ scope: 'c5', storlet: 'identity.mjs', input: Buffer.from('others are served'), timeoutMs: 15_000 });
    expect(await text(other.body)).toBe('others are served');
    // A reader that does read is never cut off, however long the output.
    const fine = await gw.invoke({ scope: 'c5', storlet: 'identity.mjs', input: Readable.from([Buffer.alloc(8 << 20, 7)]), timeoutMs: 15_000 });
    expect((await collect(fine.body)).length).toBe(8 << 20);
  });
});
