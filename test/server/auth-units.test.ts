import { describe, expect, it } from 'vitest';
import { SandletError } from '../../src/errors.js';
import { toHttpError } from '../../src/server/http-errors.js';
import fs from 'node:fs';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { AuthThrottle, FIRST_DELAY_MS, FREE_FAILURES, FailureCounts, MAX_DELAY_MS } from '../../src/server/auth-throttle.js';
import { httpErrorMapper } from '../../src/server/http-errors.js';
import { canonicalMetaName, metaToHeaders } from '../../src/server/object-meta.js';

describe('failure counts', () => {
  it('lets a few failures pass, then doubles the wait up to the documented cap, per key', () => {
    const t = new FailureCounts();
    const waits = Array.from({ length: 10 }, (_, i) => t.failed('id-a', 1000 + i));
    expect(waits).toEqual([0, 0, 0, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(MAX_DELAY_MS).toBe(5000);
    expect(t.count('id-b', 2000)).toBe(0);
  });

  it('the README states the schedule the code applies', () => {
    const readme = fs.readFileSync(`${PACKAGE_ROOT}/README.md`, 'utf8').replace(/\s+/g, ' ');
    expect(readme).toContain(`After ${FREE_FAILURES} failures of an id or of a peer, each further failed answer is held longer: ${FIRST_DELAY_MS / 1000} s doubling to at most ${MAX_DELAY_MS / 1000} s`);
  });

  it('a success with one key never resets another key\'s record', () => {
    const t = new FailureCounts();
    for (let i = 0; i < 5; i++) t.failed('victim', 0);
    t.succeeded('attacker-own-token');
    expect(t.count('victim', 1)).toBe(5);
    expect(t.failed('victim', 2)).toBe(800);
    t.succeeded('victim');
    expect(t.count('victim', 3)).toBe(0);
  });

  it('forgets a key after a quiet spell', () => {
    const t = new FailureCounts();
    for (let i = 0; i < 6; i++) t.failed('p', 0);
    expect(t.count('p', 10 * 60_000)).toBe(0);
    expect(t.failed('p', 10 * 60_000)).toBe(0);
  });
});

describe('auth throttle', () => {
  it('counts a failure against the token id and the peer separately; a success clears only its own id', async () => {
    const t = new AuthThrottle();
    expect(await t.attempt('aaaaaaaaaaaa', 'peer1', async () => undefined)).toBeUndefined();
    expect(await t.attempt('aaaaaaaaaaaa', 'peer2', async () => undefined)).toBeUndefined();
    expect(t.byToken.count('aaaaaaaaaaaa')).toBe(2);
    expect([t.byPeer.count('peer1'), t.byPeer.count('peer2')]).toEqual([1, 1]);
    expect(await t.attempt('bbbbbbbbbbbb', 'peer1', async () => 'ok')).toBe('ok');
    expect(t.byToken.count('aaaaaaaaaaaa')).toBe(2);
    expect(t.byPeer.count('peer1')).toBe(1);
  });

  it('checks of one token id take turns: a guesser\'s parallel attempts run one at a time', async () => {
    const t = new AuthThrottle();
    let running = 0;
    let most = 0;
    const check = async (): Promise<undefined> => {
      most = Math.max(most, ++running);
      await new Promise((r) => setImmediate(r));
      running--;
      return undefined;
    };
    await Promise.all(Array.from({ length: 3 }, () => t.attempt('cccccccccccc', 'p', check)));
    expect(most).toBe(1);
    // Other ids are not held by it.
    most = 0;
    await Promise.all(['dddddddddddd', 'eeeeeeeeeeee'].map((id) => t.attempt(id, 'p', check)));
    expect(most).toBe(2);
  });
});

describe('object metadata headers', () => {
  it('one canonical form: each dash part title-cased, Content-Type from the metadata', () => {
    expect(canonicalMetaName('content-TYPE')).toBe('Content-Type');
    expect(metaToHeaders({ color: 'red', 'Content-Type': 'text/plain', 'x-y': 'é' })).toEqual({
      'Content-Type': 'text/plain',
      'X-Object-Meta-Color': 'red',
      'X-Object-Meta-Content-Type': 'text/plain',
      'X-Object-Meta-X-Y': Buffer.from('é').toString('latin1'),
    });
    expect(metaToHeaders({})).toEqual({ 'Content-Type': 'application/octet-stream' });
  });
});

describe('http errors for clients', () => {
  it('never names a host directory', () => {
    const dirs = { host_root: '/srv/sl', store_dir: '/srv/sl/store', cache_dir: '/srv/sl/cache', storlets_dir: '/srv/sl/storlets', pipes_dir: '/srv/sl/pipes', log_dir: '/srv/sl/logs' };
    const e = httpErrorMapper(dirs)(new SandletError('ENOSTORLET', 'storlet x.mjs is not deployed in the local store /srv/sl/store'));
    expect(e).toEqual({ status: 404, body: { error: 'storlet x.mjs is not deployed in the local store <store_dir>', code: 'ENOSTORLET' } });
    expect(httpErrorMapper(dirs)(new SandletError('ECACHE', 'cannot write /srv/sl/x')).body.error).toBe('cannot write <host_root>/x');
  });
});

describe('http errors', () => {
  it.each([
    ['EBADNAME', 400],
    ['ENOSTORLET', 404],
    ['ESTORLET', 502],
    ['ESANDBOX', 503],
    ['ETIMEDOUT', 504],
    ['ECACHE', 507],
  ] as const)('%s → %i', (code, status) => {
    expect(toHttpError(new SandletError(code, 'x')).status).toBe(status);
  });

  it('tells a backing-off client when to come back', () => {
    const e = toHttpError(new SandletError('EBACKOFF', 'scope s is backing off after 3 crashes; next try in 4 s'));
    expect(e).toEqual({ status: 503, retryAfter: 4, body: { error: 'scope s is backing off after 3 crashes; next try in 4 s', code: 'EBACKOFF' } });
  });
});
