// One invocation on the host side (ARCHITECTURE § Invocation): make the pipes, pass the remote
// ends with EXECUTE and close our copies, pump the input while the output is read, read the
// metadata with a timeout and a size bound, hand back the output as a stream.
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { SandletError, isSandletError, oneLine } from '../errors.js';
import type { SBusClient, OutgoingFd } from '../sbus/client.js';
import { writableFromFd, formatMs } from '../sbus/fd-io.js';
import { readPipeToEnd } from '../sbus/read-pipe.js';
import { closeQuietly, native } from '../sbus/native.js';
import { FdType } from '../sbus/protocol.js';
import { Teardown } from '../util/teardown.js';
import type { InvocationLogs } from './invocation-log.js';
import { OutputStream } from './output-stream.js';
import { failureReason, parseStatus } from './task-outcome.js';

/** The object: a stream, bytes, or an open file passed as its fd (zero copy; stays the caller's). */
export type InvocationInput = Readable | Buffer | Uint8Array | { fd: number };

export interface ExtraInput {
  input: InvocationInput;
  metadata?: Record<string, string>;
}

export interface ByteRange {
  start: number;
  /** Inclusive, as in HTTP `bytes=START-END`. */
  end: number;
}

export interface InvocationSpec {
  storlet: string;
  client: SBusClient;
  input: InvocationInput;
  inputMetadata: Record<string, string>;
  extraInputs: (InvocationInput | ExtraInput)[];
  range: ByteRange | undefined;
  params: Record<string, string>;
  timeoutMs: number;
  maxMetadataBytes: number;
  pipeBufferBytes: number;
  logPath: string;
  /** The caller's own log fd for this invocation instead of the storlet's log (sent, never closed here). */
  logFd?: number;
  /** What one invocation may write to the log, told to sandlet's agent; absent for a Storlets agent (sent as Storlets sends it). */
  logMaxBytes?: number;
  logs: InvocationLogs;
  /** Ask the agent for the task's outcome on a status pipe (sandlet agents only). */
  withStatus: boolean;
  logger: Logger;
  /** Aborted when the caller goes away: the task is cancelled at once and everything freed. */
  signal?: AbortSignal;
  /** Watches the input streams from the start of the call (InputWatch); made here when absent. */
  inputWatch?: InputWatch;
  /** Longest the output may wait for a caller that does not read it; then the task is cancelled. */
  outputStallMs: number;
  /** The daemon did not answer a command of this invocation (EXECUTE or CANCEL): it may be wedged. */
  onUnanswered?: (what: string) => void;
  /** The task timed out waiting on its storlet (true), or the storlet answered with metadata (false). */
  onDaemonTimeout?: (timedOut: boolean) => void;
  onDone: (err: Error | null) => void;
  /** A CANCEL is being sent for the task (a Storlets daemon ends its main loop after one). */
  onCancel?: () => void;
  /** Why the daemon may have died when a task ends without an outcome (e.g. an OOM kill). */
  explainFailure?: () => Promise<string | undefined>;
}

export interface InvocationResult {
  metadata: Record<string, string>;
  body: Readable;
  taskId: string;
}

interface PreparedInput {
  remote: number;
  /** Our write end, when we pump the input; absent for a caller's fd. */
  local?: number;
  source?: Readable | Buffer;
  metadata: Record<string, string>;
}

export function isFdInput(i: InvocationInput): i is { fd: number } {
  return typeof (i as { fd?: unknown }).fd === 'number' && !Buffer.isBuffer(i) && typeof (i as Readable).pipe !== 'function';
}

export function isExtraInput(i: InvocationInput | ExtraInput): i is ExtraInput {
  return typeof i === 'object' && i !== null && 'input' in i && !Buffer.isBuffer(i);
}

/** The invocation was given up because its caller went away (InvokeRequest.signal aborted). */
export function callerGone(storlet: string): SandletError {
  return new SandletError('ECANCELLED', `invocation of storlet ${storlet} was cancelled: the caller went away`);
}

/** The caller's own input failed: its error, named, with the original as `cause`. */
function inputFailed(storlet: string, err: Error): SandletError {
  return new SandletError('EINPUT', `input of storlet ${storlet} failed: ${oneLine(err)}`, { cause: err });
}

