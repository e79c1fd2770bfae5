import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, SAMPLES_DIR } from '../../src/package-root.js';
import { startServer, type SandletServer } from '../../src/server/server.js';
import { createToken } from '../../src/server/tokens.js';
import { stopChild } from '../helpers/proc.js';
import { tempDir } from '../helpers/fs.js';
import { requireS3, skipS3, startS3Env, UPSTREAM_KEY, type S3Env } from '../helpers/s3.js';
import { startSwift, type TestSwift } from '../helpers/swift.js';

const run = promisify(execFile);
const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

// The README's path from nothing to `aws s3 cp` of a transformed object, with the real CLI (dist/),
// and the admin API: both edit the root's files, and the running door follows them.
describe.skipIf(skipS3)('S3 access points from the CLI and the admin API', () => {
  const root = tempDir();
  let env: S3Env;
  let server: SandletServer;
  let admin: string;
  let operator: string;
  const sandlet = async (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(process.execPath, [BIN, ...args, '--root', root.dir], { encoding: 'utf8' });

  beforeAll(async () => {
    requireS3();
    await sandlet('deploy', path.join(SAMPLES_DIR, 'uppercase.mjs'));
    env = await startS3Env({ host_root: root.dir });
    await env.client(UPSTREAM_KEY).send(new PutObjectCommand({ Bucket: 'data', Key: 'cat.txt', Body: 'meow\n' }));
    admin = (await createToken(env.config.tokens_file, 'admin')).token;
    operator = (await createToken(env.config.tokens_file, 'operate')).token;
    server = await startServer({ gateway: env.gateway, config: { ...env.config, listen_socket: '', listen_tcp: '127.0.0.1:0' }, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await server?.close({ drainMs: 1000 });
    await env?.close();
    root.cleanup();
  });

  it('access-point create, s3-key create, then aws s3 cp reads the transformed object', async () => {
    await sandlet('access-point', 'create', 'shouty', '--bucket', 'data', '--storlet', 'uppercase.mjs', '--param', 'note=x');
    const created = await sandlet('s3-key', 'create', '--access-points', 'shouty');
    const m = /export AWS_ACCESS_KEY_ID=(\S+)\nexport AWS_SECRET_ACCESS_KEY=(\S+)\n/.exec(created.stdout);
    expect(m).not.toBeNull();
    const key = { accessKeyId: m![1]!, secretAccessKey: m![2]! };
    expect(created.stderr).not.toContain(key.secretAccessKey);
    expect(await env.aws(key, 's3', 'cp', 's3://shouty/cat.txt', '-')).toBe('MEOW\n');

    const ls = await sandlet('access-point', 'ls');
    expect(ls.stdout).toMatch(/^shouty +data +uppercase\.mjs +shouty +get +output +note=x$/m);
    const keys = await sandlet('s3-key', 'ls', '--json');
    expect(JSON.parse(keys.stdout)).toEqual([expect.objectContaining({ id: key.accessKeyId, accessPoints: ['shouty'] })]);
    expect(keys.stdout).not.toContain(key.secretAccessKey);
    expect(fs.statSync(env.config.s3_keys_file).mode & 0o777).toBe(0o600);

    await sandlet('s3-key', 'revoke', key.accessKeyId);
    // `s3 cp` asks HEAD first: S3 errors to HEAD have no body, so the CLI shows the status only.
    await expect(env.aws(key, 's3', 'cp', 's3://shouty/cat.txt', '-')).rejects.toThrow(/\(403\) when calling the HeadObject/);
    await expect(env.aws(key, 's3api', 'get-object', '--bucket', 'shouty', '--key', 'cat.txt', '/dev/null')).rejects.toThrow(/InvalidAccessKeyId/);
    await sandlet('access-point', 'rm', 'shouty');
    expect((await sandlet('access-point', 'ls', '--json')).stdout.trim()).toBe('[]');
    await expect(sandlet('access-point', 'create', 'Bad_Name', '--bucket', 'data', '--storlet', 'uppercase.mjs')).rejects.toThrow(/must be a bucket name/);
  });

  it('the admin API creates, lists and removes access points (admin role only)', async () => {
    const base = server.addresses.find((a) => a.startsWith('http'))!;
    const put = (token: string): Promise<Response> =>
      fetch(`${base}/v1/access-points/loud`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ bucket: 'data', storlet: 'uppercase.mjs' }) });
    expect((await put(operator)).status).toBe(403);
    const r = await put(admin);
    expect(r.status).toBe(201);
    expect(await r.json()).toMatchObject({ name: 'loud', bucket: 'data', storlet: 'uppercase.mjs', scope: 'loud', on: ['get'] });
    const list = (await (await fetch(`${base}/v1/access-points`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { accessPoints: { name: string }[] };
    expect(list.accessPoints.map((a) => a.name)).toEqual(['loud']);
    const key = env.key(['loud']);
    const got = await env.client(key, { maxAttempts: 1 }).send(new GetObjectCommand({ Bucket: 'loud', Key: 'cat.txt' }));
    expect(await got.Body!.transformToString()).toBe('MEOW\n');
    const bad = await fetch(`${base}/v1/access-points/loud`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` }, body: JSON.stringify({ bucket: 'data', storlet: '../x' }) });
    expect(bad.status).toBe(400);
    expect((await fetch(`${base}/v1/access-points/loud`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })).status).toBe(204);
    expect((await fetch(`${base}/v1/access-points/loud`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })).status).toBe(404);
  });
});

/** The shell block of the README's "S3 access points" section, line by line (continuations joined). */
function readmeCommands(): string[] {
  const readme = fs.readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## S3 access points'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  return block.replace(/\\\n\s*/g, '').split('\n').filter((l) => l.trim());
}

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  srv.close();
  await once(srv, 'close');
  return port;
}

// The README's five commands as a new user runs them, from the repository: the real `sandlet
// serve --upstream`, the real CLI, the real aws CLI, a real Swift s3api behind.
describe.skipIf(skipS3)('README: S3 access points', () => {
  let swift: TestSwift;
  let serve: ChildProcess | undefined;
  const root = tempDir();
  const home = tempDir();

  beforeAll(async () => {
    requireS3();
    swift = await startSwift();
  });
  afterAll(async () => {
    await stopChild(serve);
    await swift?.stop();
    root.cleanup();
    home.cleanup();
  });

  it('takes a new user from nothing to aws s3 cp of a transformed object', async () => {
    const port = await freePort();
    const lines = readmeCommands().map((l) => l.replaceAll('/tmp/sl', root.dir).replaceAll('127.0.0.1:8081', `127.0.0.1:${port}`).replaceAll('npx sandlet', `"${process.execPath}" ${BIN}`));
    expect(lines).toHaveLength(5);
    const env = { PATH: process.env.PATH, HOME: home.dir, UPSTREAM: swift.url, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
    const sh = async (cmd: string, extra: Record<string, string> = {}): Promise<string> => (await run('bash', ['-c', cmd], { cwd: PACKAGE_ROOT, env: { ...env, ...extra }, encoding: 'utf8' })).stdout;
    // The upstream as the README prepares it.
    const upstreamUser = { AWS_ACCESS_KEY_ID: 'test:tester', AWS_SECRET_ACCESS_KEY: 'testing' };
    await sh('aws --endpoint-url $UPSTREAM --region us-east-1 s3 mb s3://data && aws --endpoint-url $UPSTREAM --region us-east-1 s3 cp samples/sample.txt s3://data/', upstreamUser);

    const serveLine = lines[0]!.replace(/\s*&\s*$/, '');
    expect(serveLine).toMatch(/serve --upstream \$UPSTREAM/);
    serve = spawn('bash', ['-c', `exec env ${serveLine}`], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    serve.stderr!.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      serve!.stderr!.on('data', (d: string) => {
        err += d;
        if (err.includes('front door')) resolve();
      });
      serve!.once('exit', (code) => reject(new Error(`sandlet serve exited ${code}: ${err}`)));
    });
    await sh(lines[1]!);
    await sh(lines[2]!);
    const out = await sh(`${lines[3]!}\n${lines[4]!}`);
    expect(out).toBe(fs.readFileSync(path.join(SAMPLES_DIR, 'sample.txt'), 'utf8').toUpperCase());
  });
});
