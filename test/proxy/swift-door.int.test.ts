import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { startFrontDoor, type FrontDoor } from '../../src/proxy/front-door.js';
import { PUMP_MIN_BYTES } from '../../src/proxy/pump-body.js';
import { openFds, tempDir } from '../helpers/fs.js';
import { FIXTURES } from '../helpers/gateway.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

const run = promisify(execFile);

// The Storlets API on a real Swift, driven by Swift's own CLI and plain HTTP through sandlet's proxy.
describe.skipIf(skipSwift)('Swift front door', () => {
  let swift: TestSwift;
  let gateway: Gateway;
  let door: FrontDoor;
  let cleanup: () => void;
  let token: string;
  let readerToken: string;
  let otherToken: string;
  let registry: Registry;
  let rootDir: string;
  const logLines: string[] = [];
  // Made in beforeAll: a run that filters these tests out (-t) leaves no dir behind.
  let work: ReturnType<typeof tempDir>;

  /** The `swift` CLI as a user, through sandlet's proxy. */
  const cli = async (who: { user: string; key: string }, ...args: string[]): Promise<string> => {
    const { stdout } = await run('swift', ['-A', `${door.url}/auth/v1.0`, '-U', who.user, '-K', who.key, ...args], { cwd: work.dir, encoding: 'utf8' });
    return stdout;
  };
  const api = (p: string, init: RequestInit & { token?: string } = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    headers.set('x-auth-token', init.token ?? token);
    return fetch(`${door.url}${p}`, { ...init, headers });
  };
  const registration = (name: string, extra: string[] = []): string[] => [
    '-H', 'X-Object-Meta-Storlet-Language: js',
    '-H', 'X-Object-Meta-Storlet-Interface-Version: 1.0',
    '-H', 'X-Object-Meta-Storlet-Object-Metadata: no',
    '-H', `X-Object-Meta-Storlet-Main: ${name}`,
    ...extra,
  ];
  const uploadStorlet = async (file: string, extra: string[] = []): Promise<void> => {
    const name = path.basename(file);
    fs.copyFileSync(file, path.join(work.dir, name));
    await cli(SWIFT_USERS.admin, 'upload', 'storlet', name, ...registration(name, extra));
  };

  beforeAll(async () => {
    requireSwift();
    work = tempDir();
    swift = await startSwift();
    const root = tempDir();
    cleanup = root.cleanup;
    rootDir = root.dir;
    // One task thread and a long storlet timeout: a task that is not cancelled holds the daemon.
    const config = resolveConfig({ host_root: root.dir, backend: 'process', upstream: swift.url, proxy_listen: '127.0.0.1:0', cache_ttl: 1, storlet_daemon_thread_pool_size: 1, storlet_timeout_ms: 600_000, output_stall_timeout_ms: 600_000 });
    // Every log line is kept: no credential may ever reach one.
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { logLines.push(chunk.toString()); cb(); } });
    gateway = createGateway(config, { logger: pino({ level: 'debug' }, sink) });
    registry = new Registry();
    door = await startFrontDoor({ gateway, config, registry, logger: gateway.logger });
    token = await swiftToken(door.url, SWIFT_USERS.admin);
    readerToken = await swiftToken(door.url, SWIFT_USERS.reader);
    otherToken = await swiftToken(door.url, SWIFT_USERS.other);
    fs.writeFileSync(path.join(work.dir, 'hello.txt'), 'hello, swift\n');
    await cli(SWIFT_USERS.admin, 'upload', 'data', 'hello.txt', '-H', 'X-Object-Meta-Color: blue', '-H', 'Content-Type: text/plain');
    await uploadStorlet(path.join(SAMPLES_DIR, 'uppercase.mjs'));
    await uploadStorlet(path.join(SAMPLES_DIR, 'metadata-echo.mjs'));
    await uploadStorlet(path.join(SAMPLES_DIR, 'concat.mjs'));
    await uploadStorlet(path.join(FIXTURES, 'misbehave.mjs'));
  });
  afterAll(async () => {
    await door?.close();
    await gateway?.close({ stopSandboxes: true });
    await swift?.stop();
    cleanup?.();
    work?.cleanup();
  });

  describe('passthrough', () => {
    it('keeps clients on the proxy (storage URL from the Host header) and moves bytes unchanged', async () => {
      const stat = await cli(SWIFT_USERS.admin, 'stat', '-v');
      expect(stat).toContain(`StorageURL: ${door.url}/v1/AUTH_test`);
      const blob = Buffer.alloc(3 * 1024 * 1024 + 7, 0);
      for (let i = 0; i < blob.length; i++) blob[i] = (i * 31) & 0xff;
      fs.writeFileSync(path.join(work.dir, 'blob.bin'), blob);
      await cli(SWIFT_USERS.admin, 'upload', 'data', 'blob.bin');
      const out = path.join(work.dir, 'blob.out');
      await cli(SWIFT_USERS.admin, 'download', 'data', 'blob.bin', '-o', out);
      expect(fs.readFileSync(out).equals(blob)).toBe(true);
    });

    it('passes HEAD, empty bodies, chunked uploads and Swift errors through', async () => {
      const head = await api('/v1/AUTH_test/data/hello.txt', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe('13');
      expect(head.headers.get('x-object-meta-color')).toBe('blue');
      const empty = await api('/v1/AUTH_test/data/empty', { method: 'PUT', body: '' });
      expect(empty.status).toBe(201);
      const chunked = await api('/v1/AUTH_test/data/chunked', {
        method: 'PUT',
        body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('in ')); c.enqueue(new TextEncoder().encode('chunks')); c.close(); } }),
        duplex: 'half',
      } as RequestInit);
      expect(chunked.status).toBe(201);
      expect(await (await api('/v1/AUTH_test/data/chunked')).text()).toBe('in chunks');
      expect((await api('/v1/AUTH_test/data/hello.txt', { token: 'AUTH_tk0000' })).status).toBe(401);
      expect((await api('/v1/AUTH_test/data/nothing-here')).status).toBe(404);
      const info = await fetch(`${door.url}/info`);
      expect(info.status).toBe(200);
      expect(await info.json()).toHaveProperty('swift');
    });

    it('answers Expect: 100-continue and refuses a request with both Content-Length and Transfer-Encoding', async () => {
      const raw = async (text: string): Promise<string> => {
        const url = new URL(door.url);
        const s = net.connect(Number(url.port), url.hostname);
        s.write(text);
        let got = '';
        for await (const chunk of s) {
          got += chunk.toString();
          if (got.includes('100 Continue')) s.write('12345');
        }
        return got;
      };
      const cont = await raw(`PUT /v1/AUTH_test/data/expect HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${token}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
      expect(cont).toMatch(/^HTTP\/1.1 100 Continue/);
      expect(cont).toMatch(/HTTP\/1.1 201/);
      const smuggle = await raw(`PUT /v1/AUTH_test/data/smuggle HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${token}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
      expect(smuggle).toMatch(/^HTTP\/1.1 400/);
      expect((await api('/v1/AUTH_test/data/smuggle')).status).toBe(404);
    });
  });

  describe('X-Run-Storlet', () => {
    it('runs the storlet on GET (swift download --header): output, metadata and content type', async () => {
      const out = path.join(work.dir, 'hello.upper');
      await cli(SWIFT_USERS.admin, 'download', 'data', 'hello.txt', '-o', out, '--header', 'X-Run-Storlet: uppercase.mjs', '--ignore-checksum');
      expect(fs.readFileSync(out, 'utf8')).toBe('HELLO, SWIFT\n');
      const res = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-object-meta-storlet-transform')).toBe('uppercase');
      expect(res.headers.get('x-object-meta-color')).toBe('blue');
      expect(res.headers.get('content-type')).toBe('text/plain');
      expect(res.headers.get('etag')).toBeNull();
      // A small output is held whole, so it comes with its own length (the next test shows it is
      // not the object's).
      expect(res.headers.get('content-length')).toBe('13');
      expect(await res.text()).toBe('HELLO, SWIFT\n');
    });

    it('runs a Python storlet written for Storlets and an executable, deployed the Storlets way, on GET and PUT', async () => {
      // As the Storlets docs deploy them: the language and the main (MODULE.Class for Python).
      const deploy = async (file: string, language: string, main: string): Promise<void> => {
        const name = path.basename(file);
        fs.copyFileSync(file, path.join(work.dir, name));
        await cli(SWIFT_USERS.admin, 'upload', 'storlet', name, ...registration(main).map((h) => h.replace('Language: js', `Language: ${language}`)));
      };
      await deploy(path.join(SAMPLES_DIR, 'uppercase.py'), 'python', 'uppercase.UpperStorlet');
      await deploy(path.join(SAMPLES_DIR, 'gzip.sh'), 'exec', 'gzip.sh');
      const out = path.join(work.dir, 'hello.py-upper');
      await cli(SWIFT_USERS.admin, 'download', 'data', 'hello.txt', '-o', out, '--header', 'X-Run-Storlet: uppercase.py', '--ignore-checksum');
      expect(fs.readFileSync(out, 'utf8')).toBe('HELLO, SWIFT\n');
      const res = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'uppercase.py' } });
      expect(res.headers.get('x-object-meta-transformed-by')).toBe('uppercase.py');
      expect(res.headers.get('x-object-meta-color')).toBe('blue'); // the storlet passed the object's metadata on
      expect(await res.text()).toBe('HELLO, SWIFT\n');
      const put = await api('/v1/AUTH_test/data/py-shout.txt', { method: 'PUT', body: 'from python\n', headers: { 'X-Run-Storlet': 'uppercase.py' } });
      expect(put.status).toBe(201);
      expect(await (await api('/v1/AUTH_test/data/py-shout.txt')).text()).toBe('FROM PYTHON\n');
      const zipped = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'gzip.sh' } });
      expect(zipped.status).toBe(200);
      expect(gunzipSync(Buffer.from(await zipped.arrayBuffer())).toString()).toBe('hello, swift\n');
    });

    it('hands parameters from the query and X-Storlet-Parameter-N, and a range; refuses reserved names and Range', async () => {
      const res = await api('/v1/AUTH_test/data/hello.txt?quality=high', {
        headers: { 'X-Run-Storlet': 'metadata-echo.mjs', 'X-Storlet-Parameter-1': 'size:small', 'X-Storlet-Range': 'bytes=1-4' },
      });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
      expect(text.length).toBeGreaterThan(13); // longer than the object
      const body = JSON.parse(text) as { params: Record<string, string>; range: unknown; metadata: Record<string, string> };
      expect(body.params).toEqual({ quality: 'high', size: 'small' });
      expect(body.range).toEqual({ start: 1, end: 4 });
      expect(body.metadata).toMatchObject({ Color: 'blue', 'Content-Type': 'text/plain' });
      const reserved = await api('/v1/AUTH_test/data/hello.txt?storlet_execution_path=/etc', { headers: { 'X-Run-Storlet': 'metadata-echo.mjs' } });
      expect(reserved.status).toBe(400);
      expect(await reserved.text()).toMatch(/reserved prefix "storlet_"/);
      const ranged = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'uppercase.mjs', Range: 'bytes=0-1' } });
      expect(ranged.status).toBe(400);
      expect(await ranged.text()).toMatch(/Range cannot be used with X-Run-Storlet/);
    });

    it('transforms an upload on PUT; a failing storlet stores nothing', async () => {
      fs.writeFileSync(path.join(work.dir, 'note.txt'), 'quiet words\n');
      await cli(SWIFT_USERS.admin, 'upload', 'data', 'note.txt', '-H', 'X-Run-Storlet: uppercase.mjs', '-H', 'X-Object-Meta-Author: ann', '--ignore-checksum');
      const got = await api('/v1/AUTH_test/data/note.txt');
      expect(await got.text()).toBe('QUIET WORDS\n');
      expect(got.headers.get('x-object-meta-storlet-transform')).toBe('uppercase');
      expect(got.headers.get('x-object-meta-author')).toBe('ann');
      const put = await api('/v1/AUTH_test/data/shout.txt', { method: 'PUT', body: 'abc', headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(put.status).toBe(201);
      expect(put.headers.get('etag')).toBe('902fbdd2b1df0c4f70b4a5d23525e932'); // md5("ABC"): what Swift stored
      const fail = await api('/v1/AUTH_test/data/never.txt', { method: 'PUT', body: 'x', headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:fail-before' } });
      expect(fail.status).toBe(502);
      expect(await fail.text()).toMatch(/^Storlet misbehave\.mjs: /);
      const failLate = await api('/v1/AUTH_test/data/never2.txt', { method: 'PUT', body: 'x', headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:fail-after' } });
      expect(failLate.status).toBeGreaterThanOrEqual(500);
      expect((await api('/v1/AUTH_test/data/never.txt')).status).toBe(404);
      expect((await api('/v1/AUTH_test/data/never2.txt')).status).toBe(404);
    });

    it('transforms on COPY and on PUT with X-Copy-From', async () => {
      const copy = await api('/v1/AUTH_test/data/hello.txt', { method: 'COPY', headers: { 'X-Run-Storlet': 'uppercase.mjs', Destination: 'data/hello.copy' } });
      expect(copy.status).toBe(201);
      expect(await (await api('/v1/AUTH_test/data/hello.copy')).text()).toBe('HELLO, SWIFT\n');
      const put = await api('/v1/AUTH_test/data/hello.copy2', { method: 'PUT', headers: { 'X-Run-Storlet': 'uppercase.mjs', 'X-Copy-From': '/data/hello.txt' } });
      expect(put.status).toBe(201);
      expect(await (await api('/v1/AUTH_test/data/hello.copy2')).text()).toBe('HELLO, SWIFT\n');
      const cross = await api('/v1/AUTH_test/data/x', { method: 'PUT', headers: { 'X-Run-Storlet': 'uppercase.mjs', 'X-Copy-From': 'data/hello.txt', 'X-Copy-From-Account': 'AUTH_test2' } });
      expect(cross.status).toBe(400);
    });

    it('adds extra resources as further inputs, read with the caller’s credentials', async () => {
      await api('/v1/AUTH_test/data/tail.txt', { method: 'PUT', body: 'tail\n' });
      const res = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'concat.mjs', 'X-Storlet-Extra-Resources': '/data/tail.txt' } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('hello, swift\ntail\n');
      const missing = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'concat.mjs', 'X-Storlet-Extra-Resources': 'data/none' } });
      expect(missing.status).toBe(404);
    });

    it('answers unknown objects and storlets with 404, failures with Swift-like statuses', async () => {
      expect((await api('/v1/AUTH_test/data/nope', { headers: { 'X-Run-Storlet': 'uppercase.mjs' } })).status).toBe(404);
      const noStorlet = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'nothing.mjs' } });
      expect(noStorlet.status).toBe(404);
      expect(await noStorlet.text()).toMatch(/nothing\.mjs is not deployed in account AUTH_test/);
      const failed = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:fail-before' } });
      expect(failed.status).toBe(502);
      expect((await failed.text()).split('\n').filter(Boolean)).toHaveLength(1);
      // A small output is held for its end: a storlet that fails after a few bytes is a 502 too.
      const late = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:fail-after-small' } });
      expect(late.status).toBe(502);
      expect(await late.text()).toMatch(/^Storlet misbehave\.mjs: storlet misbehave\.mjs failed after 11 bytes of output: gave up after a few bytes\n$/);
    });

    it('streams a small output that is slow to end: its first bytes are not held for long', async () => {
      const res = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:slow-small' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBeNull();
      expect(res.headers.get('transfer-encoding')).toBe('chunked');
      expect(await res.text()).toBe('first part, then the rest');
    });

    it('saves the invocation log as an object when asked (X-Storlet-Generate-Log), on success and failure', async () => {
      const put = await api('/v1/AUTH_test/data/logged.txt', { method: 'PUT', body: 'abc', headers: { 'X-Run-Storlet': 'uppercase.mjs', 'X-Storlet-Generate-Log': 'True' } });
      expect(put.status).toBe(201);
      const name = put.headers.get('x-storlet-generated-log')!;
      expect(name).toMatch(/^storletlog\/uppercase\.mjs-.*\.log$/);
      const log = await api(`/v1/AUTH_test/${name}`);
      expect(log.status).toBe(200);
      expect(await log.text()).toContain('uppercasing');
      const get = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'uppercase.mjs', 'X-Storlet-Generate-Log': 'true' } });
      expect(await get.text()).toBe('HELLO, SWIFT\n');
      const getLog = get.headers.get('x-storlet-generated-log')!;
      await expect.poll(async () => (await api(`/v1/AUTH_test/${getLog}`)).status, { timeout: 10_000 }).toBe(200);
      const failed = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:fail-before', 'X-Storlet-Generate-Log': 'True' } });
      expect(failed.status).toBe(502);
      const failLog = failed.headers.get('x-storlet-generated-log')!;
      expect((await api(`/v1/AUTH_test/${failLog}`)).status).toBe(200);
      expect(fs.readdirSync(path.join(rootDir, 'tmp'))).toEqual([]); // spooled logs are unlinked at once
    });

    it('a client that leaves mid-storlet cancels it: the daemon serves the next call', async () => {
      const u = new URL(door.url);
      const s = net.connect(Number(u.port), u.hostname);
      s.write(`GET /v1/AUTH_test/data/hello.txt HTTP/1.1\r\nHost: ${u.host}\r\nX-Auth-Token: ${token}\r\nX-Run-Storlet: misbehave.mjs\r\nX-Storlet-Parameter-1: mode:busy-loop\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 300));
      s.destroy();
      // One task thread (storlet_daemon_thread_pool_size 1) and a long timeout: only a cancel frees it.
      const next = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:ignore-input' } });
      expect(next.status).toBe(200);
    });

    it('moves a large object through a storlet byte for byte (pumped into its input and out of its output); one that ignores its input is fine', async () => {
      await uploadStorlet(path.join(SAMPLES_DIR, 'identity.mjs'));
      const body = randomBytes(3 * PUMP_MIN_BYTES + 999);
      expect((await api('/v1/AUTH_test/data/big.bin', { method: 'PUT', body })).status).toBe(201);
      const pipes = (): number => openFds().filter((l) => l.includes('-> pipe:')).length;
      const before = pipes();
      const sha = (b: Buffer | ArrayBuffer): string => createHash('sha256').update(Buffer.from(b as ArrayBuffer)).digest('hex');
      for (let i = 0; i < 3; i++) {
        const res = await api('/v1/AUTH_test/data/big.bin', { headers: { 'X-Run-Storlet': 'identity.mjs' } });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-length')).toBeNull();
        expect(sha(await res.arrayBuffer())).toBe(sha(body));
      }
      // The storlet closes its input unread: the pump stops feeding it, and nothing fails.
      const ignored = await api('/v1/AUTH_test/data/big.bin', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:ignore-input' } });
      expect(ignored.status).toBe(200);
      await ignored.arrayBuffer();
      const again = await api('/v1/AUTH_test/data/big.bin', { headers: { 'X-Run-Storlet': 'identity.mjs' } });
      expect(sha(await again.arrayBuffer())).toBe(sha(body));
      // Metadata, then a failure before any output byte: no head went out yet, so it is a 502.
      const failed = await api('/v1/AUTH_test/data/big.bin', { headers: { 'X-Run-Storlet': 'misbehave.mjs', 'X-Storlet-Parameter-1': 'mode:meta-then-fail' } });
      expect(failed.status).toBe(502);
      expect(await failed.text()).toMatch(/^Storlet misbehave\.mjs: .*gave up before any output\n$/);
      await expect.poll(pipes, { timeout: 10_000 }).toBeLessThanOrEqual(before);
    });

    it('checks registration headers before a storlet is stored', async () => {
      fs.writeFileSync(path.join(work.dir, 'bad.mjs'), 'export function invoke() {}');
      const err = await cli(SWIFT_USERS.admin, 'upload', 'storlet', 'bad.mjs', '-H', 'X-Object-Meta-Storlet-Language: cobol').catch((e: { stderr: string }) => e.stderr);
      expect(err).toMatch(/400/);
      const res = await api('/v1/AUTH_test/storlet/bad.mjs', { method: 'PUT', body: 'x', headers: { 'X-Object-Meta-Storlet-Language': 'cobol' } });
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/storlet bad\.mjs: .*language.*cobol/);
      expect((await api('/v1/AUTH_test/storlet/bad.mjs', { method: 'HEAD' })).status).toBe(404);
    });
  });

  describe('authorisation: Swift decides', () => {
    it('a caller who cannot read the storlet cannot run it, even when it is cached', async () => {
      // The reader may read the data container, not the storlet container.
      await api('/v1/AUTH_test/data', { method: 'POST', headers: { 'X-Container-Read': 'test:reader' } });
      expect((await api('/v1/AUTH_test/data/hello.txt', { token: readerToken })).status).toBe(200);
      const denied = await api('/v1/AUTH_test/data/hello.txt', { token: readerToken, headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(denied.status).toBe(403);
      await api('/v1/AUTH_test/storlet', { method: 'POST', headers: { 'X-Container-Read': 'test:reader' } });
      await new Promise((r) => setTimeout(r, 1100)); // the refusal is not remembered; Swift's memcached ACL cache may be
      const allowed = await api('/v1/AUTH_test/data/hello.txt', { token: readerToken, headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toBe('HELLO, SWIFT\n');
    });

    it('Swift refusing the transformed upload is relayed, and the storlet is not left holding its thread', async () => {
      // The reader may run the storlet and read data, but not write it: Swift answers the PUT 403.
      const big = Buffer.alloc(4 * 1024 * 1024, 97);
      const put = await api('/v1/AUTH_test/data/not-yours.txt', { method: 'PUT', token: readerToken, body: big, headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(put.status).toBe(403);
      // One task thread and no stall timeout to speak of: only a stopped output frees it.
      const next = await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(await next.text()).toBe('HELLO, SWIFT\n');
    });

    it('another account cannot run this account’s storlets or read its objects', async () => {
      const res = await api('/v1/AUTH_test/data/hello.txt', { token: otherToken, headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(res.status).toBe(403);
      const own = await api('/v1/AUTH_test2/c/o', { token: otherToken, headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
      expect(own.status).toBe(404); // AUTH_test2 has no such storlet: the name is per account
    });

    it('refuses hostile paths before any request is made', async () => {
      // Sent on a raw socket: fetch would resolve the dot segments itself.
      const url = new URL(door.url);
      const s = net.connect(Number(url.port), url.hostname);
      s.end(`GET /v1/AUTH_test/data/a/../../AUTH_test2/x HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${token}\r\nX-Run-Storlet: uppercase.mjs\r\nConnection: close\r\n\r\n`);
      let got = '';
      for await (const chunk of s) got += chunk.toString();
      expect(got).toMatch(/^HTTP\/1.1 400/);
      for (const p of ['/v1/AUTH_test/%2e%2e/hello.txt', '/v1/..%2FAUTH_test2/data/x', '/v1/AUTH_test/data/a%00b', `/v1/AUTH_test/data/${'x'.repeat(2000)}`, '/v1/AUTH%2Ftest/data/hello.txt']) {
        const res = await api(p, { headers: { 'X-Run-Storlet': 'uppercase.mjs' } });
        expect(res.status, p).toBe(400);
      }
      expect((await api('/v1/AUTH_test/data/hello.txt', { headers: { 'X-Run-Storlet': '../uppercase.mjs' } })).status).toBe(400);
    });
  });

  it('counts proxied requests and storlet runs by outcome', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/sandlet_proxy_requests_total\{api="swift",kind="passthrough",outcome="ok"\} \d+/);
    expect(text).toMatch(/sandlet_proxy_storlet_runs_total\{api="swift",outcome="ok"\} \d+/);
    expect(text).toMatch(/sandlet_proxy_storlet_runs_total\{api="swift",outcome="storlet_error"\} \d+/);
    expect(text).not.toContain(token);
  });

  it('never writes a credential to its log', () => {
    expect(logLines.length).toBeGreaterThan(0);
    const all = logLines.join('');
    for (const secret of [token, readerToken, otherToken, SWIFT_USERS.admin.key]) expect(all).not.toContain(secret);
  });
});

// Swift going away in the middle of an object a storlet is reading: the real fault, made by
// stopping the test Swift while the client holds the response back.
describe.skipIf(skipSwift)('Swift front door: an object that breaks off under a storlet', () => {
  it('cuts the client (no last chunk) and frees the pipes when Swift stops mid-object', async () => {
    requireSwift();
    const swift = await startSwift();
    const root = tempDir();
    const config = resolveConfig({ host_root: root.dir, backend: 'process', upstream: swift.url, proxy_listen: '127.0.0.1:0' });
    const gateway = createGateway(config, { logger: pino({ level: 'silent' }) });
    const door = await startFrontDoor({ gateway, config, registry: new Registry(), logger: gateway.logger });
    try {
      const token = await swiftToken(door.url, SWIFT_USERS.admin);
      const put = (p: string, body: Buffer, headers: Record<string, string> = {}) =>
        fetch(`${door.url}${p}`, { method: 'PUT', headers: { 'x-auth-token': token, ...headers }, body });
      await put('/v1/AUTH_test/storlet', Buffer.alloc(0));
      await put('/v1/AUTH_test/data', Buffer.alloc(0));
      expect((await put('/v1/AUTH_test/storlet/identity.mjs', fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), {
        'x-object-meta-storlet-language': 'js', 'x-object-meta-storlet-interface-version': '1.0',
        'x-object-meta-storlet-object-metadata': 'no', 'x-object-meta-storlet-main': 'identity.mjs',
      })).status).toBe(201);
      const size = 64 * 1024 * 1024;
      expect((await put('/v1/AUTH_test/data/huge', Buffer.alloc(size, 5))).status).toBe(201);
      const pipes = (): number => openFds().filter((l) => l.includes('-> pipe:')).length;
      const before = pipes();
      const u = new URL(door.url);
      const s = net.connect(Number(u.port), u.hostname);
      s.write(`GET /v1/AUTH_test/data/huge HTTP/1.1\r\nHost: ${u.host}\r\nX-Auth-Token: ${token}\r\nX-Run-Storlet: identity.mjs\r\nConnection: close\r\n\r\n`);
      let received: Buffer = Buffer.alloc(0);
      const first = new Promise<void>((resolve) => s.once('data', (c: Buffer) => { received = c; resolve(); }));
      await first;
      s.pause(); // the whole pipeline backs up: Swift is still mid-object
      await new Promise((r) => setTimeout(r, 500));
      await swift.stop();
      const chunks: Buffer[] = [received];
      const ended = new Promise<void>((resolve) => {
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('close', () => resolve());
        s.on('error', () => {});
      });
      s.resume();
      await ended;
      const text = Buffer.concat(chunks);
      expect(text.subarray(0, 15).toString()).toBe('HTTP/1.1 200 OK');
      expect(text.length).toBeLessThan(size);
      expect(text.subarray(-5).toString('latin1')).not.toBe('0\r\n\r\n'); // no last chunk: the client knows
      await expect.poll(pipes, { timeout: 10_000 }).toBeLessThanOrEqual(before);
    } finally {
      await door.close();
      await gateway.close({ stopSandboxes: true });
      await swift.stop();
      root.cleanup();
    }
  });
});
