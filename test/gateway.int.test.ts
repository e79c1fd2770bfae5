import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../src/gateway.js';
import { SAMPLES_DIR } from '../src/package-root.js';
import { collect } from './helpers/streams.js';
import { SBusClient } from '../src/sbus/client.js';
import { childPids, isAlive, openFds, wallFds } from './helpers/fs.js';
import { deploy, FIXTURES, testGateway } from './helpers/gateway.js';
import { eventually, settled } from './helpers/agent.js';
import { ENGINE_IMAGE, requireDocker, runId, skipDocker, TEST_RUNTIME } from './helpers/docker.js';

const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();

// Every invocation test runs on both backends; Docker ones are required in CI (helpers/docker.ts).
for (const backend of ['process', 'docker'] as const) {
  describe.skipIf(backend === 'docker' && skipDocker)(`invocation on the ${backend} backend`, () => {
    let gw: Gateway;
    let root: string;
    let close: () => Promise<void>;
    beforeAll(() => {
      if (backend === 'docker') requireDocker();
      ({ gateway: gw, root, close } = testGateway({
        backend,
        // Long enough for a fresh task thread on a loaded machine; tests of the timeout set their own.
        storlet_timeout_ms: 10_000,
        storlet_log_max_bytes: 64 * 1024,
        ...(backend === 'docker' ? { container_prefix: `sltest-${runId()}-`, default_container_image_name: ENGINE_IMAGE, container_runtime: TEST_RUNTIME } : {}),
      }));
    });
    afterAll(async () => {
      await close();
    });

    describe('samples end to end', () => {
      it('identity returns the object and its metadata, from a Buffer', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input: Buffer.from('plain bytes'), inputMetadata: { 'Content-Type': 'text/plain' } });
        expect(r.metadata).toEqual({ 'Content-Type': 'text/plain' });
        expect(await text(r.body)).toBe('plain bytes');
      });

      it('identity honours a range, from a Readable', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input: Readable.from([Buffer.from('0123'), Buffer.from('456789')]), range: { start: 2, end: 6 } });
        expect(await text(r.body)).toBe('23456');
      });

      it('passes an open file as its fd (zero copy)', async () => {
        const fh = await fs.promises.open(path.join(SAMPLES_DIR, 'sample.txt'));
        try {
          const r = await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input: fh });
          expect(await text(r.body)).toBe(fs.readFileSync(path.join(SAMPLES_DIR, 'sample.txt'), 'utf8'));
        } finally {
          await fh.close();
        }
      });

      it('uppercase transforms the text and logs to the invocation log', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'uppercase.mjs', input: Buffer.from('héllo wörld') });
        expect(r.metadata['Storlet-Transform']).toBe('uppercase');
        expect(await text(r.body)).toBe('HÉLLO WÖRLD');
        expect(fs.readFileSync(path.join(root, 'logs', 's1', 'uppercase.mjs', 'storlet_invoke.log'), 'utf8')).toMatch(/INFO uppercasing/);
      });

      it('metadata echo returns metadata and params', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'metadata-echo.mjs', input: Buffer.from('x'), inputMetadata: { color: 'blue' }, params: { size: 'L' } });
        expect(r.metadata).toEqual({ color: 'blue', 'Param-size': 'L' });
        expect(JSON.parse(await text(r.body))).toEqual({ metadata: { color: 'blue' }, params: { size: 'L' }, range: null });
      });

      it('concat joins the object and the extra inputs in order', async () => {
        const r = await gw.invoke({
          scope: 's1', storlet: 'concat.mjs', input: Buffer.from('one'), params: { separator: '|' },
          extraInputs: [Readable.from([Buffer.from('two')]), { input: Buffer.from('three'), metadata: { n: '3' } }],
        });
        expect(r.metadata['Concat-Inputs']).toBe('3');
        expect(await text(r.body)).toBe('one|two|three');
      });

      it('runs a named export given as FILE:Export', async () => {
        deploy(gw, path.join(FIXTURES, 'rot13.mjs'), { main: 'rot13.mjs:Rot13' });
        const r = await gw.invoke({ scope: 's1', storlet: 'rot13.mjs', input: Buffer.from('Hello') });
        expect(r.metadata).toEqual({ cipher: 'rot13' });
        expect(await text(r.body)).toBe('Uryyb');
      });

      it('puts dependencies beside the storlet', async () => {
        await gw.deploy(Buffer.from('hello from a dependency\n'), { kind: 'dependency', name: 'greeting.txt', version: '1' });
        deploy(gw, path.join(FIXTURES, 'uses-dep.mjs'), { dependencies: ['greeting.txt'] });
        const r = await gw.invoke({ scope: 's1', storlet: 'uses-dep.mjs', input: Buffer.from('') });
        expect(await text(r.body)).toBe('hello from a dependency');
      });

      it('runs the new code after a storlet is deployed again', async () => {
        const file = path.join(root, 'versioned.mjs');
        fs.writeFileSync(file, "export async function invoke({ inputs, output }) { inputs[0].stream.resume(); output.setMetadata({}); output.stream.end('v1'); }");
        deploy(gw, file);
        expect(await text((await gw.invoke({ scope: 's1', storlet: 'versioned.mjs', input: Buffer.from('') })).body)).toBe('v1');
        fs.writeFileSync(file, "export async function invoke({ inputs, output }) { inputs[0].stream.resume(); output.setMetadata({}); output.stream.end('v2'); }");
        deploy(gw, file);
        expect(await text((await gw.invoke({ scope: 's1', storlet: 'versioned.mjs', input: Buffer.from('') })).body)).toBe('v2');
      });
    });

    describe('streaming', () => {
      it('streams output larger than the pipe buffer while input is still being written', async () => {
        const total = 32 * 1024 * 1024;
        let written = 0;
        let inputDoneAtFirstOutput: boolean | undefined;
        const input = new Readable({
          read() {
            if (written >= total) return this.push(null);
            written += 256 * 1024;
            this.push(Buffer.alloc(256 * 1024, written % 251));
          },
        });
        const r = await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input });
        let received = 0;
        for await (const chunk of r.body) {
          if (inputDoneAtFirstOutput === undefined) inputDoneAtFirstOutput = written >= total;
          received += (chunk as Buffer).length;
        }
        expect(received).toBe(total);
        expect(inputDoneAtFirstOutput).toBe(false);
      });

      it('errors the output when the input stream fails, never a short object', async () => {
        const input = new Readable({ read() {} });
        const r = await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input });
        input.push(Buffer.alloc(1000));
        setTimeout(() => input.destroy(new Error('upstream connection reset')), 50);
        await expect(collect(r.body)).rejects.toThrow(/input of storlet identity.mjs failed: upstream connection reset/);
      });

      it('a storlet may ignore its input', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'ignore-input' }, input: Readable.from([Buffer.alloc(8 * 1024 * 1024)]) });
        expect(await text(r.body)).toBe('ignored\n');
      });
    });

    describe('failures', () => {
      it('a storlet error before metadata rejects with the storlet message', async () => {
        await expect(gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'fail-before' }, input: Buffer.from('x') })).rejects.toThrow(
          'storlet misbehave.mjs failed: refusing this object: it is blue',
        );
      });

      it('a storlet error after streaming began errors the output stream', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'fail-after' }, input: Buffer.from('x') });
        expect(r.metadata).toEqual({ partial: 'yes' });
        await expect(collect(r.body)).rejects.toThrow(/storlet misbehave.mjs failed after \d+ bytes of output: disk on fire/);
      });

      it('a storlet that stalls mid-body errors the output after the timeout', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'stall-after' }, input: Buffer.from('x'), timeoutMs: 2000 });
        await expect(collect(r.body)).rejects.toThrow('storlet misbehave.mjs stalled: no output for 2 s; task cancelled');
      });

      it('metadata longer than one pipe write (the daemon writes it) arrives whole', async () => {
        const r = await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'big-metadata' }, input: Buffer.from('x') });
        expect(r.metadata.big).toBe('y'.repeat(10_000));
        expect(await text(r.body)).toBe('small body');
      });

      it('metadata beyond the bound is refused', async () => {
        await expect(gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'huge-metadata' }, input: Buffer.from('x') })).rejects.toThrow(
          'output metadata from storlet misbehave.mjs exceeds the 64 KiB bound',
        );
      });

      it('a busy loop is cancelled on timeout, and the same daemon serves the next call', async () => {
        const pidOf = async () => (await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'pid' }, input: Buffer.from('') })).metadata.pid;
        const before = await pidOf();
        await expect(gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'busy-loop' }, input: Buffer.from('x'), timeoutMs: 300 })).rejects.toThrow(
          'storlet misbehave.mjs sent no metadata within 300 ms; task cancelled',
        );
        // Other tasks keep going while and after the busy one is stopped.
        const results = await Promise.all([1, 2, 3].map(() => gw.invoke({ scope: 's1', storlet: 'identity.mjs', input: Buffer.from('after') })));
        for (const r of results) expect(await text(r.body)).toBe('after');
        expect(await pidOf()).toBe(before);
      });

      it('keeps its warm task threads call after call: a status read up to its line, then closed, is no abandoned task', async () => {
        // A gateway that closes its status reader is taken for one that gave up, unless the
        // task's thread had written the line: then that task's thread would be terminated.
        const threads = new Set<string>();
        for (let i = 0; i < 12; i++) {
          const r = await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'thread' }, input: Buffer.from('') });
          await collect(r.body);
          threads.add(r.metadata.thread!);
        }
        expect(threads.size).toBeLessThanOrEqual(4); // the pool size: never a thread per call
      });

      it('a thread that dies with no error of its own fails the call plainly; the daemon lives on', async () => {
        const pidOf = async () => (await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'pid' }, input: Buffer.from('') })).metadata.pid;
        const before = await pidOf();
        // No OOM kill was reported: the gateway, asked to explain the death, has nothing to add.
        await expect(gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'exit-thread' }, input: Buffer.from('x') })).rejects.toThrow(
          'storlet misbehave.mjs failed: storlet worker died before finishing the task',
        );
        expect(await pidOf()).toBe(before);
      });

      it('reports module load errors', async () => {
        await expect(gw.invoke({ scope: 's1', storlet: 'bad-syntax.mjs', input: Buffer.from('') })).rejects.toThrow(
          /storlet bad-syntax.mjs could not start: cannot load storlet .*bad-syntax.mjs: (missing \) after argument list|Unexpected token)/,
        );
        await expect(gw.invoke({ scope: 's1', storlet: 'no-invoke.mjs', input: Buffer.from('') })).rejects.toThrow(/storlet module has no invoke/);
        await expect(gw.invoke({ scope: 's1', storlet: 'not-deployed.mjs', input: Buffer.from('') })).rejects.toThrow('storlet not-deployed.mjs is not deployed');
      });

      // Process backend only: its factory is a pid of ours (docker: the container-kill test).
      if (backend === 'process') it('recovers when the factory is killed', async () => {
        await text((await gw.invoke({ scope: 'killme', storlet: 'identity.mjs', input: Buffer.from('a') })).body);
        const factoryPid = Number(gw.sandbox('killme').describe().id);
        // The factory dialled the gateway: its channel dir holds only the gateway's socket, no pipes.
        expect(fs.readdirSync(path.join(root, 'pipes', 'killme')).sort()).toEqual(['backend', 'sandlet.sock']);
        process.kill(factoryPid, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 100));
        const r = await gw.invoke({ scope: 'killme', storlet: 'identity.mjs', input: Buffer.from('again') });
        expect(await text(r.body)).toBe('again');
        expect(Number(gw.sandbox('killme').describe().id)).not.toBe(factoryPid);
        expect(isAlive(factoryPid)).toBe(false);
      });

      it('rejects hostile scope and storlet names before any path is built', async () => {
        // The last three are valid path components but not Docker references: one rule for every backend.
        const hostile = ['../escape', 'a/b', '..', '.', '', 'x'.repeat(200), 'nul\0byte', '-leading-dash', 'sp ace', 'tenant-', 'a..b', 'tenant_'];
        for (const scope of hostile) {
          await expect(gw.invoke({ scope, storlet: 'identity.mjs', input: Buffer.from('') })).rejects.toMatchObject({ code: 'EBADNAME' });
        }
        for (const left of ['tenant-', 'a..b', 'tenant_']) expect(fs.existsSync(path.join(root, 'pipes', left))).toBe(false);
        for (const storlet of ['../../etc/passwd', 'a/b.mjs', '..', 'x'.repeat(200)]) {
          await expect(gw.invoke({ scope: 's1', storlet, input: Buffer.from('') })).rejects.toMatchObject({ code: 'EBADNAME' });
        }
        expect(fs.readdirSync(path.dirname(root)).filter((n) => n === 'escape')).toEqual([]);
      });

      it('bounds the invocation log', async () => {
        for (let i = 0; i < 6; i++) {
          await text((await gw.invoke({ scope: 's1', storlet: 'misbehave.mjs', params: { mode: 'log-flood' }, input: Buffer.from('') })).body);
        }
        const log = path.join(root, 'logs', 's1', 'misbehave.mjs', 'storlet_invoke.log');
        // Each invocation writes at most max bytes (plus one truncation line); the file rotates at max.
        expect(fs.statSync(log).size).toBeLessThan(2 * 64 * 1024 + 200);
        expect(fs.statSync(`${log}.1`).size).toBeLessThan(2 * 64 * 1024 + 200);
        expect(fs.existsSync(`${log}.2`)).toBe(false);
        expect(fs.readFileSync(log, 'utf8')).toMatch(/log of this invocation truncated/);
      });
    });

  });
}

