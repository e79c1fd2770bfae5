// Multipart uploads to access points: the parts are spooled to files in a private directory
// (mode 0700) under the gateway root, never held in memory, so that CompleteMultipartUpload can
// run the storlet once over the whole object, parts in order. The spool's total size is bounded
// (s3_multipart_spool_max_bytes); uploads nobody completes or aborts expire after s3_multipart_ttl
// seconds without a new part, swept at start and by an unref'd timer.
//
// On disk: <dir>/<uploadId>/upload.json (what the upload is bound to), committed parts
// part-<n>-<md5 hex> (renamed into place whole, so a listing never sees half a part), and parts
// being written as .tmp-* files. The state is the directory: a restarted server resumes uploads.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { oneLine } from '../../errors.js';
import { S3Error } from './s3-errors.js';

/** What an upload is bound to, and the object's headers given at CreateMultipartUpload. */
export interface UploadMeta {
  id: string;
  accessPoint: string;
  key: string;
  /** The S3 key id that created it: only that key may add parts, complete, abort or list it. */
  keyId: string;
  /** Content-Type and x-amz-meta-* of the CreateMultipartUpload request. */
  headers: Record<string, string>;
  /** Epoch ms. */
  created: number;
}

export interface SpooledPart {
  number: number;
  /** Quoted, as S3 gives it: the MD5 of the part's bytes. */
  etag: string;
  size: number;
  file: string;
  modified: Date;
}

export interface MultipartSpoolOptions {
  dir: string;
  maxBytes: number;
  ttlMs: number;
  logger: Logger;
}

/** S3's part rules: numbers 1–10000, each part but the last at least 5 MiB, at most 5 GiB. */
export const MAX_PART_NUMBER = 10_000;
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PART_BYTES = 5 * 1024 ** 3;
const ID_RE = /^[A-Za-z0-9_-]{43}$/;
const PART_RE = /^part-(\d{5})-([0-9a-f]{32})$/;
const META_FILE = 'upload.json';
/** The sweep runs at this period at most (and twice per TTL when that is shorter). */
const MAX_SWEEP_MS = 10 * 60_000;

/** The spool's private directory under the gateway root. */
export function multipartSpoolDir(hostRoot: string): string {
  return path.join(hostRoot, 's3-multipart');
}

const noSuchUpload = (): S3Error => new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');

