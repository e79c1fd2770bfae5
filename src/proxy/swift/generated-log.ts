// `X-Storlet-Generate-Log: True`: the invocation's log goes to a private temp file (unlinked at
// once, so nothing is left behind whatever happens) and is then saved as an object in the
// account's log container, written with the caller's credentials.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Upstream } from '../upstream.js';
import type { CallerCredentials } from './account-storlets.js';
import { containerPath } from './swift-path.js';

export class GeneratedLog {
  readonly fd: number;
  /** `<container>/<object>`, named before the storlet runs so a response can name it. */
  readonly name: string;
  private closed = false;

  constructor(tmpDir: string, container: string, storlet: string) {
    fs.mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
    const file = path.join(tmpDir, `storlet-log-${randomBytes(8).toString('hex')}`);
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.unlinkSync(file);
    } catch (err) {
      fs.closeSync(this.fd); // never an open fd, nor a file, left behind by a failed start
      fs.rmSync(file, { force: true });
      throw err;
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    this.name = `${container}/${storlet}-${stamp}-${randomBytes(3).toString('hex')}.log`;
  }

  /** Stores what was logged; never throws (a log that cannot be saved is worth a warning only). */
  async save(upstream: Upstream, version: string, account: string, creds: CallerCredentials, logger: Logger): Promise<void> {
    try {
      const size = fs.fstatSync(this.fd).size;
      const body = Buffer.alloc(size);
      if (size > 0) fs.readSync(this.fd, body, 0, size, 0);
      const slash = this.name.indexOf('/');
      const container = this.name.slice(0, slash);
      const object = this.name.slice(slash + 1);
      const base = containerPath(version, account, container);
      const c = await upstream.request({ method: 'PUT', path: base, headers: { ...creds } });
      await c.body.dump();
      const o = await upstream.request({ method: 'PUT', path: `${base}/${encodeURIComponent(object)}`, headers: { ...creds, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(size) }, body });
      await o.body.dump();
      if (o.statusCode >= 300) logger.warn({ account, log: this.name, status: o.statusCode }, 'the storlet log could not be saved');
    } catch (err) {
      logger.warn({ account, log: this.name, err: (err as Error).message }, 'the storlet log could not be saved');
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
