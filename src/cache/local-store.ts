// The embedded storlet store: content under <store_dir>/objects/<sha256>, registrations under
// <store_dir>/storlets/<name>.json and <store_dir>/dependencies/<name>.json. Every write is a
// temp file, fsync, rename: a reader sees the old version or the new one, never half of one.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SandletError } from '../errors.js';
import { validateDependencyName, validateStorletName } from '../names.js';
import {
  validateStorletRegistration,
  type DependencyRegistration,
  type StorletRegistration,
  type StorletRegistrationInput,
} from './registration.js';

export class LocalStore {
  readonly root: string;
  private readonly cache = new Map<string, { mtimeMs: number; size: number; reg: StorletRegistration | DependencyRegistration }>();

  constructor(root: string) {
    this.root = root;
  }

  private dir(kind: 'storlets' | 'dependencies' | 'objects' | 'tmp'): string {
    return path.join(this.root, kind);
  }

  objectPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new SandletError('EBADREGISTRATION', `bad content digest ${sha256}`);
    return path.join(this.dir('objects'), sha256);
  }

  /** Validates and stores a storlet. Listed dependencies must be deployed already. */
  deployStorlet(content: Buffer, input: StorletRegistrationInput): StorletRegistration {
    const base = validateStorletRegistration(input);
    for (const dep of base.dependencies) {
      if (!this.findDependency(dep)) {
        throw new SandletError('EBADREGISTRATION', `registration: dependency: ${JSON.stringify(dep)} is not deployed; deploy it first with \`sandlet deploy FILE --dependency-file\``);
      }
    }
    const reg: StorletRegistration = { ...base, ...this.putObject(content) };
    this.writeJson(path.join(this.dir('storlets'), `${reg.name}.json`), reg);
    return reg;
  }

  deployDependency(content: Buffer, name: string): DependencyRegistration {
    let valid: string;
    try {
      valid = validateDependencyName(name);
    } catch (err) {
      throw new SandletError('EBADREGISTRATION', `registration: name: ${(err as Error).message}`);
    }
    const reg: DependencyRegistration = { kind: 'dependency', name: valid, ...this.putObject(content) };
    this.writeJson(path.join(this.dir('dependencies'), `${valid}.json`), reg);
    return reg;
  }

  getStorlet(name: string): StorletRegistration {
    const reg = this.read(path.join(this.dir('storlets'), `${validateStorletName(name)}.json`)) as StorletRegistration | undefined;
    if (!reg) throw new SandletError('ENOSTORLET', `storlet ${name} is not deployed (store ${this.root})`);
    return reg;
  }

  findDependency(name: string): DependencyRegistration | undefined {
    return this.read(path.join(this.dir('dependencies'), `${validateDependencyName(name)}.json`)) as DependencyRegistration | undefined;
  }

  getDependency(name: string): DependencyRegistration {
    const reg = this.findDependency(name);
    if (!reg) throw new SandletError('ENOSTORLET', `dependency ${name} is not deployed (store ${this.root})`);
    return reg;
  }

  listStorlets(): StorletRegistration[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir('storlets')).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    return names.map((n) => this.getStorlet(n.slice(0, -5)));
  }

  // Registrations are read on every invocation: re-parse only when the file changed.
  private read(file: string): StorletRegistration | DependencyRegistration | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      this.cache.delete(file);
      return undefined;
    }
    const hit = this.cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.reg;
    const reg = JSON.parse(fs.readFileSync(file, 'utf8')) as StorletRegistration | DependencyRegistration;
    this.cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, reg });
    return reg;
  }

  private putObject(content: Buffer): { sha256: string; size: number; deployedAt: string } {
    const sha256 = createHash('sha256').update(content).digest('hex');
    const target = this.objectPath(sha256);
    if (!fs.existsSync(target)) this.atomicWrite(target, content, 0o644);
    return { sha256, size: content.length, deployedAt: new Date().toISOString() };
  }

  private writeJson(file: string, value: unknown): void {
    this.atomicWrite(file, Buffer.from(`${JSON.stringify(value, null, 2)}\n`), 0o644);
  }

  private atomicWrite(file: string, content: Buffer, mode: number): void {
    const tmpDir = this.dir('tmp');
    fs.mkdirSync(tmpDir, { recursive: true });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = path.join(tmpDir, `${path.basename(file)}.${randomBytes(6).toString('hex')}`);
    const fd = fs.openSync(tmp, 'wx', mode);
    try {
      fs.writeSync(fd, content);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    try {
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }
}

/** The daemon version of a storlet: its content and its dependencies' content. */
export function storletVersion(reg: StorletRegistration, deps: DependencyRegistration[]): string {
  const h = createHash('sha256').update(reg.sha256).update(reg.main);
  for (const d of deps) h.update(`${d.name}:${d.sha256}`);
  return h.digest('hex').slice(0, 16);
}