/**
 * The first failure of the caller's input streams, from the moment the call begins until their
 * pumps listen (a sandbox may be starting meanwhile): kept for the caller, never an unhandled
 * 'error' event. A stream that failed before the call is found by its `errored` state.
 */
export class InputWatch {
  error: Error | undefined;
  private readonly streams: Readable[] = [];
  private readonly note = (err: Error): void => {
    this.error ??= err;
  };

  constructor(inputs: (InvocationInput | ExtraInput)[]) {
    for (const i of inputs) {
      const input = isExtraInput(i) ? i.input : i;
      if (Buffer.isBuffer(input) || input instanceof Uint8Array || isFdInput(input)) continue;
      const stream = input as Readable;
      this.error ??= stream.errored ?? (stream.destroyed && !stream.readableEnded ? new Error('the input stream was destroyed before it was read') : undefined);
      stream.on('error', this.note);
      this.streams.push(stream);
    }
  }

  /** The pumps listen from now on. A destroyed stream keeps the listener: its 'error' may still be on its way (next tick). */
  stop(): void {
    for (const s of this.streams) if (!s.destroyed) s.off('error', this.note);
    this.streams.length = 0;
  }
}

export async function invokeStorlet(spec: InvocationSpec): Promise<InvocationResult> {
  // A watch of the caller's (kept across a retry) is the caller's to stop.
  const watch = spec.inputWatch ?? new InputWatch([spec.input, ...spec.extraInputs]);
  const unwatch = (): void => {
    if (!spec.inputWatch) watch.stop();
  };
  if (spec.signal?.aborted || watch.error) {
    unwatch();
    throw watch.error ? inputFailed(spec.storlet, watch.error) : callerGone(spec.storlet);
  }
  const remote: number[] = [];
  // Closed once the EXECUTE is sent (the agent's copies are in flight), or however the call
  // ends before that; emptied as it is closed, for a number closed twice may name another fd.
  const closeRemote = (): void => closeQuietly(remote.splice(0));
  const local: number[] = [];
  const inputs: PreparedInput[] = [];
  let outRead = -1;
  let metaRead = -1;
  let statusRead = -1;
  let reply;
  try {
    const prepare = (input: InvocationInput, metadata: Record<string, string>): void => {
      if (isFdInput(input)) {
        inputs.push({ remote: input.fd, metadata });
        return;
      }
      const [r, w] = native.pipe(spec.pipeBufferBytes);
      remote.push(r);
      let source = (input instanceof Uint8Array && !Buffer.isBuffer(input) ? Buffer.from(input.buffer, input.byteOffset, input.byteLength) : input) as Readable | Buffer;
      if (Buffer.isBuffer(source)) {
        // Bytes that fit the pipe go in now, before EXECUTE: no stream, and the storlet finds its
        // whole input waiting instead of being woken for it.
        const written = writeNow(w, source);
        if (written === source.length) {
          inputs.push({ remote: r, metadata });
          return;
        }
        source = source.subarray(written);
      }
      local.push(w);
      inputs.push({ remote: r, local: w, source, metadata });
    };
    prepare(spec.input, spec.inputMetadata);
    for (const extra of spec.extraInputs) {
      if (isExtraInput(extra)) prepare(extra.input, extra.metadata ?? {});
      else prepare(extra, {});
    }
    const [or, ow] = native.pipe(spec.pipeBufferBytes);
    outRead = or;
    local.push(or);
    remote.push(ow);
    const [mr, mw] = native.pipe();
    metaRead = mr;
    local.push(mr);
    remote.push(mw);
    let sw = -1;
    if (spec.withStatus) {
      const [sr, w] = native.pipe();
      statusRead = sr;
      sw = w;
      local.push(sr);
      remote.push(w);
    }
    // Shared by the storlet's invocations and owned by spec.logs (or the caller's): sent, never closed here.
    const logFd = spec.logFd ?? spec.logs.fdFor(spec.logPath);

    const [first, ...extras] = inputs;
    const rangeMeta = spec.range ? { start: String(spec.range.start), end: String(spec.range.end) } : {};
    const fds: OutgoingFd[] = [
      { fd: first!.remote, type: FdType.INPUT_OBJECT, storlets: rangeMeta, storage: first!.metadata },
      { fd: ow, type: FdType.OUTPUT_OBJECT },
      { fd: mw, type: FdType.OUTPUT_OBJECT_METADATA },
      { fd: logFd, type: FdType.LOGGER, storlets: spec.logMaxBytes === undefined ? {} : { max_bytes: String(spec.logMaxBytes) } },
      ...extras.map((e) => ({ fd: e.remote, type: FdType.INPUT_OBJECT, storage: e.metadata })),
    ];
    if (sw >= 0) fds.push({ fd: sw, type: FdType.TASK_STATUS });
    reply = await spec.client.execute(spec.params, fds, undefined, closeRemote);
  } catch (err) {
    closeQuietly(local);
    unwatch();
    // No reply in time: the daemon took the datagram (or its queue did) and said nothing.
    if (isSandletError(err, 'ETIMEDOUT')) spec.onUnanswered?.('EXECUTE');
    throw err;
  } finally {
    // The agent holds its copies now (or never will): ours must go, or EOF never comes.
    closeRemote();
  }

  if (!reply.status || !reply.task_id) {
    closeQuietly(local);
    unwatch();
    throw new SandletError('ESTORLET', `storlet ${spec.storlet} refused the invocation: ${reply.message || 'no task id'}`);
  }
  unwatch();
  return runTask(spec, reply.task_id, inputs, outRead, metaRead, statusRead, watch.error);
}

