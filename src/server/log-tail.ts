// Invocation logs for operators: the last lines, and what is appended after them.
import fs from 'node:fs';
import type { ServerResponse } from 'node:http';

/** The last `n` lines of a file (reading only its end) and the size they were taken at. */
export async function tailLines(file: string, n: number): Promise<{ text: string; size: number }> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch {
    return { text: '', size: 0 };
  }
  try {
    const { size } = await fh.stat();
    if (n === 0) return { text: '', size };
    const chunk = 64 * 1024;
    let pos = size;
    let buf = Buffer.alloc(0);
    while (pos > 0) {
      const len = Math.min(chunk, pos);
      pos -= len;
      const part = Buffer.alloc(len);
      await fh.read(part, 0, len, pos);
      buf = Buffer.concat([part, buf]);
      // n lines need n newlines after the cut (the last line may lack one).
      let count = 0;
      for (let i = buf.length - 2; i >= 0; i--) if (buf[i] === 0x0a && ++count >= n) return { text: buf.subarray(i + 1).toString('utf8'), size };
    }
    return { text: buf.toString('utf8'), size };
  } finally {
    await fh.close();
  }
}

/**
 * Streams what is appended to `file` after `from`, until the client goes away. Driven by
 * fs.watch on the log's dir (the file may not exist yet, and rotation renames it).
 */
export function followFile(file: string, from: number, res: ServerResponse): void {
  let pos = from;
  let reading = false;
  let again = false;
  let closed = false;
  const dir = file.slice(0, file.lastIndexOf('/'));
  fs.mkdirSync(dir, { recursive: true });
  const watcher = fs.watch(dir, () => void pump());
  const stop = (): void => {
    closed = true;
    watcher.close();
  };
  watcher.on('error', () => {
    stop();
    res.end();
  });
  res.on('close', stop);

  async function pump(): Promise<void> {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        let fh: fs.promises.FileHandle;
        try {
          fh = await fs.promises.open(file, 'r');
        } catch {
          continue; // rotated away; the next event brings the new file
        }
        try {
          const { size } = await fh.stat();
          if (size < pos) pos = 0; // rotated or truncated: the new file from its start
          while (pos < size && !closed) {
            const buf = Buffer.alloc(Math.min(64 * 1024, size - pos));
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead === 0) break;
            pos += bytesRead;
            if (!res.write(buf.subarray(0, bytesRead))) {
              await new Promise((r) => {
                res.once('drain', r);
                res.once('close', r); // a client gone while we wait must not pin the file open
              });
            }
          }
        } finally {
          await fh.close();
        }
      } while (again && !closed);
    } finally {
      reading = false;
    }
  }
}
