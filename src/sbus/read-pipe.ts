import { SandletError } from '../errors.js';
import type { Teardown } from '../util/teardown.js';
import { formatBytes, formatMs } from './fd-io.js';
import { closeQuietly, native } from './native.js';

export interface ReadAllOptions {
  maxBytes: number;
  /** 0 waits for as long as it takes (bounded by `teardown`). */
  timeoutMs: number;
  /** Names the stream in errors, e.g. "output metadata". */
  what: string;
  /** Cancels the read (ECANCELLED) when it runs first. */
  teardown?: Teardown;
  /**
   * Also done when what was read ends with a newline: sandlet's agent ends a JSON line so, written
   * by the task's thread, before its daemon closes the pipe (a thread hop later).
   */
  untilNewline?: boolean;
}

/**
 * Reads a pipe to EOF (see untilNewline), bounded in size and time, with the addon's poll-driven reader (no stream
 * object per read: this runs several times per invocation). Takes ownership of fd: it is closed on
 * every path.
 */
export function readPipeToEnd(fd: number, opts: ReadAllOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (err: Error | null, data?: Buffer): void => {
      settled = true;
      if (timer) clearTimeout(timer);
      if (err) reject(err);
      else resolve(data!);
    };
    let reader: number;
    try {
      reader = native.readToEnd(fd, opts.maxBytes, (code, data) => {
        if (code === null) finish(null, data!);
        else if (code === 'ETOOLARGE') finish(new SandletError('ETOOLARGE', `${opts.what} exceeds the ${formatBytes(opts.maxBytes)} bound`));
        else finish(new SandletError('ESBUSPROTO', `reading ${opts.what} failed: ${code}`));
      }, opts.untilNewline === true);
    } catch (err) {
      closeQuietly([fd]); // the addon leaves fd open when it could not start the read
      reject(err);
      return;
    }
    const onTeardown = (): void => {
      if (settled) return;
      native.cancelRead(reader);
      finish(new SandletError('ECANCELLED', `reading ${opts.what} was cancelled`));
    };
    if (opts.timeoutMs > 0) {
      timer = setTimeout(() => {
        native.cancelRead(reader);
        finish(new SandletError('ETIMEDOUT', `no ${opts.what} within ${formatMs(opts.timeoutMs)}`));
      }, opts.timeoutMs);
    }
    opts.teardown?.add(onTeardown);
  });
}

