import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { boundaryOf, spoolMultipart } from '../../src/server/multipart.js';
import { metaFromHeaders } from '../../src/server/object-meta.js';
import { openFds, tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const body = [
  'preamble to ignore',
  '--XyZ',
  'X-Object-Meta-Name: object',
  'Content-Type: text/plain',
  '',
  'the object\r\nwith a CRLF and --XyZ lookalike',
  '--XyZ',
  'x-object-meta-n: 2',
  '',
  'second',
  '--XyZ',
  '',
  'third, no headers',
  '--XyZ--',
  'epilogue',
].join('\r\n');

const read = (fd: number): string => {
  const st = fs.fstatSync(fd);
  const buf = Buffer.alloc(st.size);
  fs.readSync(fd, buf, 0, st.size, 0);
  return buf.toString();
};

describe('multipart/mixed spooling', () => {
  it.each([1, 2, 3, 7, 64, 100_000])('splits parts whatever the chunk size (%i)', async (size) => {
    const bytes = Buffer.from(body);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    const before = openFds().length;
    const parts = await spoolMultipart(Readable.from(chunks), 'XyZ', dir, 1 << 20);
    expect(parts.map((p) => read(p.fd))).toEqual(['the object\r\nwith a CRLF and --XyZ lookalike', 'second', 'third, no headers']);
    expect(parts.map((p) => p.metadata)).toEqual([{ Name: 'object' }, { N: '2' }, {}]);
    expect(fs.readdirSync(dir)).toEqual([]); // spooled files are unlinked at once
    for (const p of parts) fs.closeSync(p.fd);
    expect(openFds().length).toBe(before);
  });

  it.each([
    ['--XyZ\r\n\r\nunterminated', 'the multipart body ended before its closing boundary'],
    ['no boundary at all', 'the multipart body ended before its closing boundary'],
    ['--XyZ--', 'the multipart body has no parts; the first part is the object'],
    ['--XyZ\r\nbad header line\r\n\r\nx\r\n--XyZ--', 'multipart part 1 has a malformed header line'],
  ])('refuses %j and closes every fd', async (text, message) => {
    const before = openFds().length;
    await expect(spoolMultipart(Readable.from([Buffer.from(text)]), 'XyZ', dir, 1 << 20)).rejects.toThrow(message);
    expect(openFds().length).toBe(before);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('bounds the body', async () => {
    await expect(spoolMultipart(Readable.from([Buffer.from(body)]), 'XyZ', path.join(dir, 'sub'), 10)).rejects.toThrow('the multipart body is larger than 10 bytes');
  });

  it('reads the boundary and title-cases metadata names as Swift does', () => {
    expect(boundaryOf('multipart/mixed; boundary="a b"')).toBe('a b');
    expect(boundaryOf('multipart/mixed;boundary=abc')).toBe('abc');
    expect(boundaryOf('application/octet-stream')).toBeUndefined();
    expect(() => boundaryOf('multipart/mixed')).toThrow('multipart/mixed needs a boundary parameter');
    expect(metaFromHeaders([['x-object-meta-content-type', 'text/plain'], ['x-object-meta-color', Buffer.from('rouge é').toString('latin1')], ['other', 'x']])).toEqual({ 'Content-Type': 'text/plain', Color: 'rouge é' });
  });
});
