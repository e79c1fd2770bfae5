import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { validateBucketName } from '../../../src/names.js';
import { AccessPointRegistry, createAccessPoint, listAccessPoints, removeAccessPoint, validateAccessPoint } from '../../../src/proxy/s3/access-points.js';
import { AwsChunkedDecoder } from '../../../src/proxy/s3/aws-chunked.js';
import { createChecksum } from '../../../src/proxy/s3/checksums.js';
import { errorXml, S3Error, toS3Error } from '../../../src/proxy/s3/s3-errors.js';
import { createS3Key, listS3Keys, revokeS3Key, S3KeyStore } from '../../../src/proxy/s3/s3-keys.js';
import { ByteSlice, parseRangeHeader, resolveRange } from '../../../src/proxy/s3/s3-range.js';
import { SandletError } from '../../../src/errors.js';
import { tempDir } from '../../helpers/fs.js';

const dirs: (() => void)[] = [];
afterEach(() => dirs.splice(0).forEach((c) => c()));
function dir(): string {
  const d = tempDir();
  dirs.push(d.cleanup);
  return d.dir;
}

describe('checksums', () => {
  // Check values of the CRC catalogue ("123456789") and of SHA-1/SHA-256 ("abc").
  it('match the published check values', () => {
    const sum = (algo: 'crc32' | 'crc32c' | 'sha1' | 'sha256', s: string): string => {
      const c = createChecksum(algo);
      // Split input: the running value must carry over.
      c.update(Buffer.from(s.slice(0, 4)));
      c.update(Buffer.from(s.slice(4)));
      return Buffer.from(c.digest(), 'base64').toString('hex');
    };
    expect(sum('crc32', '123456789')).toBe('cbf43926');
    expect(sum('crc32c', '123456789')).toBe('e3069283');
    expect(sum('sha1', 'abc')).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
    expect(sum('sha256', 'abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('aws-chunked, unsigned with a trailing checksum', () => {
  const crc = (s: string): string => {
    const c = createChecksum('crc32');
    c.update(Buffer.from(s));
    return c.digest();
  };
  const body = (data: string[], trailer: string): Buffer => Buffer.from(`${data.map((d) => `${d.length.toString(16)}\r\n${d}\r\n`).join('')}0\r\n${trailer}\r\n\r\n`);
  const decode = (b: Buffer, opts = {}): Promise<Buffer> => buffer(Readable.from([b.subarray(0, 5), b.subarray(5, 9), b.subarray(9)]).pipe(new AwsChunkedDecoder({ trailer: 'x-amz-checksum-crc32', ...opts })));

  it('decodes and checks the checksum', async () => {
    expect((await decode(body(['hello ', 'world'], `x-amz-checksum-crc32:${crc('hello world')}`), { decodedLength: 11 })).toString()).toBe('hello world');
    await expect(decode(body(['hello ', 'world'], `x-amz-checksum-crc32:${crc('hello World')}`))).rejects.toMatchObject({ code: 'BadDigest' });
    await expect(decode(body(['hello ', 'world'], `x-amz-checksum-crc32:${crc('hello world')}`), { decodedLength: 12 })).rejects.toMatchObject({ code: 'IncompleteBody' });
    await expect(decode(body(['hello'], 'x-amz-other:1'))).rejects.toMatchObject({ code: 'InvalidRequest' });
    await expect(decode(Buffer.from('zz\r\nhello\r\n'))).rejects.toMatchObject({ code: 'IncompleteBody' });
  });

  it('refuses a trailer it cannot verify', () => {
    expect(() => new AwsChunkedDecoder({ trailer: 'x-amz-checksum-md5' })).toThrow(S3Error);
  });
});

describe('ranges', () => {
  it('parses the single-range forms S3 honours and ignores the rest', () => {
    expect(parseRangeHeader('bytes=0-9')).toEqual({ start: 0, end: 9 });
    expect(parseRangeHeader('bytes=5-')).toEqual({ start: 5 });
    expect(parseRangeHeader('bytes=-5')).toEqual({ suffix: 5 });
    expect(parseRangeHeader('bytes=9-1')).toBeUndefined();
    expect(parseRangeHeader('items=1-2')).toBeUndefined();
    expect(() => parseRangeHeader('bytes=0-1,5-6')).toThrow(S3Error);
    expect(resolveRange({ suffix: 100 }, 10, '')).toEqual({ start: 0, end: 9 });
    expect(resolveRange({ start: 3, end: 100 }, 10, '')).toEqual({ start: 3, end: 9 });
    expect(() => resolveRange({ start: 10 }, 10, 'bytes=10-')).toThrow(expect.objectContaining({ code: 'InvalidRange' }));
  });

  it('slices a stream, ends early once the range is complete, and errors on a short one', async () => {
    const src = (): Readable => Readable.from([Buffer.from('0123'), Buffer.from('4567'), Buffer.from('89')]);
    expect((await buffer(src().pipe(new ByteSlice(3, 5)))).toString()).toBe('345');
    expect((await buffer(src().pipe(new ByteSlice(0, 9, true)))).toString()).toBe('0123456789');
    await expect(buffer(src().pipe(new ByteSlice(0, 10, true)))).rejects.toThrow(/ended at 10 bytes/);
    await expect(buffer(src().pipe(new ByteSlice(0, 8, true)))).rejects.toThrow(/longer/);
  });
});

describe('access points and S3 keys files', () => {
  it('validates names, params and operations', () => {
    expect(validateAccessPoint({ name: 'thumbs', bucket: 'photos', storlet: 'thumb.mjs' })).toMatchObject({ scope: 'thumbs', on: ['get'], range: 'output', params: {} });
    for (const name of ['ab', 'Upper', 'a_b', '-ab', 'auth', 'info', '1.2.3.4', 'a..b', 'x'.repeat(64)]) expect(() => validateBucketName(name), name).toThrow(SandletError);
    expect(() => validateAccessPoint({ name: 'thumbs', bucket: 'photos', storlet: '../x' })).toThrow(/storlet name/);
    expect(() => validateAccessPoint({ name: 'thumbs', bucket: 'photos', storlet: 's', on: 'get,copy' })).toThrow(/on must list operations out of get, put, delete/);
    expect(validateAccessPoint({ name: 'thumbs', bucket: 'photos', storlet: 's', on: 'get, delete' }).on).toEqual(['get', 'delete']);
    expect(() => validateAccessPoint({ name: 'thumbs', bucket: 'photos', storlet: 's', params: { storlet_x: '1' } })).toThrow(/reserved/);
  });

  it('create, list, remove; a registry follows the file', () => {
    const file = path.join(dir(), 'aps.json');
    const reg = new AccessPointRegistry(file);
    expect(reg.get('thumbs')).toBeUndefined();
    createAccessPoint(file, { name: 'thumbs', bucket: 'photos', storlet: 'thumb.mjs', on: 'get,put' });
    expect(() => createAccessPoint(file, { name: 'thumbs', bucket: 'x-y', storlet: 's' })).toThrow(/exists/);
    expect(reg.get('thumbs')).toMatchObject({ bucket: 'photos', on: ['get', 'put'] });
    expect(listAccessPoints(file).map((a) => a.name)).toEqual(['thumbs']);
    expect(removeAccessPoint(file, 'thumbs')).toBe(true);
    expect(removeAccessPoint(file, 'thumbs')).toBe(false);
    expect(reg.get('thumbs')).toBeUndefined();
  });

  it('keys: secrets in a 0600 file, shown once, never listed; revoke applies to a running store', () => {
    const file = path.join(dir(), 'keys.json');
    const store = new S3KeyStore(file);
    const k = createS3Key(file, ['thumbs']);
    expect(k.id).toMatch(/^SL[A-Z2-7]{18}$/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(store.get(k.id)?.secret).toBe(k.secret);
    expect(JSON.stringify(listS3Keys(file))).not.toContain(k.secret);
    expect(() => createS3Key(file, [])).toThrow(/access points/);
    expect(revokeS3Key(file, k.id)).toBe(true);
    expect(store.get(k.id)).toBeUndefined();
  });
});

describe('S3 errors', () => {
  it('maps gateway failures to documented codes and escapes XML', () => {
    expect(toS3Error(new SandletError('ESTORLET', 'boom')).code).toBe('StorletFailed');
    expect(toS3Error(new SandletError('ENOSTORLET', 'no')).code).toBe('NoSuchStorlet');
    expect(toS3Error(new SandletError('ETIMEDOUT', 'slow')).code).toBe('StorletTimeout');
    expect(toS3Error(new SandletError('EBACKOFF', 'later')).code).toBe('ServiceUnavailable');
    expect(toS3Error(new Error('secret stack detail')).message).not.toContain('secret');
    expect(errorXml(new S3Error('NoSuchKey', 'a<b>&"c"'), '/x', 'ID')).toContain('<Message>a&lt;b&gt;&amp;&quot;c&quot;</Message>');
  });
});
