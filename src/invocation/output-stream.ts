import { Readable } from 'node:stream';
import { SandletError } from '../errors.js';
import { formatMs } from '../sbus/fd-io.js';
import { native } from '../sbus/native.js';
import { failureReason, type TaskOutcome } from './task-outcome.js';

export interface OutputStreamOptions {
  storlet: string;
  /** Longest the storlet may stay silent while the reader wants data. */
  idleTimeoutMs: number;
  /** Longest the output may wait for a reader that wants no data (output_stall_timeout_ms). */
  readerStallMs: number;
  /** The task's outcome from the status pipe; undefined for agents that do not send one. */
  status: Promise<TaskOutcome> | undefined;
  /** Called when the storlet stalled or the reader gave up: the task should be cancelled. */
  onAbandon: () => void;
  /** Called when the storlet stayed silent while the reader wanted data (not when the reader stalled). */
  onStorletSilent?: () => void;
  explainFailure?: () => Promise<string | undefined>;
  /** Called once when the stream is over, however it ended. */
  onClose: (err: Error | null) => void;
}

/** Bytes per read of the output pipe (libuv reads sockets 64 KiB at a time too). */
const READ_CHUNK_BYTES = 64 * 1024;

/**
 * The output object, read from the output pipe by the addon's poll-driven reader. It ends only
 * when the pipe hit EOF and the task reported success; a failure, a stall or a dead daemon makes
 * it error instead, so a consumer can never mistake a cut-short object for a whole one.
 */
export class OutputStream extends Readable {
  /** The addon's reader id. */
  private readonly reader: number;
  /** The output pipe (the reader's: closed with it). */
  private readonly fd: number;
  /** The addon's pump, while pumpTo() runs. */
  private pumpId: number | undefined;
  private readonly opts: OutputStreamOptions;
  private timer: NodeJS.Timeout | undefined;
  /** Runs while the reader is paused because the caller takes no data: a storlet is held meanwhile. */
  private stallTimer: NodeJS.Timeout | undefined;
  private complete = false;
  /** The reader met the pipe's end: no pump may take the fd after it (an error destroys the stream). */
  private eof = false;
  /** handOff() stopped the reader for good: pumpTo() takes the rest. */
  private handedOff = false;
  bytes = 0;

  constructor(fd: number, opts: OutputStreamOptions) {
    super({ highWaterMark: 256 * 1024 });
    this.opts = opts;
    this.fd = fd;
    this.reader = native.openReader(fd, READ_CHUNK_BYTES, (code, chunk) => {
      if (chunk) {
        this.bytes += chunk.length;
        this.timer?.refresh();
        if (!this.push(chunk)) {
          native.pauseReader(this.reader);
          this.disarm();
          this.armStall();
        }
      } else if (code === null) {
        this.eof = true;
        void this.finish();
      } else {
        this.destroy(new SandletError('ESTORLET', `reading the output of storlet ${opts.storlet} failed: ${code}`));
      }
    });
    // The reader starts paused: a caller that never reads is bounded from the first byte on.
    this.armStall();
  }

  override _read(): void {
    if (this.handedOff) return;
    this.disarmStall();
    native.resumeReader(this.reader);
    this.arm();
  }

  private armStall(): void {
    if (this.stallTimer) this.stallTimer.refresh();
    else this.stallTimer = setTimeout(() => this.readerStalled(), this.opts.readerStallMs);
  }

  private disarmStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private readerStalled(): void {
    this.stallTimer = undefined;
    if (this.complete || this.destroyed) return;
    this.opts.onAbandon();
    this.destroy(
      new SandletError(
        'ETIMEDOUT',
        `the caller read no output of storlet ${this.opts.storlet} for ${formatMs(this.opts.readerStallMs)} (output_stall_timeout_ms); task cancelled`,
      ),
    );
  }

