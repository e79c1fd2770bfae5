// The store and cache behind real invocations, on both backends, with a real Swift as the store
// (requests counted from Swift's own log). Each test has its own storlet and dependency containers.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpStore } from '../../src/cache/http-store.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { ENGINE_IMAGE, requireDocker, runId, skipDocker } from '../helpers/docker.js';
import { FIXTURES, versionedStorlet } from '../helpers/gateway.js';
import { collect } from '../helpers/streams.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();
const storlet = (name: string, extra: { dependencies?: string[] } = {}) =>
  ({ kind: 'storlet', name, language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: name, ...extra }) as const;
const versioned = versionedStorlet;

for (const backend of ['process', 'docker'] as const) {
  describe.skipIf((backend === 'docker' && skipDocker) || skipSwift)(`storlet store and cache on the ${backend} backend`, () => {
    let swift: TestSwift;
    let token: string;
    let account: string;
    let n = 0;
    let containers = { storlet: 'storlet', dependency: 'dependency' };
    let store: HttpStore;
    /** GETs of a storlet of this test that reached Swift. */
    const gets = async (name: string): Promise<number> => {
      await swift.settled();
      return swift.count('GET', `/v1/${SWIFT_USERS.admin.account}/${containers.storlet}/${name}`);
    };
    let root: string;
    let gw: Gateway;
    const gateways: Gateway[] = [];
    const prefix = `sltest-${runId()}-`;
    const make = (extra: Record<string, unknown> = {}): Gateway => {
      const g = createGateway(
        { host_root: fs.mkdtempSync(path.join(root, 'g')), backend, storlet_store: account, store_token: token, storlet_container: containers.storlet, storlet_dependency: containers.dependency, container_prefix: prefix, default_container_image_name: ENGINE_IMAGE, ...extra },
        { logger: pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' }) },
      );
      gateways.push(g);
      return g;
    };
    const run = async (g: Gateway, name: string, scope = 's1'): Promise<string> =>
      text((await g.invoke({ scope, storlet: name, input: Buffer.from('') })).body);

    beforeAll(async () => {
      if (backend === 'docker') requireDocker();
      requireSwift();
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-'));
      swift = await startSwift();
      token = await swiftToken(swift.url, SWIFT_USERS.admin);
      account = `${swift.url}/v1/${SWIFT_USERS.admin.account}`;
    });
    beforeEach(async () => {
      n++;
      containers = { storlet: `storlet${n}`, dependency: `dependency${n}` };
      store = new HttpStore({ url: account, token, storletContainer: containers.storlet, dependencyContainer: containers.dependency, timeoutMs: 5000 });
      gw = make({ cache_ttl: 3600 });
    });
    afterEach(async () => {
      for (const g of gateways.splice(0)) await g.close({ stopSandboxes: true });
    });
    afterAll(async () => {
      await swift?.stop();
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    it('100 concurrent invocations of a new storlet fetch it from the store once', async () => {
      await store.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), storlet('identity.mjs'));
      const outs = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => text((await gw.invoke({ scope: 's1', storlet: 'identity.mjs', input: Buffer.from(`n${i}`) })).body)),
      );
      expect(outs).toEqual(Array.from({ length: 100 }, (_, i) => `n${i}`));
      expect(await gets('identity.mjs')).toBe(1);
      expect(gw.cacheMetrics.misses).toBe(1);
    });

    it('picks up a storlet updated in the store once cache_ttl has passed, restarting its daemon', async () => {
      const g = make({ cache_ttl: 0.2 });
      await store.deploy(versioned('v1'), storlet('v.mjs'));
      expect(await run(g, 'v.mjs')).toBe('v1');
      await store.deploy(versioned('v2'), storlet('v.mjs'));
      await new Promise((r) => setTimeout(r, 250)); // let the TTL lapse; no timing is asserted
      expect(await run(g, 'v.mjs')).toBe('v2');
      expect(await gets('v.mjs')).toBe(2);
    });

    it('runs the new code on the next invocation after a deploy through the gateway', async () => {
      await gw.deploy(versioned('v1'), storlet('w.mjs'));
      expect(await run(gw, 'w.mjs')).toBe('v1');
      await gw.deploy(versioned('v2'), storlet('w.mjs'));
      expect(await run(gw, 'w.mjs')).toBe('v2');
    });

    it('a dependency file and an executable dependency reach the storlet with their permissions', async () => {
      await gw.deploy(Buffer.from('payload\n'), { kind: 'dependency', name: 'data.txt', version: '1' });
      await gw.deploy(Buffer.from('#!/bin/sh\necho "tool ran with $1 in $(pwd)"\n'), { kind: 'dependency', name: 'tool.sh', version: '1', permissions: '0750' });
      await gw.deploy(fs.readFileSync(path.join(FIXTURES, 'deps-probe.mjs')), storlet('deps-probe.mjs', { dependencies: ['data.txt', 'tool.sh'] }));
      const report = JSON.parse(await run(gw, 'deps-probe.mjs')) as Record<string, unknown>;
      const dir = backend === 'docker' ? '/home/storlet/deps-probe.mjs' : gw.sandbox('s1').paths.hostStorletDir('deps-probe.mjs');
      expect(report).toEqual({
        data: 'payload\n',
        dataMode: '0444',
        toolMode: '0750',
        tool: `tool ran with arg in ${dir}\n`,
        files: ['data.txt', 'deps-probe.mjs', 'tool.sh'],
      });
    });

    it('never runs a tampered cache: a changed cached file is fetched again before a sandbox sees it', async () => {
      await store.deploy(versioned('trusted'), storlet('t.mjs'));
      expect(await run(gw, 't.mjs')).toBe('trusted');
      const sha = (await gw.catalog.resolve('t.mjs')).storlet.sha256;
      const file = gw.cache.pathOf(sha);
      const evil = versioned('EVIL!!!');
      expect(evil.length).toBe(versioned('trusted').length);
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, evil);
      // A new sandbox must install the storlet again: it gets verified bytes.
      await gw.sandbox('s1').stop('test');
      expect(await run(gw, 't.mjs')).toBe('trusted');
      expect(gw.cacheMetrics.corruptions).toBe(1);
      expect(fs.readFileSync(gw.cache.pathOf(sha), 'utf8')).toBe(versioned('trusted').toString());
      expect(await gets('t.mjs')).toBe(2);
    });

    it('a running daemon is restarted on fresh files when its cached file is found tampered at the TTL check', async () => {
      const g = make({ cache_ttl: 0.2 });
      await store.deploy(versioned('trusted'), storlet('t.mjs'));
      expect(await run(g, 't.mjs')).toBe('trusted');
      const sha = (await g.catalog.resolve('t.mjs')).storlet.sha256;
      const installed = path.join(g.sandbox('s1').paths.hostStorletDir('t.mjs'), 't.mjs');
      fs.chmodSync(g.cache.pathOf(sha), 0o644);
      fs.writeFileSync(g.cache.pathOf(sha), versioned('EVIL!!!'));
      await new Promise((r) => setTimeout(r, 250));
      expect(await run(g, 't.mjs')).toBe('trusted');
      expect(fs.readFileSync(installed, 'utf8')).toBe(versioned('trusted').toString());
      expect(g.cacheMetrics.corruptions).toBe(1);
    });

    it('tampered cached code never runs: a cache file rewritten in place changes nothing a daemon or a new task thread loads', async () => {
      await store.deploy(versioned('trusted'), storlet('t.mjs'));
      expect(await run(gw, 't.mjs')).toBe('trusted');
      const file = gw.cache.pathOf((await gw.catalog.resolve('t.mjs')).storlet.sha256);
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, versioned('EVIL!!!'));
      // More at once than the daemon has threads: new task workers load the module meanwhile.
      const outs = await Promise.all(Array.from({ length: 12 }, () => run(gw, 't.mjs')));
      expect(outs).toEqual(Array.from({ length: 12 }, () => 'trusted'));
      // The scope's copy is its own inode, read-only.
      const installed = path.join(gw.sandbox('s1').paths.hostStorletDir('t.mjs'), 't.mjs');
      expect(fs.statSync(installed).ino).not.toBe(fs.statSync(file).ino);
      expect(fs.statSync(installed).mode & 0o777).toBe(0o444);
    });

    /** Answers `tag`, or spins until cancelled (its task thread is then terminated and replaced). */
    const spinnable = (tag: string): Buffer =>
      Buffer.from(`export async function invoke({ inputs, output, params }) {\n  if (params.spin) for (;;) {}\n  inputs[0].stream.resume();\n  output.setMetadata({});\n  output.stream.end(${JSON.stringify(tag)});\n}\n`);
    /** Cancels two spinning tasks: their threads go, so the next calls need threads that load the module anew. */
    const killTwoThreads = async (g: Gateway, name: string, scope: string): Promise<void> => {
      for (let i = 0; i < 2; i++) {
        // Cancelled (ETIMEDOUT), or already failing to load in a new thread (ESTORLET).
        await expect(g.invoke({ scope, storlet: name, params: { spin: '1' }, input: Buffer.from(''), timeoutMs: 300 })).rejects.toMatchObject({
          code: expect.stringMatching(/^(ETIMEDOUT|ESTORLET)$/),
        });
      }
    };
    /** Eight calls at once; 'ok' when all answered `tag`, else the first other answer. */
    const allServe = (g: Gateway, name: string, scope: string, tag: string) => async (): Promise<string> => {
      const outs = await Promise.all(Array.from({ length: 8 }, () => run(g, name, scope).catch((e: Error) => e.message)));
      return outs.every((o) => o === tag) ? 'ok' : outs.find((o) => o !== tag)!;
    };

    it('a storlet dir deleted behind the gateway\'s back is reinstalled from the cache at the next call', async () => {
      await store.deploy(spinnable('kept'), storlet('k.mjs'));
      expect(await run(gw, 'k.mjs')).toBe('kept');
      const dir = gw.sandbox('s1').paths.hostStorletDir('k.mjs');
      fs.rmSync(dir, { recursive: true, force: true });
      await killTwoThreads(gw, 'k.mjs', 's1');
      // New task threads cannot load it now: calls fail (named) until the gateway notices and repairs.
      await expect.poll(allServe(gw, 'k.mjs', 's1', 'kept'), { timeout: 30_000, interval: 50 }).toBe('ok');
      expect(fs.readFileSync(path.join(dir, 'k.mjs'), 'utf8')).toBe(spinnable('kept').toString());
      expect(await gets('k.mjs')).toBe(1); // from the cache, not the store
    });

    it('a scope storlets dir deleted whole is repaired too (a container mounted the old one: its sandbox restarts)', async () => {
      await store.deploy(spinnable('whole'), storlet('h.mjs'));
      expect(await run(gw, 'h.mjs', 's3')).toBe('whole');
      fs.rmSync(gw.sandbox('s3').paths.hostStorletsDir, { recursive: true, force: true });
      await killTwoThreads(gw, 'h.mjs', 's3');
      await expect.poll(allServe(gw, 'h.mjs', 's3', 'whole'), { timeout: 30_000, interval: 50 }).toBe('ok');
      expect(fs.readFileSync(path.join(gw.sandbox('s3').paths.hostStorletDir('h.mjs'), 'h.mjs'), 'utf8')).toBe(spinnable('whole').toString());
      expect(gw.sandbox('s3').restartCounts.get('repair')).toBe(1);
    });

    it('an unwritable cache (EPERM) is ECACHE naming the path, and the verified cached version keeps serving', async (ctx) => {
      const g = make({ cache_ttl: 0.2 });
      await store.deploy(versioned('v1'), storlet('u.mjs'));
      expect(await run(g, 'u.mjs')).toBe('v1');
      const tmp = path.join(g.cache.dir, 'tmp');
      try {
        execFileSync('chattr', ['+i', tmp], { stdio: 'ignore' });
      } catch {
        ctx.skip(); // chattr needs root and a file system that supports it
      }
      try {
        await store.deploy(versioned('v2'), storlet('u.mjs'));
        await store.deploy(versioned('never cached'), storlet('n.mjs'));
        await new Promise((r) => setTimeout(r, 250)); // let the TTL lapse; no timing is asserted
        expect(await run(g, 'u.mjs')).toBe('v1');
        expect(await run(g, 'u.mjs', 's2')).toBe('v1');
        await expect(run(g, 'n.mjs')).rejects.toMatchObject({
          code: 'ECACHE',
          message: expect.stringMatching(new RegExp(`^cannot cache storlet n.mjs from the .*: writing ${tmp}/\\.tmp-put\\.[0-9a-f]+ failed: EPERM$`)),
        });
      } finally {
        execFileSync('chattr', ['-i', tmp]);
      }
      await new Promise((r) => setTimeout(r, 250));
      expect(await run(g, 'u.mjs')).toBe('v2');
    });

    it('keeps the cache under its cap by evicting least recently used entries, never one a running daemon uses', async () => {
      const g = make({ cache_max_bytes: '2k' });
      for (const n of ['a', 'b', 'c', 'd']) await store.deploy(versioned(n, 500), storlet(`${n}.mjs`));
      const size = versioned('a', 500).length;
      for (const n of ['a', 'b', 'c']) expect(await run(g, `${n}.mjs`)).toBe(n);
      expect(g.cache.totalBytes).toBe(3 * size);
      // a is the least recently used, but its daemon runs; b's daemon stops, so b must go instead.
      await g.sandbox('s1').stopDaemon('b.mjs');
      expect(await run(g, 'd.mjs')).toBe('d');
      const shas = await Promise.all(['a', 'c', 'd'].map(async (n) => (await g.catalog.resolve(`${n}.mjs`)).storlet.sha256));
      expect(g.cache.list().map((e) => e.sha256).sort()).toEqual(shas.sort());
      expect(g.cache.totalBytes).toBeLessThanOrEqual(2048);
      expect(g.cacheMetrics.evictions).toBe(1);
      // An evicted storlet is simply fetched again.
      expect(await run(g, 'b.mjs')).toBe('b');
      expect(await gets('b.mjs')).toBe(2);
    });
  });
}
