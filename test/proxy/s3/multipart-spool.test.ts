import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { concatParts, MIN_PART_BYTES, MultipartSpool, type UploadMeta } from '../../../src/proxy/s3/multipart-spool.js';
import { parseCompleteMultipartUpload } from '../../../src/proxy/s3/multipart-xml.js';
import { S3Error } from '../../../src/proxy/s3/s3-errors.js';
import { openFds, tempDir } from '../../helpers/fs.js';

const md5 = (b: Buffer | string): string => `"${createHash('md5').update(b).digest('hex')}"`;

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
  throw new Error('it succeeded');
}

// The spool on a real filesystem: what is on disk, what is counted, what expires.
describe('MultipartSpool', () => {
  let work: ReturnType<typeof tempDir>;
  let dir: string;
  let spool: MultipartSpool;
  const make = (maxBytes = 64 * 1024 * 1024, ttlMs = 3_600_000): MultipartSpool => new MultipartSpool({ dir, maxBytes, ttlMs, logger: pino({ level: 'silent' }) });
  const bound = { accessPoint: 'ap', key: 'k/1', keyId: 'SLKEY1' };
  const files = (): string[] => fs.readdirSync(dir, { recursive: true }) as string[];

  beforeEach(() => {
    work = tempDir();
    dir = path.join(work.dir, 'spool');
    spool = make();
    spool.start();
  });
  afterEach(() => {
    spool.close();
    work.cleanup();
  });

  it('keeps uploads in a private directory, bound to access point, key and S3 key', async () => {
    const up = spool.create({ ...bound, headers: { 'content-type': 'text/plain' } });
    expect(up.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, up.id)).mode & 0o777).toBe(0o700);
    expect(spool.open(up.id, bound)).toEqual(up);
    expect(await code(() => spool.open(up.id, { ...bound, key: 'other' }))).toBe('NoSuchUpload');
    expect(await code(() => spool.open(up.id, { ...bound, accessPoint: 'other' }))).toBe('NoSuchUpload');
    expect(await code(() => spool.open(up.id, { ...bound, keyId: 'SLKEY2' }))).toBe('AccessDenied');
    expect(await code(() => spool.open('../../etc', bound))).toBe('NoSuchUpload');
    expect(await code(() => spool.open('A'.repeat(43), bound))).toBe('NoSuchUpload');
    expect(spool.list('ap', 'SLKEY1').map((u) => u.id)).toEqual([up.id]);
    expect(spool.list('ap', 'SLKEY2')).toEqual([]);
  });

  it('spools parts with their MD5 as ETag, replaces a part, counts bytes, and aborts to nothing', async () => {
    const up = spool.create({ ...bound, headers: {} });
    const p1 = await spool.writePart(up, 1, Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    expect(p1).toMatchObject({ number: 1, etag: md5('hello world'), size: 11 });
    await spool.writePart(up, 2, Readable.from([Buffer.from('two')]), 3);
    expect(spool.usedBytes).toBe(14);
    const again = await spool.writePart(up, 1, Readable.from([Buffer.from('HELLO')]));
    expect(again.etag).toBe(md5('HELLO'));
    expect(spool.parts(up).map((p) => [p.number, p.size])).toEqual([[1, 5], [2, 3]]);
    expect(spool.usedBytes).toBe(8);
    for (const p of spool.parts(up)) expect(fs.statSync(p.file).mode & 0o777).toBe(0o600);
    spool.abort(up);
    expect(spool.usedBytes).toBe(0);
    expect(files()).toEqual([]);
    expect(await code(spool.writePart(up, 3, Readable.from([Buffer.from('late')])))).toBe('NoSuchUpload');
    expect(files()).toEqual([]);
  });

  it('a body that fails leaves no file and no count', async () => {
    const up = spool.create({ ...bound, headers: {} });
    const failing = new Readable({ read() {} });
    const writing = spool.writePart(up, 1, failing);
    failing.push(Buffer.alloc(1000));
    setImmediate(() => failing.destroy(new S3Error('BadDigest', 'checksum')));
    expect(await code(writing)).toBe('BadDigest');
    expect(spool.usedBytes).toBe(0);
    expect(files()).toEqual([up.id, path.join(up.id, 'upload.json')]);
  });

  it('refuses parts that do not fit the spool: at once when the length is known, else as bytes arrive', async () => {
    spool.close();
    spool = make(100);
    spool.start();
    const up = spool.create({ ...bound, headers: {} });
    await spool.writePart(up, 1, Readable.from([Buffer.alloc(60)]));
    expect(await code(spool.writePart(up, 2, Readable.from([Buffer.alloc(50)]), 50))).toBe('ServiceUnavailable');
    expect(await code(spool.writePart(up, 2, Readable.from([Buffer.alloc(30), Buffer.alloc(30)])))).toBe('ServiceUnavailable');
    expect(await code(spool.writePart(up, 2, Readable.from([Buffer.alloc(1)]), 101))).toBe('EntityTooLarge');
    expect(spool.usedBytes).toBe(60);
    expect(spool.parts(up).map((p) => p.number)).toEqual([1]);
    expect(files().filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('checks a Complete as S3 does: order, ETags, the 5 MiB minimum of all parts but the last', async () => {
    const up = spool.create({ ...bound, headers: {} });
    const big = Buffer.alloc(MIN_PART_BYTES, 'a');
    const p1 = await spool.writePart(up, 1, Readable.from([big]));
    const p2 = await spool.writePart(up, 2, Readable.from([Buffer.from('tail')]));
    const p3 = await spool.writePart(up, 3, Readable.from([Buffer.from('small')]));
    expect(spool.chosenParts(up, [{ number: 1, etag: p1.etag }, { number: 2, etag: p2.etag }]).map((p) => p.number)).toEqual([1, 2]);
    expect(spool.chosenParts(up, [{ number: 1, etag: p1.etag.replace(/"/g, '') }, { number: 3, etag: p3.etag }]).map((p) => p.number)).toEqual([1, 3]);
    expect(await code(() => spool.chosenParts(up, [{ number: 2, etag: p2.etag }, { number: 1, etag: p1.etag }]))).toBe('InvalidPartOrder');
    expect(await code(() => spool.chosenParts(up, [{ number: 1, etag: p1.etag }, { number: 1, etag: p1.etag }]))).toBe('InvalidPartOrder');
    expect(await code(() => spool.chosenParts(up, [{ number: 1, etag: md5('nope') }]))).toBe('InvalidPart');
    expect(await code(() => spool.chosenParts(up, [{ number: 4, etag: p1.etag }]))).toBe('InvalidPart');
    expect(await code(() => spool.chosenParts(up, [{ number: 2, etag: p2.etag }, { number: 3, etag: p3.etag }]))).toBe('EntityTooSmall');
    expect(await code(() => spool.chosenParts(up, []))).toBe('MalformedXML');
    // One Complete at a time; an Abort or a new part waits for it, and a part that was being
    // written when it began does not change what it reads.
    const slow = new Readable({ read() {} });
    const writing = spool.writePart(up, 2, slow);
    slow.push('changed');
    spool.beginComplete(up);
    slow.push(null);
    expect(await code(writing)).toBe('OperationAborted');
    expect(await code(() => spool.beginComplete(up))).toBe('OperationAborted');
    expect(await code(() => spool.abort(up))).toBe('OperationAborted');
    expect(await code(spool.writePart(up, 4, Readable.from([Buffer.from('x')])))).toBe('OperationAborted');
    spool.endComplete(up);
    expect(spool.parts(up).map((p) => p.etag)).toEqual([p1.etag, p2.etag, p3.etag]);
    expect(files().filter((f) => f.includes('.tmp-'))).toEqual([]);
    spool.abort(up);
  });

  it('reads the chosen parts back in order, closing each file', async () => {
    const up = spool.create({ ...bound, headers: {} });
    await spool.writePart(up, 2, Readable.from([Buffer.from('second;')]));
    await spool.writePart(up, 1, Readable.from([Buffer.from('first;')]));
    await spool.writePart(up, 7, Readable.from([Buffer.from('seventh')]));
    const spoolFds = (): string[] => openFds().filter((f) => f.includes(dir));
    const chunks: Buffer[] = [];
    for await (const c of concatParts(spool.parts(up))) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('first;second;seventh');
    // Destroyed half way through a part larger than what is read ahead: its file is closed too.
    const large = spool.create({ ...bound, key: 'large', headers: {} });
    await spool.writePart(large, 1, Readable.from([Buffer.alloc(1024 * 1024)]));
    await spool.writePart(large, 2, Readable.from([Buffer.alloc(10)]));
    const half = concatParts(spool.parts(large));
    await new Promise((r) => half.once('readable', r));
    expect(spoolFds()).toHaveLength(1);
    half.destroy();
    await new Promise((r) => half.once('close', r));
    await expect.poll(spoolFds).toEqual([]);
  });

  it('uploads with no new part for the TTL expire; a restart counts what is left and sweeps at once', async () => {
    const old = spool.create({ ...bound, headers: {} });
    await spool.writePart(old, 1, Readable.from([Buffer.from('old part')]));
    const fresh = spool.create({ ...bound, key: 'k/2', headers: {} });
    await spool.writePart(fresh, 1, Readable.from([Buffer.from('fresh')]));
    fs.writeFileSync(path.join(dir, 'stray-file'), 'x');
    const hourAgo = new Date(Date.now() - 3_600_000 - 1000);
    fs.utimesSync(path.join(dir, old.id), hourAgo, hourAgo);
    spool.close();
    // A new server on the same root: the old upload expired, the fresh one goes on with its count.
    spool = make();
    spool.start();
    expect(fs.existsSync(path.join(dir, old.id))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'stray-file'))).toBe(false);
    expect(spool.usedBytes).toBe(5);
    expect(spool.parts(spool.open(fresh.id, { ...bound, key: 'k/2' })).map((p) => p.size)).toEqual([5]);
    // The periodic sweep, as its timer runs it: an upload being completed is left alone.
    spool.beginComplete(fresh);
    spool.sweep(Date.now() + 3_600_001);
    expect(fs.existsSync(path.join(dir, fresh.id))).toBe(true);
    spool.endComplete(fresh);
    spool.sweep(Date.now() + 3_600_001);
    expect(files()).toEqual([]);
    expect(spool.usedBytes).toBe(0);
  });
});

describe('CompleteMultipartUpload XML', () => {
  it('reads the parts as the aws CLI and the SDK write them', () => {
    const cli = '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"aa"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>"bb"</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>';
    expect(parseCompleteMultipartUpload(cli)).toEqual([{ number: 1, etag: '"aa"' }, { number: 2, etag: '"bb"' }]);
    const sdk = '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ChecksumCRC32>AAAAAA==</ChecksumCRC32><ETag>&quot;cc&quot;</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>';
    expect(parseCompleteMultipartUpload(sdk)).toEqual([{ number: 3, etag: '"cc"' }]);
    const spaced = '<CompleteMultipartUpload>\n  <!-- two parts -->\n  <Part>\n    <PartNumber> 2 </PartNumber>\n    <ETag>&#34;dd&#x22;</ETag>\n  </Part>\n</CompleteMultipartUpload>\n';
    expect(parseCompleteMultipartUpload(spaced)).toEqual([{ number: 2, etag: '"dd"' }]);
  });

  it('refuses anything else', () => {
    for (const bad of [
      '', '<Foo/>', '<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>', '<CompleteMultipartUpload><Other/></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><ETag>x</ETag><PartNumber>1</PartNumber></CompleteMultipartUpload>', // not well-formed
      '<CompleteMultipartUpload><Part><ETag>x</ETag><PartNumber>one</PartNumber></Part></CompleteMultipartUpload>',
      '<!DOCTYPE a [<!ENTITY x "y">]><CompleteMultipartUpload><Part><ETag>&x;</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload/><CompleteMultipartUpload/>',
    ]) {
      expect(() => parseCompleteMultipartUpload(bad), bad).toThrow(expect.objectContaining({ code: 'MalformedXML' }));
    }
    expect(() => parseCompleteMultipartUpload('<CompleteMultipartUpload><Part><ETag>x</ETag><PartNumber>10001</PartNumber></Part></CompleteMultipartUpload>')).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});
