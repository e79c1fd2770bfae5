// `sandlet serve` as a real process: memory under load, SIGTERM drain, the operator CLI.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../src/cache/local-store.js';
import { PACKAGE_ROOT, SAMPLES_DIR } from '../../src/package-root.js';
import { createToken } from '../../src/server/tokens.js';
import { tempDir } from '../helpers/fs.js';
import { patternStream } from '../helpers/streams.js';
import { docker, requireDocker, runId, skipDocker } from '../helpers/docker.js';

const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');
const run = promisify(execFile);

interface Served {
  child: ChildProcess;
  socket: string;
  port: number;
  exited: Promise<number | null>;
  /** Resolves when the server's stderr matches. */
  said: (re: RegExp) => Promise<void>;
}

let root: string;
let cleanup: () => void;
let tokens: { operate: string; invoke: string };

/** Starts `sandlet serve` and resolves once it says where it listens. */
async function serve(name: string, opts: { backend?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<Served> {
  const socket = path.join(root, `${name}.sock`);
  const args = ['serve', '--root', root, '--backend', opts.backend ?? 'process', '--listen-socket', socket, '--listen-tcp', '127.0.0.1:0', '--log-level', 'warn', ...(opts.args ?? [])];
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const said = (re: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!re.test(err)) return;
        child.stderr!.off('data', check);
        resolve();
      };
      child.stderr!.on('data', check);
      void exited.then(() => reject(new Error(`serve exited before saying ${re}: ${err}`)));
      check();
    });
  await said(/serving on .*http:\/\/127\.0\.0\.1:\d+/);
  const port = Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(err)![1]);
  return { child, socket, port, exited, said };
}

/** Runs `sandlet serve` that is expected to refuse to start: its exit code and stderr, once it exited. */
function serveRefused(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--root', root, '--log-level', 'error', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

function post(s: Served, urlPath: string, body: Readable | string, onResponse?: (res: http.IncomingMessage) => void): Promise<{ status: number; sha256: string; bytes: number; peakRss: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: s.socket, method: 'POST', path: urlPath, headers: { authorization: `Bearer ${tokens.invoke}` } }, (res) => {
      onResponse?.(res);
      const h = createHash('sha256');
      let bytes = 0;
      let peakRss = 0;
      let nextSample = 0;
      res.on('data', (c: Buffer) => {
        h.update(c);
        bytes += c.length;
        // Sample the server's RSS as data flows (every 16 MiB): event-driven, no timers.
        if (bytes >= nextSample) {
          peakRss = Math.max(peakRss, rssBytes(s.child.pid!));
          nextSample += 16 * 1024 * 1024;
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, sha256: h.digest('hex'), bytes, peakRss }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof body === 'string') req.end(body);
    else body.pipe(req);
  });
}

beforeAll(async () => {
  ({ dir: root, cleanup } = tempDir());
  const store = new LocalStore(path.join(root, 'store'));
  for (const name of ['identity.mjs', 'uppercase.mjs']) {
    store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, name)), { name, language: 'js', main: name, interfaceVersion: '1.0', objectMetadata: 'no' });
  }
  const file = path.join(root, 'tokens.json');
  tokens = { operate: (await createToken(file, 'operate')).token, invoke: (await createToken(file, 'invoke')).token };
});
afterAll(() => cleanup());

