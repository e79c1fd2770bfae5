import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, SAMPLES_DIR } from '../../src/package-root.js';
import { startServer, type SandletServer } from '../../src/server/server.js';
import { createToken } from '../../src/server/tokens.js';
import { tempDir } from '../helpers/fs.js';
import { startS3Env, UPSTREAM_KEY, type S3Env } from '../helpers/s3.js';
import { requireSwift, skipSwift } from '../helpers/swift.js';

const run = promisify(execFile);
const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

// The README's path from nothing to `aws s3 cp` of a transformed object, with the real CLI (dist/),
// and the admin API: both edit the root's files, and the running door follows them.
describe.skipIf(skipSwift)('S3 access points from the CLI and the admin API', () => {
  const root = tempDir();
  let env: S3Env;
  let server: SandletServer;
  let admin: string;
  let operator: string;
  const sandlet = async (...args: string[]): Promise<{ stdout: string; stderr: string }> => run(process.execPath, [BIN, ...args, '--root', root.dir], { encoding: 'utf8' });

  beforeAll(async () => {
    requireSwift();
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