  private arm(): void {
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.stalled(), this.opts.idleTimeoutMs);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private stalled(): void {
    this.opts.onStorletSilent?.();
    this.opts.onAbandon();
    this.destroy(
      new SandletError('ETIMEDOUT', `storlet ${this.opts.storlet} stalled: no output for ${formatMs(this.opts.idleTimeoutMs)}; task cancelled`),
    );
  }

  /**
   * Sends the whole output to `fd` (a client's socket) with the addon's pump instead of through
   * this stream: no JS per chunk. Only before anything was read. Resolves once the storlet's output
   * ended and the task reported success (the stream then ends); otherwise the stream is destroyed
   * and the promise rejects with why. `chunked` frames each piece as an HTTP/1.1 chunk. Silence
   * counts from the storlet or the client alike: idleTimeoutMs.
   */
  async pumpTo(fd: number, chunked: boolean): Promise<void> {
    if ((this.bytes > 0 && !this.handedOff) || this.readableLength > 0 || this.readableFlowing || this.destroyed) {
      throw new Error('pumpTo() needs an output stream nothing has read, or one handed off');
    }
    this.disarmStall();
    this.disarm();
    const [error, moved] = await new Promise<[string | null, number]>((resolve) => {
      this.pumpId = native.pump(this.fd, fd, -1, this.opts.idleTimeoutMs, (err, n) => resolve([err, n]), chunked);
      this.once('close', () => resolve(['ECANCELED', 0])); // destroyed meanwhile: its pump was cancelled
    });
    this.pumpId = undefined;
    this.bytes += moved;
    if (this.destroyed) throw this.errored ?? new SandletError('ESTORLET', `the output of storlet ${this.opts.storlet} was abandoned`);
    if (error === 'ETIMEDOUT') {
      this.stalled();
    } else if (error !== null) {
      this.opts.onAbandon(); // the client's socket failed (or the pipe did): nobody takes the rest
      this.destroy(new SandletError('ESTORLET', `sending the output of storlet ${this.opts.storlet} failed after ${this.bytes} bytes: ${error}`));
    } else {
      // EOF on the output pipe: whole only if the task says so.
      native.closeReader(this.reader);
      await this.finish();
    }
    if (this.destroyed) throw this.errored ?? new SandletError('ESTORLET', `storlet ${this.opts.storlet} failed`);
    this.resume(); // nothing left to read: it ends, and closes
  }

  /**
   * For a caller that read the output's first bytes as a stream (to send no head before them) and
   * wants pumpTo() for the rest: stops the reader and returns what it read that nobody took yet,
   * to be sent before the pump starts. Undefined when the reader already met the output's end (or
   * failed): the rest then comes through the stream, as usual. Call it on a paused stream.
   */
  handOff(): Buffer[] | undefined {
    // At the end, the stream goes on as usual: its timer bounds the wait for the task's outcome.
    if (this.eof || this.destroyed) return undefined;
    native.pauseReader(this.reader);
    this.disarm();
    this.disarmStall();
    this.handedOff = true;
    const chunks: Buffer[] = [];
    for (let c: Buffer | null; (c = this.read() as Buffer | null) !== null; ) chunks.push(c);
    return chunks;
  }

  private async finish(): Promise<void> {
    if (this.opts.status) {
      this.arm();
      const outcome = await this.opts.status.catch(() => undefined);
      if (this.destroyed) return;
      if (!outcome?.status) {
        const why = (await failureReason(outcome, this.opts.explainFailure)) ?? 'its daemon ended without reporting the outcome';
        if (!this.destroyed) this.destroy(new SandletError('ESTORLET', `storlet ${this.opts.storlet} failed after ${this.bytes} bytes of output: ${why}`));
        return;
      }
    }
    this.disarm();
    this.disarmStall(); // the task is over: a slow reader now holds no storlet
    this.complete = true;
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.disarm();
    this.disarmStall();
    if (this.pumpId !== undefined) native.cancelPump(this.pumpId);
    native.closeReader(this.reader);
    if (!this.complete) this.opts.onAbandon();
    this.opts.onClose(err);
    cb(err);
  }
}