describe('sandlet serve (a real process)', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve('main');
  });
  afterAll(async () => {
    s.child.kill('SIGTERM');
    await s.exited;
  });

  it('streams 1 GiB through HTTP with server RSS growing by less than 50 MB', async () => {
    await post(s, '/v1/invoke/big/identity.mjs', patternStream(8 * 1024 * 1024)); // warm: sandbox, daemon, buffers
    const before = rssBytes(s.child.pid!);
    const total = 1024 ** 3;
    const expected = createHash('sha256');
    const source = patternStream(total).on('data', (c: Buffer) => expected.update(c));
    const r = await post(s, '/v1/invoke/big/identity.mjs', source);
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(total);
    expect(r.sha256).toBe(expected.digest('hex'));
    expect(Math.max(r.peakRss, rssBytes(s.child.pid!)) - before).toBeLessThan(50 * 1024 * 1024);
  });

  it('a slow reader does not grow the server\'s memory: backpressure reaches the storlet', async () => {
    await post(s, '/v1/invoke/slow/identity.mjs', 'warm');
    const before = rssBytes(s.child.pid!);
    const total = 256 * 1024 * 1024;
    let peak = 0;
    const r = await post(s, '/v1/invoke/slow/identity.mjs', patternStream(total), (res) => {
      // Read in small bites, yielding to the event loop between them: far slower than the producer.
      res.pause();
      const bite = (): void => {
        let chunk: Buffer | null;
        let n = 0;
        while (n < 256 * 1024 && (chunk = res.read() as Buffer | null)) n += chunk.length;
        peak = Math.max(peak, rssBytes(s.child.pid!));
        if (!res.readableEnded) setImmediate(bite);
      };
      res.once('readable', bite);
    });
    expect(r.bytes).toBe(total);
    expect(peak - before).toBeLessThan(50 * 1024 * 1024);
  });

  it('the operator CLI drives it, with exit codes scripts can rely on', async () => {
    await post(s, '/v1/invoke/cli/uppercase.mjs', 'x');
    const cli = async (args: string[], token = tokens.operate) => {
      try {
        const r = await run(process.execPath, [BIN, ...args, '--server', `unix:${s.socket}`], { env: { ...process.env, SANDLET_TOKEN: token } });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const ls = await cli(['scopes', 'ls']);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^SCOPE +STATE +UPTIME +IN-FLIGHT +DAEMONS +RESTARTS\n/);
    expect(ls.stdout).toMatch(/\ncli +running +\d+s +0 +1 +start:1\n/);

    const restart = await cli(['scopes', 'restart', 'cli', '--reason', 'new certs']);
    expect([restart.code, restart.stdout]).toEqual([0, 'cli: restarted (running)\n']);
    const status = JSON.parse((await cli(['scopes', 'status', 'cli', '--json'])).stdout) as { restarts: Record<string, number>; recentRestarts: { reason: string }[] };
    expect(status.restarts).toEqual({ start: 1, operator: 1 });
    expect(status.recentRestarts.at(-1)!.reason).toMatch(/^operator restart by token [a-z0-9]{12}: new certs$/);
    expect((await cli(['scopes', 'status', 'cli'])).stdout).toMatch(/^scope +cli\nstate +running\n/);
    expect((await cli(['scopes', 'restart', '--all', '--when-idle'])).stdout).toContain('cli: restart at its next idle moment');

    await post(s, '/v1/invoke/cli/uppercase.mjs', 'x');
    expect((await cli(['daemons', 'stop', 'cli', 'uppercase.mjs'])).stdout).toBe('cli: stopped the daemon of uppercase.mjs\n');
    const logs = await cli(['logs', 'cli', 'uppercase.mjs', '-n', '1']);
    expect(logs.code).toBe(0);
    expect(logs.stdout.trim().split('\n')).toHaveLength(1);

    const missing = await cli(['scopes', 'status', 'nowhere']);
    expect([missing.code, missing.stderr]).toEqual([3, 'sandlet: 404: scope nowhere has no sandbox on this node\n']);
    const denied = await cli(['scopes', 'restart', 'cli'], tokens.invoke);
    expect([denied.code, denied.stderr]).toEqual([4, 'sandlet: 403: a invoke token may not operate sandboxes\n']);
    const unauth = await cli(['scopes', 'ls'], 'sl_000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    expect(unauth.code).toBe(4);
    const usage = await cli(['scopes', 'restart']);
    expect([usage.code, usage.stderr]).toEqual([2, 'sandlet: name a scope or pass --all (not both)\n']);
    const down = (await run(process.execPath, [BIN, 'scopes', 'ls', '--server', `unix:${path.join(root, 'nobody.sock')}`]).catch((e: { code: number; stderr: string }) => e)) as { code?: number; stderr: string };
    expect([down.code, down.stderr]).toEqual([5, `sandlet: cannot reach the server at unix:${path.join(root, 'nobody.sock')}: ENOENT\n`]);
  });
});

