// The embedded storlet store: content under <store_dir>/objects/<sha256>, registrations under
// <store_dir>/storlets/<name>.json and <store_dir>/dependencies/<name>.json. Every write is a
// temp file, fsync, rename: a reader sees the old version or the new one, never half of one.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SandletError } from '../errors.js';
import { validateDependencyName, validateStorletName } from '../names.js';
import { atomicWriteFileSync } from './atomic-file.js';
import {
  validateDependencyRegistration,
  validateStorletRegistration,
  type DependencyRegistration,
  type DependencyRegistrationInput,
  type StorletRegistration,
  type StorletRegistrationInput,
} from './registration.js';
import type { DeployInput, ItemKind, StoreItem, StorletStore } from './storlet-store.js';

type Registration = StorletRegistration | DependencyRegistration;

export class LocalStore implements StorletStore {
  readonly root: string;
  readonly description: string;
  private readonly parsed = new Map<string, { mtimeMs: number; size: number; reg: Registration }>();

  constructor(root: string) {
    this.root = root;
    this.description = `local store ${root}`;
  }

  private dir(kind: 'storlets' | 'dependencies' | 'objects' | 'tmp'): string {
    return path.join(this.root, kind);
  }

  objectPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new SandletError('EBADREGISTRATION', `bad content digest ${sha256}`);
    return path.join(this.dir('objects'), sha256);
  }

  private registrationPath(kind: ItemKind, name: string): string {
    return kind === 'storlet'
      ? path.join(this.dir('storlets'), `${validateStorletName(name)}.json`)
      : path.join(this.dir('dependencies'), `${validateDependencyName(name)}.json`);
  }

  /** Validates and stores a storlet. Listed dependencies must be deployed already. */
  deployStorlet(content: Buffer, input: StorletRegistrationInput): StorletRegistration {
    const meta = validateStorletRegistration(input);
    for (const dep of meta.dependencies) {
      if (!this.findDependency(dep)) {
        throw new SandletError('EBADREGISTRATION', `registration: dependency: ${JSON.stringify(dep)} is not deployed in the ${this.description}; deploy it first with \`sandlet deploy FILE --dependency-file\``);
      }
    }
    const reg: StorletRegistration = { ...meta, ...this.putObject(content) };
    this.writeJson(this.registrationPath('storlet', reg.name), reg);
    return reg;
  }

  deployDependency(content: Buffer, input: DependencyRegistrationInput): DependencyRegistration {
    const reg: DependencyRegistration = { ...validateDependencyRegistration(input), ...this.putObject(content) };
    this.writeJson(this.registrationPath('dependency', reg.name), reg);
    return reg;
  }

  async deploy(content: Buffer, input: DeployInput): Promise<Registration> {
    return input.kind === 'storlet' ? this.deployStorlet(content, input) : this.deployDependency(content, input);
  }

  getStorlet(name: string): StorletRegistration {
    const reg = this.read(this.registrationPath('storlet', name)) as StorletRegistration | undefined;
    if (!reg) throw new SandletError('ENOSTORLET', `storlet ${name} is not deployed in the ${this.description}`);
    return reg;
  }

  findDependency(name: string): DependencyRegistration | undefined {
    return this.read(this.registrationPath('dependency', name)) as DependencyRegistration | undefined;
  }

  getDependency(name: string): DependencyRegistration {
    const reg = this.findDependency(name);
    if (!reg) throw new SandletError('ENOSTORLET', `dependency ${name} is not deployed in the ${this.description}`);
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

  async stat(kind: ItemKind, name: string): Promise<StoreItem> {
    const reg = kind === 'storlet' ? this.getStorlet(name) : this.getDependency(name);
    const { sha256, size, deployedAt: _at, ...meta } = reg;
    const expected = { sha256, size };
    // The digest is the content's identity: nothing else can change it.
    return meta.kind === 'storlet' ? { kind: 'storlet', meta, stamp: sha256, expected } : { kind: 'dependency', meta, stamp: sha256, expected };
  }

  async open(kind: ItemKind, name: string): Promise<{ item: StoreItem; body: fs.ReadStream }> {
    const item = await this.stat(kind, name);
    const file = this.objectPath(item.expected.sha256!);
    const fd = await fs.promises.open(file).catch((err: NodeJS.ErrnoException) => {
      throw new SandletError('ESTORE', `the ${this.description} lost the content of ${kind} ${name} (${file}: ${err.code ?? err.message})`);
    });
    return { item, body: fd.createReadStream() };
  }

  // Registrations may be read often: re-parse only when the file changed.
  private read(file: string): Registration | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      this.parsed.delete(file);
      return undefined;
    }
    const hit = this.parsed.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.reg;
    const reg = JSON.parse(fs.readFileSync(file, 'utf8')) as Registration;
    this.parsed.set(file, { mtimeMs: st.mtimeMs, size: st.size, reg });
    return reg;
  }

  private putObject(content: Buffer): { sha256: string; size: number; deployedAt: string } {
    const sha256 = createHash('sha256').update(content).digest('hex');
    const target = this.objectPath(sha256);
    if (!fs.existsSync(target)) atomicWriteFileSync(target, content, 0o444, this.dir('tmp'));
    return { sha256, size: content.length, deployedAt: new Date().toISOString() };
  }

  private writeJson(file: string, value: unknown): void {
    atomicWriteFileSync(file, `${JSON.stringify(value, null, 2)}\n`, 0o644, this.dir('tmp'));
  }
}