async function runTask(
  spec: InvocationSpec,
  taskId: string,
  inputs: PreparedInput[],
  outRead: number,
  metaRead: number,
  statusRead: number,
  earlyInputError: Error | undefined,
): Promise<InvocationResult> {
  const log = spec.logger;
  const teardown = new Teardown();
  let cancelled = false;
  const cancel = (why: string): void => {
    if (cancelled) return;
    cancelled = true;
    spec.onCancel?.();
    log.debug({ storlet: spec.storlet, task: taskId, why }, 'cancelling task');
    spec.client.cancel(taskId).then(
      (reply) => {
        // "no running task" means it ended meanwhile: only silence is a sign of a wedged daemon.
        if (!reply.status) log.debug({ task: taskId, message: reply.message }, 'CANCEL found no task');
      },
      (err: unknown) => {
        log.debug({ err: oneLine(err) }, 'CANCEL not answered');
        if (isSandletError(err, 'ETIMEDOUT') || isSandletError(err, 'ENOREPLY')) spec.onUnanswered?.('CANCEL');
      },
    );
  };

  // Whatever ended the invocation first, named once: the caller's input, or the caller leaving.
  let givenUp: Error | undefined;
  let body: OutputStream | undefined;
  const giveUp = (err: Error, reason: string): void => {
    if (givenUp) return;
    givenUp = err;
    cancel(reason);
    body?.destroy(err);
    teardown.run();
  };
  const pumps: Writable[] = [];
  for (const input of inputs) {
    if (input.local === undefined) continue;
    const source = input.source!;
    const sink = writableFromFd(input.local, true);
    pumps.push(sink);
    // The caller's input broke: the storlet saw a short object, so its output is worthless.
    pump(source, sink, (err) => giveUp(inputFailed(spec.storlet, err), 'input failed'));
  }
  if (earlyInputError) giveUp(inputFailed(spec.storlet, earlyInputError), 'input failed');
  const onAbort = (): void => giveUp(callerGone(spec.storlet), 'caller went away');
  if (spec.signal) {
    if (spec.signal.aborted) onAbort();
    else spec.signal.addEventListener('abort', onAbort, { once: true });
  }

  // Outlives the invocation when a CANCEL was sent: the task's end is watched for (below).
  const statusTeardown = new Teardown();
  const status =
    statusRead >= 0
      ? readPipeToEnd(statusRead, { maxBytes: 64 * 1024, timeoutMs: 0, what: 'task status', teardown: statusTeardown, untilNewline: true }).then(parseStatus)
      : undefined;
  status?.catch(() => {});

  const cleanup = (err: Error | null): void => {
    spec.signal?.removeEventListener('abort', onAbort);
    teardown.run();
    for (const p of pumps) p.destroy();
    if (cancelled && status) watchTaskEnd(status, statusTeardown);
    else statusTeardown.run();
    spec.onDone(err);
  };

  /**
   * A cancelled task must end (the agent closes its status pipe) within the SBus timeout; one
   * that does not holds a task thread for good, so its daemon is deemed wedged.
   */
  const watchTaskEnd = (ended: Promise<unknown>, stopWatching: Teardown): void => {
    const timer = setTimeout(() => {
      stopWatching.run();
      log.warn({ storlet: spec.storlet, task: taskId }, 'a cancelled task did not end');
      spec.onUnanswered?.('CANCEL (the task did not end)');
    }, spec.client.timeoutMs);
    timer.unref();
    ended.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
  };

  let rawMeta: Buffer;
  try {
    rawMeta = await readPipeToEnd(metaRead, {
      maxBytes: spec.maxMetadataBytes,
      timeoutMs: spec.timeoutMs,
      what: `output metadata from storlet ${spec.storlet}`,
      teardown,
      // Only sandlet's agent (the one with a status pipe) ends its metadata with a newline.
      untilNewline: spec.withStatus,
    });
    if (givenUp) throw givenUp;
    if (rawMeta.length === 0) {
      // The storlet failed before setting metadata: its own message is on the status pipe.
      const outcome = status
        ? await withTimeout(status, spec.timeoutMs, `outcome of storlet ${spec.storlet}`).catch(() => undefined)
        : undefined;
      const why = (await failureReason(outcome, spec.explainFailure)) ?? 'it ended without writing metadata or an outcome';
      throw new SandletError('ESTORLET', `storlet ${spec.storlet} failed: ${why}`);
    }
  } catch (caught) {
    // The read was cancelled because the input failed or the caller left: say which.
    let err = givenUp ?? caught;
    if (err instanceof SandletError && err.code === 'ETIMEDOUT') {
      cancel('metadata timeout');
      spec.onDaemonTimeout?.(true);
      err = new SandletError('ETIMEDOUT', `storlet ${spec.storlet} sent no metadata within ${formatMs(spec.timeoutMs)}; task cancelled`);
    } else if (err instanceof SandletError && err.code === 'ETOOLARGE') {
      cancel('metadata too large');
    }
    closeQuietly([outRead]);
    cleanup(err as Error);
    throw err;
  }

  spec.onDaemonTimeout?.(false);
  let metadata: Record<string, string>;
  try {
    metadata = parseMetadata(rawMeta, spec.storlet);
  } catch (err) {
    cancel('bad metadata');
    closeQuietly([outRead]);
    cleanup(err as Error);
    throw err;
  }

  try {
    body = new OutputStream(outRead, {
      storlet: spec.storlet,
      idleTimeoutMs: spec.timeoutMs,
      readerStallMs: spec.outputStallMs,
      status,
      onAbandon: () => cancel('output abandoned'),
      onStorletSilent: () => spec.onDaemonTimeout?.(true),
      explainFailure: spec.explainFailure,
      onClose: cleanup,
    });
  } catch (err) {
    // The addon could not start reading (it leaves the fd open then): nothing must outlive this.
    cancel('output unreadable');
    closeQuietly([outRead]);
    cleanup(err as Error);
    throw err;
  }
  return { metadata, body, taskId };
}

