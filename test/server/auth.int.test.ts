// The auth throttle through a real server: it holds guessers, not the peers they share an address
// with. Peers are told apart by the client's loopback address (127.0.0.x).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken } from '../../src/server/tokens.js';
import { call, json, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

/** A well-formed token whose id nobody holds. */
const guess = (): string => `sl_${randomBytes(6).toString('hex')}.${randomBytes(32).toString('base64url').slice(0, 43)}`;

describe('auth throttle', () => {
  it('a peer with many failures is not held up when it sends a valid token it never used before', async () => {
    const shared = '127.0.0.2';
    // Build the peer's record past the free failures (each answer is held once they run out).
    for (let i = 0; i < 8; i++) expect((await call(s, 'GET', '/v1/scopes', { token: guess(), localAddress: shared })).status).toBe(401);
    const fresh = (await createToken(path.join(s.root, 'tokens.json'), 'operate')).token;
    // The valid call (one scrypt check) races five failed ones from clean peers done one after the
    // other (five checks, none held): it finishes first unless the peer's record holds it.
    const order: string[] = [];
    const valid = call(s, 'GET', '/v1/scopes', { token: fresh, localAddress: shared }).then((r) => {
      order.push('valid');
      return r;
    });
    const reference = (async () => {
      for (const peer of ['127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']) expect((await call(s, 'GET', '/v1/scopes', { token: guess(), localAddress: peer })).status).toBe(401);
      order.push('reference');
    })();
    const [r] = await Promise.all([valid, reference]);
    expect(r.status).toBe(200);
    expect(order).toEqual(['valid', 'reference']);
  });

  it('a token that verified once passes at once even while its id is under attack', async () => {
    const victim = s.tokens.admin;
    expect((await call(s, 'GET', '/v1/scopes', { token: victim })).status).toBe(200);
    const id = victim.slice(3, 15);
    const wrong = `sl_${id}.${'A'.repeat(43)}`;
    // Attack the id (its checks take turns and are held), then use the real token meanwhile.
    const attacks = Array.from({ length: 8 }, () => call(s, 'GET', '/v1/scopes', { token: wrong, via: 'tcp' }));
    const order: string[] = [];
    const real = call(s, 'GET', '/v1/scopes', { token: victim, via: 'tcp' }).then((r) => {
      order.push('real');
      return r;
    });
    const held = Promise.all(attacks).then((rs) => {
      order.push('attacks');
      return rs;
    });
    const [ok, failed] = await Promise.all([real, held]);
    expect(ok.status).toBe(200);
    expect(failed.map((f) => [f.status, json(f).code])).toEqual(Array(8).fill([401, 'EAUTH']));
    expect(order).toEqual(['real', 'attacks']);
  });
});
