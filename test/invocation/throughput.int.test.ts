import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { digest, patternStream } from '../helpers/streams.js';
import { testGateway } from '../helpers/gateway.js';

let gw: Gateway;
let close: () => Promise<void>;
beforeAll(() => ({ gateway: gw, close } = testGateway()));
afterAll(async () => close());

describe('bulk data', () => {
  it('streams 1 GiB through identity with equal checksums', async () => {
    const total = 1024 * 1024 * 1024;
    const inHash = createHash('sha256');
    const source = patternStream(total);
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        inHash.update(chunk);
        cb(null, chunk);
      },
    });
    const input = tee;
    const fed = pipeline(source, tee);
    const r = await gw.invoke({ scope: 'bulk', storlet: 'identity.mjs', input });
    const [outDigest, outBytes] = await digest(r.body);
    await fed;
    expect(outBytes).toBe(total);
    expect(outDigest).toBe(inHash.digest('hex'));
  });
});
