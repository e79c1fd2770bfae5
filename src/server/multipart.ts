// `multipart/mixed` invocation bodies: the object, then extra inputs, each part with its own
// `X-Object-Meta-*` headers. Parts arrive one after the other but a storlet may read them in any
// order, so each is spooled to an unlinked temp file and handed over as an fd (no memory growth,
// nothing left on disk: the fd is the only reference).
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { tempName } from '../cache/atomic-file.js';
import { RequestError } from './http-errors.js';
import { metaFromHeaders } from './object-meta.js';

export interface SpooledPart {
  fd: number;
  metadata: Record<string, string>;
  size: number;
}

const MAX_PARTS = 64;
const MAX_HEADER_BYTES = 64 * 1024;

export function boundaryOf(contentType: string): string | undefined {
  if (!/^multipart\/mixed\b/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!m) throw new RequestError(400, 'EBADNAME', 'multipart/mixed needs a boundary parameter');
  return m[1] ?? m[2];
}

/**
 * Reads the whole body into spooled parts. On any error every fd opened so far is closed and the
 * error rethrown. The caller owns the returned fds.
 */
export async function spoolMultipart(body: Readable, boundary: string, tmpDir: string, maxBytes: number): Promise<SpooledPart[]> {
  await fs.promises.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const parts: SpooledPart[] = [];
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // The first boundary may open the body without a preceding CRLF.
  let buf: Buffer = Buffer.from('\r\n');
  let state: 'preamble' | 'after-boundary' | 'headers' | 'content' | 'done' = 'preamble';
  let current: { fh: fs.promises.FileHandle; readFd: number; metadata: Record<string, string>; size: number } | undefined;
  let total = 0;

  const openPart = async (headerText: string): Promise<void> => {
    if (parts.length >= MAX_PARTS) throw new RequestError(400, 'EBADNAME', `a multipart body may hold at most ${MAX_PARTS} parts`);
    const headers: [string, string][] = [];
    for (const line of headerText.split('\r\n')) {
      if (!line) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new RequestError(400, 'EBADNAME', `multipart part ${parts.length + 1} has a malformed header line`);
      headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    const file = tempName(tmpDir, 'part');
    const fh = await fs.promises.open(file, 'wx', 0o600);
    let readFd: number;
    try {
      readFd = fs.openSync(file, 'r');
    } catch (err) {
      await fh.close();
      fs.rmSync(file, { force: true });
      throw err;
    }
    fs.rmSync(file, { force: true });
    current = { fh, readFd, metadata: metaFromHeaders(headers), size: 0 };
  };

  const closePart = async (): Promise<void> => {
    if (!current) return;
    const { fh, readFd, metadata, size } = current;
    current = undefined;
    await fh.close();
    parts.push({ fd: readFd, metadata, size });
  };

  const write = async (chunk: Buffer): Promise<void> => {
    if (chunk.length === 0 || !current) return;
    current.size += chunk.length;
    await current.fh.write(chunk);
  };

  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) throw new RequestError(413, 'ETOOLARGE', `the multipart body is larger than ${maxBytes} bytes`);
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        if (state === 'done') {
          buf = Buffer.alloc(0); // epilogue: ignored
          break;
        }
        if (state === 'preamble' || state === 'content') {
          const at = buf.indexOf(delimiter);
          if (at < 0) {
            // Keep what could be the start of a delimiter; the rest is content (or preamble).
            const keep = Math.min(buf.length, delimiter.length - 1);
            if (state === 'content') await write(buf.subarray(0, buf.length - keep));
            buf = buf.subarray(buf.length - keep);
            break;
          }
          if (state === 'content') {
            await write(buf.subarray(0, at));
            await closePart();
          }
          buf = buf.subarray(at + delimiter.length);
          state = 'after-boundary';
        }
        if (state === 'after-boundary') {
          if (buf.length < 2) break;
          if (buf[0] === 0x2d && buf[1] === 0x2d) {
            state = 'done';
            continue;
          }
          const eol = buf.indexOf('\r\n');
          if (eol < 0) {
            if (buf.length > 1024) throw new RequestError(400, 'EBADNAME', 'malformed multipart boundary line');
            break;
          }
          buf = buf.subarray(eol + 2); // transport padding after the boundary is allowed
          state = 'headers';
        }
        if (state === 'headers') {
          const end = buf.indexOf('\r\n\r\n');
          const empty = buf.subarray(0, 2).equals(Buffer.from('\r\n'));
          if (end < 0 && !empty) {
            if (buf.length > MAX_HEADER_BYTES) throw new RequestError(400, 'EBADNAME', `multipart part headers are larger than ${MAX_HEADER_BYTES} bytes`);
            break;
          }
          const headerEnd = empty ? 0 : end;
          await openPart(buf.subarray(0, headerEnd).toString('utf8'));
          buf = buf.subarray(headerEnd + (empty ? 2 : 4));
          state = 'content';
        }
      }
    }
    if (state !== 'done') throw new RequestError(400, 'EBADNAME', 'the multipart body ended before its closing boundary');
    if (parts.length === 0) throw new RequestError(400, 'EBADNAME', 'the multipart body has no parts; the first part is the object');
    return parts;
  } catch (err) {
    if (current) {
      await current.fh.close().catch(() => {});
      fs.closeSync(current.readFd);
    }
    for (const p of parts) fs.closeSync(p.fd);
    throw err;
  }
}

export function spoolDir(hostRoot: string): string {
  return path.join(hostRoot, 'tmp');
}
