import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartSpoolDir } from '../../../src/proxy/s3/multipart-spool.js';
import { openFds, tempDir } from '../../helpers/fs.js';
import { requireS3, s3Error, skipS3, startS3Env, UPSTREAM_KEY, type S3Env } from '../../helpers/s3.js';
import { startTap } from '../../helpers/s3-tap.js';

const run = promisify(execFile);

const MiB = 1024 * 1024;

/** Lower-case text whose numbered lines show any part out of place after upper-casing. */
function text(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `line ${String(i).padStart(8, '0')} the quick brown fox jumps over the lazy dog\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

// Multipart uploads and DeleteObject on access points, with the aws CLI, @aws-sdk/lib-storage and
// @aws-sdk/client-s3, on a real Swift s3api: what is stored is the storlet's output of the whole.
describe.skipIf(skipS3)('S3 access points: multipart uploads and DeleteObject', () => {
  let env: S3Env;
  let key: { accessKeyId: string; secretAccessKey: string };
  let sdk: S3Client;
  let upstream: S3Client;
  let spoolDir: string;
  const work = tempDir();
  const spooled = (): string[] => fs.readdirSync(spoolDir, { recursive: true }) as string[];
  /** Spool files, and fds of this process (the door runs here) still open on them. */
  const leftovers = (): string[] => [...spooled(), ...openFds().filter((f) => f.includes(spoolDir))];
  const stored = async (k: string, bucket = 'uploads'): Promise<Buffer> => Buffer.from(await (await upstream.send(new GetObjectCommand({ Bucket: bucket, Key: k }))).Body!.transformToByteArray());

  beforeAll(async () => {
    requireS3();
    // A Complete answers its 200 (then spaces) after 5 ms: every long Complete below takes that path.
    env = await startS3Env({ s3_multipart_spool_max_bytes: '30m' }, { completeKeepAliveMs: 5 });
    env.accessPoint({ name: 'upper-in', storlet: 'uppercase.mjs', bucket: 'uploads', on: 'get,put' });
    env.accessPoint({ name: 'upper-ro', storlet: 'uppercase.mjs', bucket: 'uploads' });
    env.accessPoint({ name: 'broken-in', storlet: 'misbehave.mjs', params: { mode: 'fail-after' }, bucket: 'uploads', on: 'put' });
    env.accessPoint({ name: 'del', storlet: 'identity.mjs', on: 'get,delete' });
    key = env.key(['upper-in', 'upper-ro', 'broken-in', 'del']);
    sdk = env.client(key, { maxAttempts: 1 });
    upstream = env.client(UPSTREAM_KEY);
    spoolDir = multipartSpoolDir(env.config.host_root);
  });
  afterAll(async () => {
    await env?.close();
    work.cleanup();
  });

  it('aws s3 cp of a 20 MiB file (in 8 MiB parts) stores the transform of the whole file', async () => {
    const data = text(20 * MiB + 12345);
    const file = path.join(work.dir, 'big.txt');
    fs.writeFileSync(file, data);
    await env.aws(key, 's3', 'cp', file, 's3://upper-in/big.txt');
    const got = await stored('big.txt');
    expect(got.length).toBe(data.length);
    expect(got.equals(Buffer.from(data.toString('latin1').toUpperCase(), 'latin1'))).toBe(true);
    expect(leftovers()).toEqual([]);
    expect(fs.statSync(spoolDir).mode & 0o777).toBe(0o700);
  });

  it('lib-storage Upload of a stream: parts in order, metadata and content type reach the storlet', async () => {
    const data = text(12 * MiB + 7);
    const upload = new Upload({
      client: sdk,
      params: { Bucket: 'upper-in', Key: 'sdk/upload.txt', Body: Readable.from([data.subarray(0, 3 * MiB), data.subarray(3 * MiB)]), ContentType: 'text/x-lower', Metadata: { shade: 'dark' } },
      partSize: 5 * MiB,
      queueSize: 2,
    });
    const result = await upload.done();
    expect(result.Key).toBe('sdk/upload.txt');
    const head = await upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'sdk/upload.txt' }));
    expect(result.ETag).toBe(head.ETag);
    expect(head.ContentType).toBe('text/x-lower');
    expect(head.Metadata).toMatchObject({ shade: 'dark', 'storlet-transform': 'uppercase' });
    expect((await stored('sdk/upload.txt')).equals(Buffer.from(data.toString('latin1').toUpperCase(), 'latin1'))).toBe(true);
    expect(leftovers()).toEqual([]);
  });

  it('ListParts, ListMultipartUploads, a wrong ETag (InvalidPart), parts out of order, a small part, another key, Abort', async () => {
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: 'upper-in', Key: 'manual.txt' }));
    expect(UploadId).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const p1 = await sdk.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, PartNumber: 1, Body: Buffer.alloc(5 * MiB, 'a') }));
    const p2 = await sdk.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, PartNumber: 2, Body: 'small' }));
    // A stream goes aws-chunked with a trailing checksum (the SDK's default), as PutObject bodies do.
    const tap = await startTap(env.door.url);
    let p3: { ETag?: string };
    try {
      const viaTap = env.client(key, { maxAttempts: 1 }, tap.url);
      p3 = await viaTap.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, PartNumber: 3, Body: Readable.from([Buffer.from('ta'), Buffer.from('il')]), ContentLength: 4 }));
      expect(tap.sent()).toMatch(/content-encoding: aws-chunked/i);
    } finally {
      await tap.close();
    }
    // A presigned UploadPart, as curl sends it, replaces part 2 (same content: same ETag).
    const file = path.join(work.dir, 'small.txt');
    fs.writeFileSync(file, 'small');
    const url = await getSignedUrl(sdk, new UploadPartCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, PartNumber: 2 }), { expiresIn: 60 });
    const { stdout } = await run('curl', ['-s', '-i', '-H', 'Expect:', '-T', file, url], { encoding: 'utf8' });
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout.toLowerCase()).toContain(`etag: ${p2.ETag}`);
    const parts = await sdk.send(new ListPartsCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId }));
    expect(parts.Parts!.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([[1, 5 * MiB, p1.ETag], [2, 5, p2.ETag], [3, 4, p3.ETag]]);
    const listed = await sdk.send(new ListMultipartUploadsCommand({ Bucket: 'upper-in' }));
    expect(listed.Uploads!.map((u) => [u.Key, u.UploadId])).toEqual([['manual.txt', UploadId]]);

    const complete = (Parts: { PartNumber: number; ETag: string | undefined }[], client = sdk): Promise<unknown> =>
      client.send(new CompleteMultipartUploadCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, MultipartUpload: { Parts } }));
    expect(await s3Error(complete([{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: '"0123456789abcdef0123456789abcdef"' }]))).toMatchObject({ name: 'InvalidPart', status: 400 });
    expect(await s3Error(complete([{ PartNumber: 2, ETag: p2.ETag }, { PartNumber: 1, ETag: p1.ETag }]))).toMatchObject({ name: 'InvalidPartOrder', status: 400 });
    expect(await s3Error(complete([{ PartNumber: 2, ETag: p2.ETag }, { PartNumber: 3, ETag: p3.ETag }]))).toMatchObject({ name: 'EntityTooSmall', status: 400 });

    // Another key allowed on the same access point may not touch this upload, nor see it.
    const other = env.client(env.key(['upper-in']), { maxAttempts: 1 });
    expect(await s3Error(complete([{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 3, ETag: p3.ETag }], other))).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect(await s3Error(other.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId, PartNumber: 4, Body: 'mine' })))).toMatchObject({ name: 'AccessDenied' });
    expect(await s3Error(other.send(new AbortMultipartUploadCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId })))).toMatchObject({ name: 'AccessDenied' });
    expect((await other.send(new ListMultipartUploadsCommand({ Bucket: 'upper-in' }))).Uploads ?? []).toEqual([]);
    // The id is bound to its key: another key name does not find it.
    expect(await s3Error(sdk.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'elsewhere.txt', UploadId, PartNumber: 1, Body: 'x' })))).toMatchObject({ name: 'NoSuchUpload', status: 404 });
    // A get-only access point takes no uploads.
    expect(await s3Error(sdk.send(new CreateMultipartUploadCommand({ Bucket: 'upper-ro', Key: 'x' })))).toMatchObject({ name: 'AccessDenied', status: 403 });

    expect(spooled().length).toBeGreaterThan(0);
    await sdk.send(new AbortMultipartUploadCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId }));
    expect(leftovers()).toEqual([]);
    expect(await s3Error(sdk.send(new ListPartsCommand({ Bucket: 'upper-in', Key: 'manual.txt', UploadId })))).toMatchObject({ name: 'NoSuchUpload' });
    expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'manual.txt' })))).status).toBe(404);
  });

  it('a part that does not fit the spool (s3_multipart_spool_max_bytes) is refused with a clear error, and fits once space is freed', async () => {
    const a = await sdk.send(new CreateMultipartUploadCommand({ Bucket: 'upper-in', Key: 'a.bin' }));
    const b = await sdk.send(new CreateMultipartUploadCommand({ Bucket: 'upper-in', Key: 'b.bin' }));
    await sdk.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'a.bin', UploadId: a.UploadId, PartNumber: 1, Body: Buffer.alloc(16 * MiB, 'a') }));
    const part = (): Promise<unknown> => sdk.send(new UploadPartCommand({ Bucket: 'upper-in', Key: 'b.bin', UploadId: b.UploadId, PartNumber: 1, Body: Buffer.alloc(16 * MiB, 'b') }));
    const full = await s3Error(part());
    expect(full).toMatchObject({ name: 'ServiceUnavailable', status: 503 });
    expect(full.message).toMatch(/multipart spool is full \(s3_multipart_spool_max_bytes/);
    expect((await sdk.send(new ListPartsCommand({ Bucket: 'upper-in', Key: 'b.bin', UploadId: b.UploadId }))).Parts ?? []).toEqual([]);
    await sdk.send(new AbortMultipartUploadCommand({ Bucket: 'upper-in', Key: 'a.bin', UploadId: a.UploadId }));
    await part();
    await sdk.send(new AbortMultipartUploadCommand({ Bucket: 'upper-in', Key: 'b.bin', UploadId: b.UploadId }));
    expect(leftovers()).toEqual([]);
  });

  it('a storlet failing during a long Complete: the error comes in the 200 body, nothing is stored, the upload stays until aborted', async () => {
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: 'broken-in', Key: 'fails.txt' }));
    const p1 = await sdk.send(new UploadPartCommand({ Bucket: 'broken-in', Key: 'fails.txt', UploadId, PartNumber: 1, Body: Buffer.alloc(5 * MiB, 'x') }));
    const p2 = await sdk.send(new UploadPartCommand({ Bucket: 'broken-in', Key: 'fails.txt', UploadId, PartNumber: 2, Body: 'end' }));
    const e = await s3Error(sdk.send(new CompleteMultipartUploadCommand({ Bucket: 'broken-in', Key: 'fails.txt', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } })));
    // The SDK reads an <Error> in a 200 body as a 503 with the body's code (the storlet fails
    // after 20 ms of output, well after the 5 ms keep-alive began).
    expect(e).toMatchObject({ name: 'StorletFailed', status: 503 });
    expect(e.message).toMatch(/disk on fire/);
    expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'fails.txt' })))).status).toBe(404);
    expect((await sdk.send(new ListPartsCommand({ Bucket: 'broken-in', Key: 'fails.txt', UploadId }))).Parts).toHaveLength(2);
    await sdk.send(new AbortMultipartUploadCommand({ Bucket: 'broken-in', Key: 'fails.txt', UploadId }));
    expect(leftovers()).toEqual([]);
  });

  it('DeleteObject where the access point allows delete, AccessDenied elsewhere; CopyObject is NotImplemented', async () => {
    await upstream.send(new PutObjectCommand({ Bucket: 'data', Key: 'doomed.txt', Body: 'bye' }));
    await upstream.send(new PutObjectCommand({ Bucket: 'uploads', Key: 'kept.txt', Body: 'stay' }));
    await env.aws(key, 's3', 'rm', 's3://del/doomed.txt');
    expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'data', Key: 'doomed.txt' })))).status).toBe(404);
    // S3 answers 204 for a key that is not there.
    expect((await sdk.send(new DeleteObjectCommand({ Bucket: 'del', Key: 'never-was.txt' }))).$metadata.httpStatusCode).toBe(204);
    await expect(env.aws(key, 's3', 'rm', 's3://upper-in/kept.txt')).rejects.toThrow(/AccessDenied/);
    expect(await s3Error(sdk.send(new DeleteObjectCommand({ Bucket: 'upper-ro', Key: 'kept.txt' })))).toMatchObject({ name: 'AccessDenied', status: 403 });
    expect((await stored('kept.txt')).toString()).toBe('stay');
    const copy = await s3Error(sdk.send(new CopyObjectCommand({ Bucket: 'upper-in', Key: 'copy.txt', CopySource: 'upper-in/kept.txt' })));
    expect(copy).toMatchObject({ name: 'NotImplemented', status: 501 });
    expect(copy.message).toMatch(/CopyObject/);
  });
});
