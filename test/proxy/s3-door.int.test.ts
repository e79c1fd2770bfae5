import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import http from 'node:http';
import { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { createChecksum } from '../../src/proxy/s3/checksums.js';
import { revokeS3Key } from '../../src/proxy/s3/s3-keys.js';
import { chunkStringToSign, sha256Hex, signHex, signingKey, trailerStringToSign } from '../../src/proxy/s3/sigv4.js';
import { tempDir } from '../helpers/fs.js';
import { requireS3, s3Error, skipS3, startS3Env, UPSTREAM_KEY, type S3Env } from '../helpers/s3.js';
import { startTap } from '../helpers/s3-tap.js';

const run = promisify(execFile);

/** curl's status line and body. */
async function curl(url: string, ...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run('curl', ['-s', '-w', '\n%{http_code}', ...args, url], { encoding: 'utf8' });
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
}

const HELLO = 'hello, s3 world\n';
/** Over the CLI's 8 MiB multipart threshold: `s3 cp` then reads it in ranged parts. */
const BIG = Buffer.alloc(9 * 1024 * 1024 + 123);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + (i >> 12)) & 0xff;

// Access points on a real Swift s3api, driven by Debian's aws CLI, @aws-sdk/client-s3 with its
// defaults, and curl.
describe.skipIf(skipS3)('S3 access points', () => {
  let env: S3Env;
  let key: { accessKeyId: string; secretAccessKey: string };
  let sdk: S3Client;
  let upstream: S3Client;
  const work = tempDir();
  const logs: string[] = [];

  beforeAll(async () => {
    requireS3();
    env = await startS3Env({ s3_virtual_host: 's3.test' }, { logs });
    env.accessPoint({ name: 'upper', storlet: 'uppercase.mjs' });
    env.accessPoint({ name: 'same', storlet: 'identity.mjs', on: 'get,put' });
    env.accessPoint({ name: 'same-ranged', storlet: 'identity.mjs', range: 'storlet' });
    env.accessPoint({ name: 'upper-in', storlet: 'uppercase.mjs', bucket: 'uploads', on: 'get,put' });
    env.accessPoint({ name: 'broken', storlet: 'misbehave.mjs', params: { mode: 'fail-before' } });
    env.accessPoint({ name: 'broken-late', storlet: 'misbehave.mjs', params: { mode: 'fail-after' } });
    env.accessPoint({ name: 'broken-small', storlet: 'misbehave.mjs', params: { mode: 'fail-after-small' } });
    env.accessPoint({ name: 'nobucket', storlet: 'identity.mjs', bucket: 'no-such-bucket' });
    env.accessPoint({ name: 'echo', storlet: 'metadata-echo.mjs', params: { size: '64', mode: 'fit' }, scope: 'echo-scope', on: 'get,put' });
    key = env.key(['upper', 'same', 'same-ranged', 'upper-in', 'broken', 'broken-late', 'broken-small', 'nobucket', 'echo']);
    sdk = env.client(key, { maxAttempts: 1 });
    upstream = env.client(UPSTREAM_KEY);
    await upstream.send(new PutObjectCommand({ Bucket: 'data', Key: 'hello.txt', Body: HELLO, ContentType: 'text/plain', Metadata: { color: 'blue' } }));
    await upstream.send(new PutObjectCommand({ Bucket: 'data', Key: 'dir/a b+c.txt', Body: 'odd name' }));
    await upstream.send(new PutObjectCommand({ Bucket: 'data', Key: 'big.bin', Body: BIG }));
  });
  afterAll(async () => {
    await env?.close();
    work.cleanup();
  });

  describe('reads with the aws CLI', () => {
    it('aws s3 cp returns the transformed object', async () => {
      expect(await env.aws(key, 's3', 'cp', 's3://upper/hello.txt', '-')).toBe(HELLO.toUpperCase());
      // A key with a space, a plus and a slash: the signature and the upstream path agree.
      expect(await env.aws(key, 's3', 'cp', 's3://upper/dir/a b+c.txt', '-')).toBe('ODD NAME');
    });

    it('aws s3 cp of an object over the multipart threshold (HEAD, then ranged GETs) gets it whole', async () => {
      const out = path.join(work.dir, 'big.out');
      await env.aws(key, 's3', 'cp', 's3://same/big.bin', out);
      expect(fs.readFileSync(out).equals(BIG)).toBe(true);
    });

    it('aws s3 ls lists the access point', async () => {
      const out = await env.aws(key, 's3', 'ls', 's3://upper/');
      expect(out).toMatch(/ 16 hello\.txt$/m);
      expect(out).toMatch(/PRE dir\/$/m);
    });

    it('s3api get-object --range applies the range to the transformed output', async () => {
      const out = path.join(work.dir, 'range.out');
      const meta = JSON.parse(await env.aws(key, 's3api', 'get-object', '--bucket', 'upper', '--key', 'hello.txt', '--range', 'bytes=7-8', out)) as { ContentRange: string; ContentLength: number };
      expect(fs.readFileSync(out, 'utf8')).toBe('S3');
      expect(meta.ContentRange).toBe(`bytes 7-8/${HELLO.length}`);
      expect(meta.ContentLength).toBe(2);
    });

    it('s3api head-object gives the transformed length and metadata', async () => {
      const head = JSON.parse(await env.aws(key, 's3api', 'head-object', '--bucket', 'upper', '--key', 'hello.txt')) as { ContentLength: number; ContentType: string; Metadata: Record<string, string> };
      expect(head.ContentLength).toBe(HELLO.length);
      expect(head.ContentType).toBe('text/plain');
      expect(head.Metadata).toMatchObject({ color: 'blue', 'storlet-transform': 'uppercase' });
    });

    it('s3api list-objects-v2 lists the upstream bucket under the access point name', async () => {
      const list = JSON.parse(await env.aws(key, 's3api', 'list-objects-v2', '--no-paginate', '--bucket', 'upper', '--prefix', 'dir/')) as { Name: string; Contents: { Key: string }[] };
      expect(list.Name).toBe('upper');
      expect(list.Contents.map((c) => c.Key)).toEqual(['dir/a b+c.txt']);
      expect(JSON.parse(await env.aws(key, 's3api', 'get-bucket-location', '--bucket', 'upper'))).toEqual({ LocationConstraint: null });
      expect(await env.aws(key, 's3api', 'head-bucket', '--bucket', 'upper')).toMatch(/us-east-1|^$/);
      await expect(env.aws(key, 's3api', 'head-bucket', '--bucket', 'nobucket')).rejects.toThrow(/404/);
      const v1 = await sdk.send(new ListObjectsCommand({ Bucket: 'upper' }));
      expect(v1.Name).toBe('upper');
      expect(v1.Contents!.map((c) => c.Key)).toContain('hello.txt');
    });

    it('aws s3 cp uploads through a put access point: the storlet output is what is stored', async () => {
      const file = path.join(work.dir, 'up.txt');
      fs.writeFileSync(file, 'from the cli\n');
      await env.aws(key, 's3', 'cp', file, 's3://upper-in/cli.txt');
      const r = await upstream.send(new GetObjectCommand({ Bucket: 'uploads', Key: 'cli.txt' }));
      expect(await r.Body!.transformToString()).toBe('FROM THE CLI\n');
    });
  });

  describe('the SDK with its defaults', () => {
    it('GetObject: transformed body, metadata as x-amz-meta-*, Content-Type', async () => {
      const r = await sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }));
      expect(await r.Body!.transformToString()).toBe(HELLO.toUpperCase());
      expect(r.Metadata).toMatchObject({ color: 'blue', 'storlet-transform': 'uppercase' });
      expect(r.ContentType).toBe('text/plain');
    });

    it('GetObject of a large object: pumped into the storlet and out to the client, byte for byte', async () => {
      for (let i = 0; i < 2; i++) {
        const r = await sdk.send(new GetObjectCommand({ Bucket: 'same', Key: 'big.bin' }));
        expect(Buffer.from(await r.Body!.transformToByteArray()).equals(BIG)).toBe(true);
      }
    });

    it("the access point's params and the object's metadata reach the storlet, in the access point's scope", async () => {
      const r = await sdk.send(new GetObjectCommand({ Bucket: 'echo', Key: 'hello.txt' }));
      expect(JSON.parse(await r.Body!.transformToString())).toEqual({ metadata: { Color: 'blue', 'Content-Type': 'text/plain' }, params: { size: '64', mode: 'fit' }, range: null });
      expect(r.Metadata).toMatchObject({ color: 'blue', 'param-size': '64', 'param-mode': 'fit' });
      expect(env.gateway.findSandbox('echo-scope')).toBeDefined();
      // An upload's x-amz-meta-* and Content-Type are its input metadata.
      await sdk.send(new PutObjectCommand({ Bucket: 'echo', Key: 'meta-in.txt', Body: 'x', ContentType: 'text/x-test', Metadata: { shade: 'dark' } }));
      const stored = await upstream.send(new HeadObjectCommand({ Bucket: 'data', Key: 'meta-in.txt' }));
      expect(stored.Metadata).toMatchObject({ shade: 'dark', 'param-size': '64' });
      expect(stored.ContentType).toBe('text/x-test');
    });

    it('PutObject of a stream goes aws-chunked with a trailing checksum; the transformed upload is stored', async () => {
      const tap = await startTap(env.door.url);
      try {
        const viaTap = env.client(key, { maxAttempts: 1 }, tap.url);
        await viaTap.send(new PutObjectCommand({ Bucket: 'upper-in', Key: 'in.txt', Body: Readable.from([Buffer.from('shout '), Buffer.from('this')]), ContentLength: 10 }));
        expect(tap.sent()).toMatch(/x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER/i);
        expect(tap.sent()).toMatch(/content-encoding: aws-chunked/i);
        expect(tap.sent()).toMatch(/x-amz-trailer: x-amz-checksum-crc32/i);
      } finally {
        await tap.close();
      }
      const r = await upstream.send(new GetObjectCommand({ Bucket: 'uploads', Key: 'in.txt' }));
      expect(await r.Body!.transformToString()).toBe('SHOUT THIS');
    });

    it('a body changed on the way fails its checksum (BadDigest) and nothing is stored', async () => {
      const tap = await startTap(env.door.url, { from: 'tamper-me', to: 'tamper-ME' });
      try {
        const viaTap = env.client(key, { maxAttempts: 1 }, tap.url);
        const e = await s3Error(viaTap.send(new PutObjectCommand({ Bucket: 'upper-in', Key: 'tampered.txt', Body: Readable.from([Buffer.from('please tamper-me')]), ContentLength: 16 })));
        expect(e.name).toBe('BadDigest');
        expect(e.status).toBe(400);
      } finally {
        await tap.close();
      }
      expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'tampered.txt' })))).status).toBe(404);
    });

    it('a body whose signed x-amz-content-sha256 does not match is refused (XAmzContentSHA256Mismatch)', async () => {
      // The aws CLI signs the payload hash on plain http; the tap changes the body after signing.
      const tap = await startTap(env.door.url, { from: 'tamper-me', to: 'tamper-ME' });
      const file = path.join(work.dir, 'tamper.txt');
      fs.writeFileSync(file, 'please tamper-me');
      try {
        const err = await run('/usr/bin/aws', ['--endpoint-url', tap.url, '--region', 'us-east-1', 's3api', 'put-object', '--bucket', 'upper-in', '--key', 'tampered2.txt', '--body', file], {
          env: { PATH: process.env.PATH, HOME: env.root, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey, AWS_MAX_ATTEMPTS: '1', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
        }).then(() => '', (e: { stderr: string }) => e.stderr);
        expect(tap.sent()).toMatch(/x-amz-content-sha256: [0-9a-f]{64}/i);
        expect(err).toMatch(/XAmzContentSHA256Mismatch/);
      } finally {
        await tap.close();
      }
      expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'tampered2.txt' })))).status).toBe(404);
    });

    it('signed aws-chunked uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) are verified chunk by chunk', async () => {
      // No client at hand sends these by default: the request is signed by the AWS SDK's signer
      // (the seed), its chunks as AWS documents (the unit test pins that to AWS's example values).
      const send = async (objectKey: string, chunks: string[], opts: { trailer?: boolean; tamper?: boolean } = {}): Promise<Response> => {
        const url = new URL(`${env.door.url}/upper-in/${objectKey}`);
        const mode = opts.trailer ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
        const data = chunks.join('');
        const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': mode, 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length) };
        if (opts.trailer) headers['x-amz-trailer'] = 'x-amz-checksum-crc32';
        const signer = new SignatureV4({ credentials: key, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false });
        const when = new Date();
        const signed = await signer.sign(new HttpRequest({ method: 'PUT', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, headers }), { signingDate: when });
        const amzDate = signed.headers['x-amz-date']!;
        const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
        const kSigning = signingKey(key.secretAccessKey, amzDate.slice(0, 8), 'us-east-1', 's3');
        let previous = /Signature=([0-9a-f]{64})/.exec(signed.headers.authorization!)![1]!;
        let body = '';
        for (const c of [...chunks, '']) {
          previous = signHex(kSigning, chunkStringToSign(amzDate, scope, previous, sha256Hex(c)));
          body += `${c.length.toString(16)};chunk-signature=${previous}\r\n${opts.tamper && c === chunks[1] ? c.toUpperCase() : c}${c ? '\r\n' : ''}`;
        }
        if (opts.trailer) {
          const crc = createChecksum('crc32');
          crc.update(Buffer.from(data));
          const trailer = `x-amz-checksum-crc32:${crc.digest()}\n`;
          body += `${trailer.replace('\n', '\r\n')}x-amz-trailer-signature:${signHex(kSigning, trailerStringToSign(amzDate, scope, previous, sha256Hex(trailer)))}\r\n`;
        }
        body += '\r\n';
        // fetch sets Host (signed: the URL's) and Content-Length (not signed) itself.
        const { host: _host, ...sent } = signed.headers;
        return fetch(url, { method: 'PUT', headers: sent, body });
      };
      const stored = async (k: string): Promise<string> => (await (await upstream.send(new GetObjectCommand({ Bucket: 'uploads', Key: k }))).Body!.transformToString());
      expect((await send('signed.txt', ['first chunk, ', 'second chunk'])).status).toBe(200);
      expect(await stored('signed.txt')).toBe('FIRST CHUNK, SECOND CHUNK');
      expect((await send('signed-trailer.txt', ['with ', 'a trailer'], { trailer: true })).status).toBe(200);
      expect(await stored('signed-trailer.txt')).toBe('WITH A TRAILER');
      const tampered = await send('signed-tampered.txt', ['first chunk, ', 'second chunk'], { tamper: true });
      expect(tampered.status).toBe(403);
      expect(await tampered.text()).toMatch(/<Code>SignatureDoesNotMatch<\/Code>/);
      expect((await s3Error(upstream.send(new HeadObjectCommand({ Bucket: 'uploads', Key: 'signed-tampered.txt' })))).status).toBe(404);
    });

    it('Range forms, partNumber, and a range handed to a storlet that honours one', async () => {
      const get = async (Bucket: string, extra: { Range?: string; PartNumber?: number }): Promise<{ body: string; range: string | undefined }> => {
        const r = await sdk.send(new GetObjectCommand({ Bucket, Key: 'hello.txt', ...extra }));
        return { body: await r.Body!.transformToString(), range: r.ContentRange };
      };
      expect(await get('upper', { Range: 'bytes=-6' })).toEqual({ body: 'WORLD\n', range: 'bytes 10-15/16' });
      expect(await get('upper', { Range: 'bytes=10-' })).toEqual({ body: 'WORLD\n', range: 'bytes 10-15/16' });
      expect(await get('upper', { Range: 'bytes=10-1000' })).toEqual({ body: 'WORLD\n', range: 'bytes 10-15/16' });
      expect(await get('upper', { PartNumber: 1 })).toEqual({ body: HELLO.toUpperCase(), range: 'bytes 0-15/16' });
      expect(await get('same-ranged', { Range: 'bytes=0-4' })).toEqual({ body: 'hello', range: 'bytes 0-4/16' });
      expect((await s3Error(get('upper', { Range: 'bytes=16-' }))).name).toBe('InvalidRange');
      expect((await s3Error(get('upper', { PartNumber: 2 }))).name).toBe('InvalidPartNumber');
    });

    it('conditional headers are checked against the upstream object', async () => {
      const head = await upstream.send(new HeadObjectCommand({ Bucket: 'data', Key: 'hello.txt' }));
      const r = await sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt', IfMatch: head.ETag }));
      expect(await r.Body!.transformToString()).toBe(HELLO.toUpperCase());
      expect((await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt', IfMatch: '"0123456789abcdef0123456789abcdef"' })))).status).toBe(412);
      expect((await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt', IfNoneMatch: head.ETag })))).status).toBe(304);
      expect((await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt', IfModifiedSince: new Date(Date.now() + 3600_000) })))).status).toBe(304);
    });

    it('NoSuchKey, NoSuchBucket, and PutObject on a read-only access point', async () => {
      expect(await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'upper', Key: 'nothing-here' })))).toMatchObject({ name: 'NoSuchKey', status: 404 });
      expect(await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'nobucket', Key: 'x' })))).toMatchObject({ name: 'NoSuchBucket', status: 404 });
      expect(await s3Error(sdk.send(new PutObjectCommand({ Bucket: 'upper', Key: 'x', Body: 'no' })))).toMatchObject({ name: 'AccessDenied', status: 403 });
      // Sandlet reads with its own key: no key may step into another bucket.
      const escape = await curl(await getSignedUrl(sdk, new GetObjectCommand({ Bucket: 'upper', Key: '../uploads/in.txt' }), { expiresIn: 60 }), '--path-as-is');
      expect(escape.status).toBe(400);
      expect(escape.body).toMatch(/<Code>InvalidArgument<\/Code>/);
      const encoded = await curl(`${env.door.url}/upper/..%2Fuploads%2Fin.txt`, '--path-as-is');
      expect(encoded.status).toBe(403); // unsigned: refused before anything is read
    });

    it('a failing storlet is StorletFailed (502) before its output, a cut connection after', async () => {
      const e = await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'broken', Key: 'hello.txt' })));
      expect(e).toMatchObject({ name: 'StorletFailed', status: 502 });
      expect(e.message).toMatch(/blue/);
      // A small output is held for its end: failing after a few bytes is still an S3 error.
      const small = await s3Error(sdk.send(new GetObjectCommand({ Bucket: 'broken-small', Key: 'hello.txt' })));
      expect(small).toMatchObject({ name: 'StorletFailed', status: 502 });
      expect(small.message).toMatch(/gave up after a few bytes/);
      const late = await sdk.send(new GetObjectCommand({ Bucket: 'broken-late', Key: 'hello.txt' }));
      await expect(late.Body!.transformToByteArray()).rejects.toThrow();
    });
  });

  it('virtual-host requests (<access point>.s3_virtual_host) are served too', async () => {
    const port = new URL(env.door.url).port;
    // `upper.s3.test` must reach the door: the client's agent resolves every name to loopback.
    const lookup = (_host: string, o: { all?: boolean }, cb: (e: null, a: unknown, f?: number) => void): void => (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4));
    const agent = new http.Agent({ keepAlive: false, lookup: lookup as never });
    const vhost = env.client(key, { maxAttempts: 1, forcePathStyle: false, requestHandler: new NodeHttpHandler({ httpAgent: agent }) }, `http://s3.test:${port}`);
    const r = await vhost.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }));
    expect(await r.Body!.transformToString()).toBe(HELLO.toUpperCase());
    agent.destroy();
  });

  describe('authentication', () => {
    it('a presigned URL fetched with curl; an expired one is AccessDenied', async () => {
      const url = await getSignedUrl(sdk, new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }), { expiresIn: 300 });
      expect(await curl(url)).toEqual({ status: 200, body: HELLO.toUpperCase() });
      const old = await getSignedUrl(sdk, new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }), { expiresIn: 60, signingDate: new Date(Date.now() - 120_000) });
      const r = await curl(old);
      expect(r.status).toBe(403);
      expect(r.body).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired<\/Message>/);
      // A presigned upload, as a browser or curl sends it.
      const file = path.join(work.dir, 'presigned-put.txt');
      fs.writeFileSync(file, 'put by url');
      const put = await getSignedUrl(sdk, new PutObjectCommand({ Bucket: 'upper-in', Key: 'by-url.txt' }), { expiresIn: 300 });
      expect((await curl(put, '-T', file)).status).toBe(200);
      expect(await (await upstream.send(new GetObjectCommand({ Bucket: 'uploads', Key: 'by-url.txt' }))).Body!.transformToString()).toBe('PUT BY URL');
    });

    it('wrong secret, skewed clock, unknown key, a key not allowed here, SigV2, no signature', async () => {
      const wrong = env.client({ accessKeyId: key.accessKeyId, secretAccessKey: 'not-the-secret' }, { maxAttempts: 1 });
      const e = await s3Error(wrong.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' })));
      expect(e).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
      const skewed = env.client(key, { maxAttempts: 1, systemClockOffset: -20 * 60_000 });
      expect(await s3Error(skewed.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' })))).toMatchObject({ name: 'RequestTimeTooSkewed', status: 403 });
      const unknown = env.client({ accessKeyId: 'SLAAAAAAAAAAAAAAAAAA', secretAccessKey: 'x' }, { maxAttempts: 1 });
      expect(await s3Error(unknown.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' })))).toMatchObject({ name: 'InvalidAccessKeyId', status: 403 });
      const narrow = env.client(env.key(['same']), { maxAttempts: 1 });
      expect(await s3Error(narrow.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' })))).toMatchObject({ name: 'AccessDenied', status: 403 });
      const v2 = await curl(`${env.door.url}/upper/hello.txt`, '-H', `Authorization: AWS ${key.accessKeyId}:c2lnbmF0dXJl`, '-H', `Date: ${new Date().toUTCString()}`);
      expect(v2.status).toBe(400);
      expect(v2.body).toMatch(/<Code>InvalidRequest<\/Code>.*AWS4-HMAC-SHA256/);
      const anonymous = await curl(`${env.door.url}/upper/hello.txt`);
      expect(anonymous.status).toBe(403);
      expect(anonymous.body).toMatch(/<Code>AccessDenied<\/Code>/);
      // No answer carries the secret.
      expect(JSON.stringify([e, v2, anonymous])).not.toContain(key.secretAccessKey);
    });

    it('keys and access points apply live: a revoked key is refused, a new access point is served', async () => {
      const k = env.key(['upper']);
      const c = env.client(k, { maxAttempts: 1 });
      expect((await sdk.send(new HeadObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }))).ContentLength).toBe(16);
      await (await c.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' }))).Body!.transformToString();
      expect(revokeS3Key(env.config.s3_keys_file, k.accessKeyId)).toBe(true);
      expect(await s3Error(c.send(new GetObjectCommand({ Bucket: 'upper', Key: 'hello.txt' })))).toMatchObject({ name: 'InvalidAccessKeyId' });
      env.accessPoint({ name: 'late-comer', storlet: 'uppercase.mjs' });
      const k2 = env.client(env.key(['late-comer']), { maxAttempts: 1 });
      const r = await k2.send(new GetObjectCommand({ Bucket: 'late-comer', Key: 'hello.txt' }));
      expect(await r.Body!.transformToString()).toBe(HELLO.toUpperCase());
      expect(fs.statSync(env.config.s3_keys_file).mode & 0o777).toBe(0o600);
      // A hand-edited access points file that does not parse fails requests closed; Swift's paths go on.
      const good = fs.readFileSync(env.config.access_points_file);
      fs.writeFileSync(env.config.access_points_file, '{"accessPoints": [');
      try {
        expect(await s3Error(k2.send(new GetObjectCommand({ Bucket: 'late-comer', Key: 'hello.txt' })))).toMatchObject({ name: 'ServiceUnavailable', status: 503 });
        expect((await fetch(`${env.door.url}/info`)).status).toBe(200);
      } finally {
        fs.writeFileSync(env.config.access_points_file, good);
      }
      expect(await (await k2.send(new GetObjectCommand({ Bucket: 'late-comer', Key: 'hello.txt' }))).Body!.transformToString()).toBe(HELLO.toUpperCase());
    });
  });

  it('no secret reaches a log (after every success and failure above)', () => {
    expect(logs.length).toBeGreaterThan(0);
    const all = logs.join('\n');
    expect(all).toMatch(/S3 access point request failed|access point output failed/);
    expect(all).not.toContain(key.secretAccessKey);
    expect(all).not.toContain(UPSTREAM_KEY.secretAccessKey);
  });

  describe('passthrough', () => {
    it('other S3 requests reach the upstream with their signature intact', async () => {
      const tap = await startTap(env.door.url);
      try {
        const direct = env.client(UPSTREAM_KEY, { maxAttempts: 1 }, tap.url);
        await direct.send(new PutObjectCommand({ Bucket: 'data', Key: 'passed.txt', Body: 'through' }));
        const got = await direct.send(new GetObjectCommand({ Bucket: 'data', Key: 'passed.txt' }));
        expect(await got.Body!.transformToString()).toBe('through');
        expect((await direct.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name)).toEqual(expect.arrayContaining(['data', 'uploads']));
        expect(tap.sent()).toMatch(/authorization: AWS4-HMAC-SHA256 Credential=test:tester\//i);
      } finally {
        await tap.close();
      }
      expect(await env.aws(UPSTREAM_KEY, 's3', 'cp', 's3://data/passed.txt', '-')).toBe('through');
      // Swift, not sandlet, judges a passthrough signature.
      const wrong = env.client({ ...UPSTREAM_KEY, secretAccessKey: 'wrong' }, { maxAttempts: 1 });
      expect(await s3Error(wrong.send(new GetObjectCommand({ Bucket: 'data', Key: 'passed.txt' })))).toMatchObject({ name: 'SignatureDoesNotMatch' });
      const metrics = await env.registry.metrics();
      expect(metrics).toMatch(/sandlet_proxy_requests_total\{api="s3",kind="passthrough",outcome="ok"\} [1-9]/);
      expect(metrics).toMatch(/sandlet_proxy_storlet_runs_total\{api="s3",outcome="ok"\} [1-9]/);
    });
  });
});