// The gateway's own invocation resources are pipes and files. Its sockets are left out: in this
// file it also talks to the Docker engine, whose keep-alive connections close on their own time.
const gatewayFds = (): string[] => openFds().filter((entry) => !entry.includes('socket:'));

describe('resources (process backend: its processes are ours to inspect)', () => {
  let gw: Gateway;
  let close: () => Promise<void>;
  beforeAll(() => {
    ({ gateway: gw, close } = testGateway({ storlet_timeout_ms: 10_000 }));
  });
  afterAll(async () => {
    await close();
  });
  it('20 concurrent first invocations of a cold scope start one sandbox', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => gw.invoke({ scope: 'cold', storlet: 'identity.mjs', input: Buffer.from(`n${i}`) })),
    );
    expect(await Promise.all(results.map((r) => text(r.body)))).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
    expect(gw.sandbox('cold').restarts).toHaveLength(1);
  });

  it('2,000 invocations leave the open-fd counts of gateway and agent unchanged', async () => {
    const run = async (i: number) => {
      const input = i % 2 === 0 ? Buffer.alloc(1024, i) : Readable.from([Buffer.alloc(1024, i)]);
      const r = await gw.invoke({ scope: 'fds', storlet: 'identity.mjs', input });
      return (await collect(r.body)).length;
    };
    // Warm up as the measured loop runs (4 at a time), so the worker pool is grown already.
    for (let i = 0; i < 100; i += 4) await Promise.all([run(i), run(i + 1), run(i + 2), run(i + 3)]);
    // The factory hosts its daemons: one agent process, whose fds from across the wall are counted.
    const agentPid = Number(gw.sandbox('fds').describe().id);
    expect(childPids(agentPid)).toEqual([]);
    const counts = () => [gatewayFds().length, wallFds(agentPid).length];
    // The daemon closes a task's logger fd just after the gateway saw the task end: let it.
    const before = await settled(counts);
    for (let i = 0; i < 2000; i += 4) {
      const sizes = await Promise.all([run(i), run(i + 1), run(i + 2), run(i + 3)]);
      expect(sizes).toEqual([1024, 1024, 1024, 1024]);
    }
    await eventually(() => expect(counts()).toEqual(before));
  });

  it('failure paths leak no fds either', async () => {
    // Warm up every storlet used below: each keeps one invocation-log fd open in the gateway.
    await text((await gw.invoke({ scope: 'fds2', storlet: 'misbehave.mjs', input: Buffer.from('warm') })).body);
    await text((await gw.invoke({ scope: 'fds2', storlet: 'identity.mjs', input: Buffer.from('warm') })).body);
    const agentPid = Number(gw.sandbox('fds2').describe().id);
    const counts = () => [gatewayFds().length, wallFds(agentPid).length];
    const before = await settled(counts);
    for (let i = 0; i < 5; i++) {
      await gw.invoke({ scope: 'fds2', storlet: 'misbehave.mjs', params: { mode: 'fail-before' }, input: Buffer.from('x') }).catch(() => {});
      const after = await gw.invoke({ scope: 'fds2', storlet: 'misbehave.mjs', params: { mode: 'fail-after' }, input: Buffer.from('x') });
      await collect(after.body).catch(() => {});
      // The stall runs on a warm thread; the busy loop (whose thread goes) after it, as its failure is wanted anyway.
      const stall = await gw.invoke({ scope: 'fds2', storlet: 'misbehave.mjs', params: { mode: 'stall-after' }, input: Buffer.from('x'), timeoutMs: 600 });
      await collect(stall.body).catch(() => {});
      await gw.invoke({ scope: 'fds2', storlet: 'misbehave.mjs', params: { mode: 'busy-loop' }, input: Buffer.from('x'), timeoutMs: 200 }).catch(() => {});
      const early = await gw.invoke({ scope: 'fds2', storlet: 'identity.mjs', input: Readable.from([Buffer.alloc(4 << 20)]) });
      early.body.destroy(); // the reader walks away
    }
    // Cancelled and failed tasks never take the agent down with them.
    await eventually(() => expect(counts()).toEqual(before));
    expect(isAlive(agentPid)).toBe(true);
    expect(gw.sandbox('fds2').restarts).toHaveLength(1);
  });
});
