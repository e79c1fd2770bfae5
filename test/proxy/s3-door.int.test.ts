import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Env, UPSTREAM_KEY, type S3Env } from '../helpers/s3.js';
import { requireSwift, skipSwift } from '../helpers/swift.js';
import { tempDir } from '../helpers/fs.js';

const run = promisify(execFile);

/** The S3 error code of a failed SDK call. */
async function s3Code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { name: string }).name;
  }
  throw new Error('the request succeeded');
}

// Access points on a real Swift s3api, driven by Debian's aws CLI, @aws-sdk/client-s3 with its
// defaults, and curl.
describe.skipIf(skipSwift)('S3 access points', () => {
  let env: S3Env;
  let key: { accessKeyId: string; secretAccessKey: string };
  let sdk: S3Client;
  let upstream: S3Client;
  const work = tempDir();

  beforeAll(async () => {
    requireSwift();
    env = await startS3Env();
    env.accessPoint({ name: 'upper', storlet: 'uppercase.mjs' });
    env.accessPoint({ name: 'same', storlet: 'identity.mjs', on: 'get,put' });
    env.accessPoint({ name: 'upper-in', storlet: 'uppercase.mjs', bucket: 'uploads', on: 'get,put' });
    key = env.key(['upper', 'same', 'upper-in']);
    sdk = env.client(key);
    upstream = env.client(UPSTREAM_KEY);
    await upstream.send(new PutObjectCommand({ Bucket: 'data', Key: 'hello.txt', Body: 'hello, s3 world\n', ContentType: 'text/plain', Metadata: { color: 'blue' } }));
  });
  afterAll(async () => {
    await env?.close();
    work.cleanup();
  });

  it('aws s3 cp of an access point object returns the transformed object', async () => {
    const out = await env.aws(key, 's3', 'cp', 's3://upper/hello.txt', '-');
    expect(out).toBe('HELLO, S3 WORLD\n');
  });

  it('SDK GetObject: transformed body, metadata as x-amz-meta-*, Content-Type', async () => {
    const r = await sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }));
    expect(await r.Body!.transformToString()).toBe('HELLO, S3 WORLD\n');
    expect(r.Metadata).toMatchObject({ color: 'blue', 'storlet-transform': 'uppercase' });
    expect(r.ContentType).toBe('text/plain');
  });

  it('SDK PutObject with its defaults (aws-chunked) through a put access point stores the transformed upload', async () => {
    await sdk.send(new PutObjectCommand({ Bucket: 'upper-in', Key: 'in.txt', Body: 'shout this' }));
    const r = await upstream.send(new GetObjectCommand({ Bucket: 'uploads', Key: 'in.txt' }));
    expect(await r.Body!.transformToString()).toBe('SHOUT THIS');
  });
});
