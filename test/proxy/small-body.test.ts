import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readOutputHead, readSmallBody, SMALL_BODY_BYTES } from '../../src/proxy/small-body.js';

describe('readSmallBody', () => {
  it('reads a body up to the bound whole, and leaves a larger or unannounced one alone', async () => {
    const body = Readable.from([Buffer.from('abc'), Buffer.from('def')]);
    expect((await readSmallBody(body, { 'content-length': '6' }))!.toString()).toBe('abcdef');
    expect(readSmallBody(Readable.from([]), { 'content-length': String(SMALL_BODY_BYTES + 1) })).toBeUndefined();
    expect(readSmallBody(Readable.from([]), {})).toBeUndefined();
  });

  it('a body shorter than announced is the store failing, whether it ends or just closes', async () => {
    await expect(readSmallBody(Readable.from([Buffer.from('abc')]), { 'content-length': '5' })).rejects.toThrow('the object store sent 3 bytes of an object of 5');
    const cut = new PassThrough();
    const read = readSmallBody(cut, { 'content-length': '5' })!;
    cut.write('ab');
    setImmediate(() => cut.destroy()); // closed, no error
    await expect(read).rejects.toThrow('the object store sent 2 bytes of an object of 5');
  });
});

describe('readOutputHead', () => {
  it('holds a small output to its end', async () => {
    const head = await readOutputHead(Readable.from([Buffer.from('one '), Buffer.from('two')]));
    expect(head).toMatchObject({ ended: true, bytes: 7 });
    expect(Buffer.concat(head.chunks).toString()).toBe('one two');
  });

  it('stops past the bound and leaves the rest paused, in order', async () => {
    const big = Buffer.alloc(40 * 1024, 0x61);
    const body = new PassThrough();
    for (let i = 0; i < 4; i++) body.write(big);
    body.end('tail');
    const head = await readOutputHead(body);
    expect(head.ended).toBe(false);
    expect(head.bytes).toBeGreaterThan(SMALL_BODY_BYTES);
    expect(body.isPaused()).toBe(true);
    const rest = Buffer.concat(await body.toArray());
    expect(head.bytes + rest.length).toBe(4 * big.length + 4);
    expect(rest.subarray(-4).toString()).toBe('tail');
  });

  it('lets go of an output that does not end soon', async () => {
    const body = new PassThrough();
    body.write('early');
    const head = await readOutputHead(body); // nothing more comes: the hold time ends it
    expect(head).toMatchObject({ ended: false, bytes: 5 });
    body.end(' late');
    expect(Buffer.concat(await body.toArray()).toString()).toBe(' late');
  });

  it('commits to nothing before a first byte: a late byte ends the hold, a failure before any rejects', async () => {
    const late = new PassThrough();
    setTimeout(() => late.write('first'), 120); // well past the hold time
    const head = await readOutputHead(late);
    expect(head).toMatchObject({ ended: false, bytes: 5 });
    late.end();
    const silent = new PassThrough();
    setTimeout(() => silent.destroy(new Error('timed out before any output')), 120);
    await expect(readOutputHead(silent)).rejects.toThrow('timed out before any output');
  });

  it('rejects with the output failure, and a failure after it lets go is no unhandled error', async () => {
    const failing = new PassThrough();
    failing.write('x');
    setImmediate(() => failing.destroy(new Error('storlet failed')));
    await expect(readOutputHead(failing)).rejects.toThrow('storlet failed');
    const later = new PassThrough();
    later.write('y');
    await readOutputHead(later);
    later.destroy(new Error('after the head'));
    await new Promise((r) => setImmediate(r));
    expect(later.errored?.message).toBe('after the head');
  });
});
