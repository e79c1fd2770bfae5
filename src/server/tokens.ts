// Bearer tokens for `sandlet serve`. The tokens file holds only scrypt hashes, each with a role
// (and, for `invoke`, optionally the scopes it may use). A token is `sl_<id>.<secret>`: the id
// finds the entry without trying every hash; the secret is what scrypt checks.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, createHash, type ScryptOptions } from 'node:crypto';
import fs from 'node:fs';
import { atomicWriteFileSync } from '../cache/atomic-file.js';
import { SandletError } from '../errors.js';
import { validateScopeName } from '../names.js';
import { fileStamp } from '../util/file-stamp.js';

export const ROLES = ['invoke', 'operate', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenEntry {
  id: string;
  role: Role;
  /** For `invoke`: the only scopes it may invoke in (absent: any). */
  scopes?: string[];
  /** `scrypt$N$r$p$<salt b64>$<hash b64>` */
  hash: string;
  created: string;
  note?: string;
}

export interface Principal {
  id: string;
  role: Role;
  scopes?: string[];
}

const SCRYPT = { N: 16384, r: 8, p: 1 };
const KEY_LEN = 32;
const TOKEN_RE = /^sl_([a-z0-9]{12})\.([A-Za-z0-9_-]{43})$/;

function scrypt(secret: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(secret, salt, keylen, { ...opts, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))));
}

async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(secret, salt, KEY_LEN, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Stored hashes are `scrypt$N$r$p$<salt>$<hash>`; this is the cost part, what a check spends. */
export function scryptCost(stored: string): string {
  return stored.split('$').slice(1, 4).join('$');
}

async function checkSecret(secret: string, stored: string): Promise<boolean> {
  const [algo, n, r, p, salt, hash] = stored.split('$');
  if (algo !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scrypt(secret, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** What an unknown id is checked against: the same cost as a real entry, matching no secret. */
function dummyHash(): string {
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, randomBytes(16).toString('base64'), randomBytes(KEY_LEN).toString('base64')].join('$');
}

function readEntries(file: string): TokenEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new SandletError('EBADCONFIG', `cannot read tokens file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let parsed: { tokens?: unknown };
  try {
    parsed = JSON.parse(text) as { tokens?: unknown };
  } catch {
    throw new SandletError('EBADCONFIG', `tokens file ${file} is not valid JSON`);
  }
  if (!Array.isArray(parsed.tokens)) throw new SandletError('EBADCONFIG', `tokens file ${file} must hold {"tokens": [...]}`);
  return parsed.tokens as TokenEntry[];
}

/** Adds a token to the file (created 0600 if absent) and returns it: the only time it is shown. */
export async function createToken(file: string, role: string, scopes?: string[], note?: string): Promise<{ token: string; entry: TokenEntry }> {
  if (!(ROLES as readonly string[]).includes(role)) throw new SandletError('EBADNAME', `role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`);
  if (scopes && role !== 'invoke') throw new SandletError('EBADNAME', `--scopes limits invoke tokens; a ${role} token covers every scope`);
  const valid = scopes?.map((s) => validateScopeName(s));
  const id = randomBytes(9).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '0').slice(0, 12);
  const secret = randomBytes(32).toString('base64url');
  const entry: TokenEntry = {
    id,
    role: role as Role,
    ...(valid ? { scopes: valid } : {}),
    hash: await hashSecret(secret),
    created: new Date().toISOString(),
    ...(note ? { note } : {}),
  };
  const entries = readEntries(file);
  atomicWriteFileSync(file, `${JSON.stringify({ tokens: [...entries, entry] }, null, 2)}\n`, 0o600);
  return { token: `sl_${id}.${secret}`, entry };
}

/**
 * Checks tokens against the file, re-read when it changes. scrypt is deliberately slow, so a token
 * that verified once is remembered (by its sha256, in memory only) until the file changes.
 */
export class TokenVerifier {
  private readonly file: string;
  private entries = new Map<string, TokenEntry>();
  private stamp = '';
  private readonly verified = new Map<string, Principal>();
  /** Set by a watch on the file's dir: the file is read again only after it changed. */
  private dirty = true;
  private watcher: fs.FSWatcher | undefined;
  private readonly dummy = dummyHash();
  /** scrypt checks run, and the cost of the last: what tests compare across known and unknown ids. */
  scryptChecks = 0;
  lastScryptCost = '';

  constructor(file: string) {
    this.file = file;
    this.reload();
    try {
      const base = file.slice(file.lastIndexOf('/') + 1);
      this.watcher = fs.watch(file.slice(0, file.lastIndexOf('/')) || '/', (_event, name) => {
        if (!name || name === base || name.startsWith('.tmp-')) this.dirty = true;
      });
      this.watcher.unref();
      this.watcher.on('error', () => (this.watcher = undefined));
    } catch {
      this.watcher = undefined; // no dir to watch yet: stat on every check instead
    }
  }

  close(): void {
    this.watcher?.close();
  }

  get size(): number {
    return this.entries.size;
  }

  private checkedAt = 0;

  private reload(): void {
    // The watch makes changes visible at once; a stat a second covers a watch that missed one.
    const now = Date.now();
    if (!this.dirty && this.watcher && now - this.checkedAt < 1000) return;
    this.dirty = false;
    this.checkedAt = now;
    const stamp = fileStamp(this.file);
    if (stamp === this.stamp) return;
    this.entries = new Map(readEntries(this.file).map((e) => [e.id, e]));
    this.stamp = stamp;
    this.verified.clear();
  }

  /** The id part of a token shaped like one (what a guesser guesses against), else undefined. */
  static idOf(token: string): string | undefined {
    return TOKEN_RE.exec(token)?.[1];
  }

  /** The principal of a token that verified before (no scrypt), else undefined. */
  known(token: string): Principal | undefined {
    this.reload();
    return this.verified.get(createHash('sha256').update(token).digest('hex'));
  }

  /**
   * The principal a token stands for, or undefined when it is not valid. An unknown id costs the
   * same scrypt as a known one (checked against a dummy hash), so answers do not tell ids apart.
   */
  async verify(token: string): Promise<Principal | undefined> {
    this.reload();
    const digest = createHash('sha256').update(token).digest('hex');
    const known = this.verified.get(digest);
    if (known) return known;
    const m = TOKEN_RE.exec(token);
    if (!m) return undefined; // not even shaped like a token: nothing about ids to hide
    const entry = this.entries.get(m[1]!);
    const stored = entry?.hash ?? this.dummy;
    this.scryptChecks++;
    this.lastScryptCost = scryptCost(stored);
    if (!(await checkSecret(m[2]!, stored)) || !entry) return undefined;
    const principal: Principal = { id: entry.id, role: entry.role, ...(entry.scopes ? { scopes: entry.scopes } : {}) };
    if (this.verified.size >= 10_000) this.verified.clear();
    this.verified.set(digest, principal);
    return principal;
  }
}