/**
 * Writes what the pipe takes at once. Returns the bytes written; when all were, the write end is
 * closed. A storlet that already closed its input (EPIPE) takes nothing more: that counts as all.
 */
function writeNow(fd: number, bytes: Buffer): number {
  let written = 0;
  try {
    written = bytes.length === 0 ? 0 : native.tryWrite(fd, bytes);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'EAGAIN') written = bytes.length; // EPIPE and the like: the reader is gone
  }
  if (written === bytes.length) closeQuietly([fd]);
  return written;
}

function pump(source: Readable | Buffer, sink: Writable, onSourceError: (err: Error) => void): void {
  // EPIPE here means the storlet stopped reading, which it may: stop feeding it.
  sink.on('error', () => {
    if (!Buffer.isBuffer(source)) source.destroy();
  });
  sink.on('finish', () => sink.destroy());
  if (Buffer.isBuffer(source)) {
    sink.end(source);
    return;
  }
  source.on('error', (err) => {
    sink.destroy();
    onSourceError(err);
  });
  source.pipe(sink);
}

function parseMetadata(raw: Buffer, storlet: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new SandletError('ESTORLET', `storlet ${storlet} wrote metadata that is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SandletError('ESTORLET', `storlet ${storlet} wrote metadata that is not an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new SandletError('ETIMEDOUT', `no ${what} within ${formatMs(ms)}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
