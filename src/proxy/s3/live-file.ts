// A small JSON file a running server follows: read again when it changed (a stat per read), so
// CLI and admin API edits apply without a restart. Writers replace it whole (atomic rename).
import fs from 'node:fs';
import path from 'node:path';
import { atomicWriteFileSync } from '../../cache/atomic-file.js';
import { SandletError } from '../../errors.js';
import { fileStamp } from '../../util/file-stamp.js';

/** Reads the file's JSON, or undefined when it does not exist. */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SandletError('EBADCONFIG', `cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SandletError('EBADCONFIG', `${what} file ${file} is not valid JSON`);
  }
}

export function writeJsonFile(file: string, value: unknown, mode: number): void {
  atomicWriteFileSync(file, `${JSON.stringify(value, null, 2)}\n`, mode);
  // A rename keeps the temp file's mode; an existing file created looser is tightened too.
  fs.chmodSync(file, mode);
}

export class LiveFile<T> {
  private readonly file: string;
  private readonly parse: (json: unknown) => T;
  private value: T;
  private stamp = '';

  constructor(file: string, parse: (json: unknown) => T) {
    this.file = file;
    this.parse = parse;
    this.value = parse(undefined);
    this.reload();
  }

  /** The file's current content (parsed again only when it changed). */
  get(): T {
    this.reload();
    return this.value;
  }

  private reload(): void {
    // One stat per read (microseconds): a writer's rename gives a new inode, so every edit is
    // seen by the very next request, with no watch to miss or to wait for.
    const stamp = fileStamp(this.file);
    if (stamp === this.stamp) return;
    // A file that does not parse fails the requests that read it (closed, never open) until it is fixed.
    this.value = this.parse(readJsonFile(this.file, path.basename(this.file)));
    this.stamp = stamp;
  }
}

export interface RecordFileSpec<T> {
  file: string;
  /** What the file holds, for messages: `access points`, `S3 keys`. */
  what: string;
  /** The file is `{"<listKey>": [entry, ...]}`. */
  listKey: string;
  mode: number;
  /** Checks one stored entry (throws SandletError). */
  parse(entry: unknown): T;
  id(entry: T): string;
}

/** A file of records with ids: read and written whole by the CLI and the admin API, followed live by a server. */
export class RecordFile<T> {
  private readonly spec: RecordFileSpec<T>;
  private live: LiveFile<Map<string, T>> | undefined;

  constructor(spec: RecordFileSpec<T>) {
    this.spec = spec;
  }

  private parse(json: unknown): Map<string, T> {
    if (json === undefined) return new Map();
    const list = (json as Record<string, unknown>)[this.spec.listKey];
    if (!Array.isArray(list)) throw new SandletError('EBADCONFIG', `${this.spec.what} file ${this.spec.file} must hold {"${this.spec.listKey}": [...]}`);
    const out = new Map<string, T>();
    for (const e of list) {
      const entry = this.spec.parse(e);
      out.set(this.spec.id(entry), entry);
    }
    return out;
  }

  /** Every record, read from the file now. */
  read(): Map<string, T> {
    return this.parse(readJsonFile(this.spec.file, this.spec.what));
  }

  write(all: Map<string, T>): void {
    writeJsonFile(this.spec.file, { [this.spec.listKey]: [...all.values()] }, this.spec.mode);
  }

  /** Removes a record; false when there was none with that id. */
  remove(id: string): boolean {
    const all = this.read();
    if (!all.delete(id)) return false;
    this.write(all);
    return true;
  }

  /** A record as the file holds it now (read again only when the file changed). */
  get(id: string): T | undefined {
    this.live ??= new LiveFile(this.spec.file, (json) => this.parse(json));
    return this.live.get().get(id);
  }
}