export class MultipartSpool {
  private readonly o: MultipartSpoolOptions;
  private used = 0;
  /** Uploads with a part being written or a Complete running: the sweep leaves them alone. */
  private readonly busy = new Map<string, number>();
  private readonly completing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: MultipartSpoolOptions) {
    this.o = opts;
  }

  /** Makes the directory, counts what a previous run left, removes what expired, starts the timer. */
  start(): void {
    fs.mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.o.dir, 0o700);
    this.used = 0;
    for (const id of this.ids()) for (const p of this.partsIn(id)) this.used += p.size;
    this.sweep();
    this.timer = setInterval(() => this.sweep(), Math.max(1000, Math.min(this.o.ttlMs / 2, MAX_SWEEP_MS)));
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Bytes of committed parts and of parts being written. */
  get usedBytes(): number {
    return this.used;
  }

  create(meta: Omit<UploadMeta, 'id' | 'created'>): UploadMeta {
    const upload: UploadMeta = { ...meta, id: randomBytes(32).toString('base64url'), created: Date.now() };
    const dir = this.dirOf(upload.id);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, META_FILE), JSON.stringify(upload), { mode: 0o600 });
    return upload;
  }

  /**
   * The upload `id`, if it is bound to this access point and key (else NoSuchUpload, as S3 says
   * for an id of another object) and was created by this S3 key (else AccessDenied).
   */
  open(id: string, bound: { accessPoint: string; key: string; keyId: string }): UploadMeta {
    const upload = this.read(id);
    if (!upload || upload.accessPoint !== bound.accessPoint || upload.key !== bound.key) throw noSuchUpload();
    if (upload.keyId !== bound.keyId) throw new S3Error('AccessDenied', `Access Denied: upload ${id.slice(0, 8)}… was created by another S3 key`);
    return upload;
  }

  /** This key's uploads on an access point, by key, then id. */
  list(accessPoint: string, keyId: string): UploadMeta[] {
    const out: UploadMeta[] = [];
    for (const id of this.ids()) {
      const u = this.read(id);
      if (u && u.accessPoint === accessPoint && u.keyId === keyId) out.push(u);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1));
  }

  /** Committed parts, by part number. */
  parts(upload: UploadMeta): SpooledPart[] {
    return this.partsIn(upload.id).sort((a, b) => a.number - b.number);
  }

  /**
   * Writes one part from `body` (replacing a part of the same number once whole). The bytes count
   * against the spool's bound as they arrive: a part that does not fit fails with
   * ServiceUnavailable and leaves nothing. `length`, when the client announced it, fails it at once.
   */
  async writePart(upload: UploadMeta, number: number, body: Readable, length?: number): Promise<SpooledPart> {
    this.notCompleting(upload);
    if (length !== undefined) {
      if (length > MAX_PART_BYTES || length > this.o.maxBytes) throw new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed size: a part holds at most ${Math.min(MAX_PART_BYTES, this.o.maxBytes)} bytes here`);
      if (this.used + length > this.o.maxBytes) throw this.full();
    }
    const dir = this.dirOf(upload.id);
    const tmp = path.join(dir, `.tmp-${number}-${randomBytes(6).toString('hex')}`);
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw noSuchUpload(); // aborted or expired meanwhile
      throw err;
    }
    this.hold(upload.id, 1);
    const md5 = createHash('md5');
    let written = 0;
    const count = new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void => {
        if (written + chunk.length > MAX_PART_BYTES) return cb(new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed size: a part holds at most ${MAX_PART_BYTES} bytes`));
        if (this.used + chunk.length > this.o.maxBytes) return cb(this.full());
        this.used += chunk.length;
        written += chunk.length;
        md5.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, count, fs.createWriteStream(tmp, { fd }));
      const etag = md5.digest('hex');
      const name = `part-${String(number).padStart(5, '0')}-${etag}`;
      // Synchronous from here: two uploads of one part number commit one after the other, and
      // none changes the parts a Complete is reading.
      this.notCompleting(upload);
      const replaced = this.partsIn(upload.id).filter((p) => p.number === number);
      fs.renameSync(tmp, path.join(dir, name));
      for (const p of replaced) {
        if (path.basename(p.file) !== name) fs.rmSync(p.file, { force: true });
        this.used -= p.size;
      }
      return { number, etag: `"${etag}"`, size: written, file: path.join(dir, name), modified: new Date() };
    } catch (err) {
      this.used -= written;
      fs.rmSync(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw noSuchUpload();
      throw err;
    } finally {
      this.hold(upload.id, -1);
    }
  }

  /**
   * The parts a CompleteMultipartUpload names, checked as S3 checks them: ascending numbers
   * (InvalidPartOrder), each spooled with that ETag (InvalidPart), each but the last at least
   * 5 MiB (EntityTooSmall).
   */
  chosenParts(upload: UploadMeta, wanted: { number: number; etag: string }[]): SpooledPart[] {
    if (wanted.length === 0) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema: no Part');
    const have = new Map(this.parts(upload).map((p) => [p.number, p]));
    const chosen: SpooledPart[] = [];
    let previous = 0;
    for (const w of wanted) {
      if (w.number <= previous) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      previous = w.number;
      const p = have.get(w.number);
      if (!p || p.etag.replace(/"/g, '') !== w.etag.replace(/"/g, '')) {
        throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part\'s entity tag.', { UploadId: upload.id, PartNumber: String(w.number) });
      }
      chosen.push(p);
    }
    for (const p of chosen.slice(0, -1)) {
      if (p.size < MIN_PART_BYTES) throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', { PartNumber: String(p.number), ProposedSize: String(p.size), MinSizeAllowed: String(MIN_PART_BYTES) });
    }
    return chosen;
  }

  /** Marks a Complete running (one at a time per upload); release with `endComplete`. */
  beginComplete(upload: UploadMeta): void {
    this.notCompleting(upload);
    this.completing.add(upload.id);
    this.hold(upload.id, 1);
  }

  endComplete(upload: UploadMeta): void {
    if (this.completing.delete(upload.id)) this.hold(upload.id, -1);
  }

  /** Abort: removes the upload and its parts. A Complete in progress keeps it. */
  abort(upload: UploadMeta): void {
    this.notCompleting(upload);
    this.remove(upload.id);
  }

  private notCompleting(upload: UploadMeta): void {
    if (this.completing.has(upload.id)) throw new S3Error('OperationAborted', 'A conflicting operation is in progress on this upload: it is being completed. Please try again.');
  }

  /** Removes an upload's directory (parts, temp files) and its bytes from the count. */
  remove(id: string): void {
    for (const p of this.partsIn(id)) this.used -= p.size;
    fs.rmSync(this.dirOf(id), { recursive: true, force: true });
  }

  /** Removes uploads with no new part for the TTL (not those in use), and anything that is not an upload. */
  sweep(now = Date.now()): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.o.dir);
    } catch (err) {
      this.o.logger.warn({ err: oneLine(err) }, 'the S3 multipart spool cannot be read');
      return;
    }
    for (const name of names) {
      try {
        if (!ID_RE.test(name)) {
          fs.rmSync(path.join(this.o.dir, name), { recursive: true, force: true });
          continue;
        }
        if (this.busy.has(name)) continue;
        const last = fs.statSync(this.dirOf(name)).mtimeMs;
        if (now - last < this.o.ttlMs) continue;
        this.remove(name);
        this.o.logger.info({ upload: name.slice(0, 8) }, 'an abandoned S3 multipart upload expired');
      } catch (err) {
        this.o.logger.warn({ err: oneLine(err) }, 'the S3 multipart spool sweep failed on an entry');
      }
    }
  }

  private full(): S3Error {
    return new S3Error('ServiceUnavailable', `sandlet's multipart spool is full (s3_multipart_spool_max_bytes, ${this.o.maxBytes} bytes): complete or abort uploads, or retry later`);
  }

  private hold(id: string, d: number): void {
    const n = (this.busy.get(id) ?? 0) + d;
    if (n > 0) this.busy.set(id, n);
    else this.busy.delete(id);
  }

  private dirOf(id: string): string {
    if (!ID_RE.test(id)) throw noSuchUpload();
    return path.join(this.o.dir, id);
  }

  private ids(): string[] {
    try {
      return fs.readdirSync(this.o.dir).filter((n) => ID_RE.test(n));
    } catch {
      return [];
    }
  }

  private read(id: string): UploadMeta | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dirOf(id), META_FILE), 'utf8')) as UploadMeta;
    } catch (err) {
      if (err instanceof S3Error) throw err;
      return undefined;
    }
  }

  private partsIn(id: string): SpooledPart[] {
    const dir = this.dirOf(id);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return [];
    }
    const out: SpooledPart[] = [];
    for (const name of names) {
      const m = PART_RE.exec(name);
      if (!m) continue;
      try {
        const st = fs.statSync(path.join(dir, name));
        out.push({ number: Number(m[1]), etag: `"${m[2]}"`, size: st.size, file: path.join(dir, name), modified: st.mtime });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }
}

/** The parts' bytes one after the other, each file opened when its turn comes and closed after it. */
export function concatParts(parts: SpooledPart[]): Readable {
  async function* read(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      const s = fs.createReadStream(p.file, { highWaterMark: 256 * 1024 });
      try {
        for await (const chunk of s) yield chunk as Buffer;
      } finally {
        s.destroy();
      }
    }
  }
  return Readable.from(read(), { objectMode: false });
}
