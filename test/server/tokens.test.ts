import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenVerifier, createToken, scryptCost } from '../../src/server/tokens.js';
import { tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
let file: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  file = path.join(dir, 'tokens.json');
});
afterEach(() => cleanup());

describe('tokens', () => {
  it('stores only a scrypt hash, in a 0600 file, and verifies the token it printed', async () => {
    const { token, entry } = await createToken(file, 'invoke', ['a', 'b'], 'proxy-1');
    expect(token).toMatch(/^sl_[a-z0-9]{12}\.[A-Za-z0-9_-]{43}$/);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toContain(token.split('.')[1]);
    expect(text).toContain('"hash": "scrypt$16384$8$1$');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const v = new TokenVerifier(file);
    expect(await v.verify(token)).toEqual({ id: entry.id, role: 'invoke', scopes: ['a', 'b'] });
    expect(await v.verify(token)).toEqual({ id: entry.id, role: 'invoke', scopes: ['a', 'b'] }); // remembered
  });

  it('an unknown token id costs the same scrypt work as a known one, so answers do not tell ids apart', async () => {
    const { token, entry } = await createToken(file, 'admin');
    const v = new TokenVerifier(file);
    const secret = 'A'.repeat(43);
    const known = `sl_${entry.id}.${secret}`;
    const unknown = `sl_${entry.id === 'zzzzzzzzzzzz' ? 'yyyyyyyyyyyy' : 'zzzzzzzzzzzz'}.${secret}`;
    expect(await v.verify(known)).toBeUndefined();
    expect([v.scryptChecks, v.lastScryptCost]).toEqual([1, scryptCost(entry.hash)]);
    expect(await v.verify(unknown)).toBeUndefined();
    expect([v.scryptChecks, v.lastScryptCost]).toEqual([2, scryptCost(entry.hash)]);
    expect(scryptCost(entry.hash)).toBe('16384$8$1');
    // The valid token costs one check, then none (remembered).
    await v.verify(token);
    await v.verify(token);
    expect(v.scryptChecks).toBe(3);
  });

  it('refuses wrong, malformed and unknown tokens', async () => {
    const { token } = await createToken(file, 'admin');
    const v = new TokenVerifier(file);
    const [head, secret] = token.split('.');
    expect(await v.verify(`${head}.${secret!.slice(0, -1)}${secret!.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();
    expect(await v.verify('sl_unknown00000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')).toBeUndefined();
    expect(await v.verify('garbage')).toBeUndefined();
    expect(await v.verify('')).toBeUndefined();
  });

  it('sees tokens added or revoked in the file without a restart', async () => {
    const a = await createToken(file, 'operate');
    const v = new TokenVerifier(file);
    expect(await v.verify(a.token)).toBeDefined();
    const b = await createToken(file, 'admin');
    // The verifier learns of the change from a watch on the file's dir.
    await vi.waitFor(async () => expect((await v.verify(b.token))?.role).toBe('admin'), { timeout: 3000 });
    // Revoke a: rewrite the file without it.
    const kept = JSON.parse(fs.readFileSync(file, 'utf8')).tokens.filter((t: { id: string }) => t.id !== a.entry.id);
    fs.writeFileSync(file, JSON.stringify({ tokens: kept, revoked: 1 }));
    await vi.waitFor(async () => expect(await v.verify(a.token)).toBeUndefined(), { timeout: 3000 });
    expect(await v.verify(b.token)).toBeDefined();
  });

  it('names what is wrong', async () => {
    await expect(createToken(file, 'root')).rejects.toThrow('role "root" is not one of invoke, operate, admin');
    await expect(createToken(file, 'admin', ['a'])).rejects.toThrow('--scopes limits invoke tokens; a admin token covers every scope');
    await expect(createToken(file, 'invoke', ['../x'])).rejects.toThrow(/scope name "..\/x" may only hold/);
    fs.writeFileSync(file, '{nope');
    expect(() => new TokenVerifier(file)).toThrow(`tokens file ${file} is not valid JSON`);
  });
});