describe('SIGTERM', () => {
  it('drains: stops accepting, finishes the invocation in flight, then exits 0', async () => {
    const s = await serve('drain');
    const input = new Readable({ read() {} });
    input.push('first half, ');
    let gotHeaders!: () => void;
    const headersIn = new Promise<void>((r) => (gotHeaders = r));
    const pending = post(s, '/v1/invoke/drain/identity.mjs', input, () => gotHeaders());
    await headersIn;
    s.child.kill('SIGTERM');
    // Once it says so, the listener is closed: new connections are refused while the old one streams on.
    await s.said(/SIGTERM: draining/);
    const refused = await new Promise<string>((resolve) => {
      http.get({ socketPath: s.socket, path: '/healthz' }, () => resolve('answered')).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(['ECONNREFUSED', 'ENOENT', 'ECONNRESET']).toContain(refused); // never served
    input.push('second half');
    input.push(null);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.bytes).toBe('first half, second half'.length);
    expect(await s.exited).toBe(0);
    expect(fs.existsSync(s.socket)).toBe(false);
  });
});

describe('start-up refusals', () => {
  it('a second server on a socket or port in use fails at once, exits non-zero and leaves the first untouched', async () => {
    const first = await serve('first');
    try {
      expect((await post(first, '/v1/invoke/first/identity.mjs', 'one')).status).toBe(200);
      const sameSocket = await serveRefused(['--backend', 'process', '--listen-socket', first.socket, '--listen-tcp', '127.0.0.1:0']);
      expect([sameSocket.code, sameSocket.stderr]).toEqual([1, `sandlet: cannot listen on ${first.socket}: another server already listens there\n`]);
      const own = path.join(root, 'second.sock');
      const samePort = await serveRefused(['--backend', 'process', '--listen-socket', own, '--listen-tcp', `127.0.0.1:${first.port}`]);
      expect([samePort.code, samePort.stderr]).toEqual([1, `sandlet: cannot listen on 127.0.0.1:${first.port}: the address is in use (another sandlet serve?)\n`]);
      expect(fs.existsSync(own)).toBe(false); // the socket it did bind is gone with it
      // The first one never noticed.
      expect(fs.existsSync(first.socket)).toBe(true);
      expect((await post(first, '/v1/invoke/first/identity.mjs', 'two')).status).toBe(200);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
  });

  it('refuses to serve without isolation when auto finds no Docker, unless the process backend is asked for', async () => {
    const socket = path.join(root, 'auto.sock');
    const env = { SANDLET_DOCKER_SOCKET: path.join(root, 'no-docker.sock'), SANDLET_BACKEND: '' };
    const r = await serveRefused(['--listen-socket', socket], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sandlet: sandlet serve will not run storlets without isolation: .*no-docker\.sock.*pass --backend process \(config backend: process\) to run them on the host on purpose\n$/);
    expect(fs.existsSync(socket)).toBe(false);
    const explicit = await serve('explicit', { backend: 'process', env });
    expect((await post(explicit, '/v1/invoke/explicit/identity.mjs', 'x')).status).toBe(200);
    explicit.child.kill('SIGTERM');
    expect(await explicit.exited).toBe(0);
  });
});

describe.skipIf(skipDocker)('SIGTERM with Docker sandboxes', () => {
  it('leaves them running for the next server to adopt, unless --stop-sandboxes', async () => {
    requireDocker();
    const prefix = `sltest-${runId()}-`;
    const env = { SANDLET_CONTAINER_PREFIX: prefix };
    const container = async () => (await docker.listContainers({ filters: JSON.stringify({ name: [`${prefix}kept`] }) }))[0];
    try {
      const first = await serve('docker1', { backend: 'docker', env });
      expect((await post(first, '/v1/invoke/kept/identity.mjs', 'one')).status).toBe(200);
      const id = (await container())!.Id;
      // A second server on the same socket fails before it looks at any sandbox: the first keeps its own.
      const refused = await serveRefused(['--backend', 'docker', '--listen-socket', first.socket], env);
      expect(refused.code).toBe(1);
      expect((await container())?.State).toBe('running');
      expect((await container())?.Id).toBe(id);
      expect((await post(first, '/v1/invoke/kept/identity.mjs', 'still')).status).toBe(200);
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect((await container())?.Id).toBe(id);

      const second = await serve('docker2', { backend: 'docker', env, args: ['--stop-sandboxes'] });
      expect((await post(second, '/v1/invoke/kept/identity.mjs', 'two')).status).toBe(200);
      expect((await container())?.Id).toBe(id); // adopted, not replaced
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
      expect(await container()).toBeUndefined();
    } finally {
      for (const c of await docker.listContainers({ all: true, filters: JSON.stringify({ name: [prefix] }) })) await docker.getContainer(c.Id).remove({ force: true });
    }
  });
});
