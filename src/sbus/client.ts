import { setTimeout as sleep } from 'node:timers/promises';
import { SandletError } from '../errors.js';
import { encodeDatagram, decodeValue, HEADER_BYTES } from './codec.js';
import { closeQuietly, native, type ErrnoError } from './native.js';
import { formatBytes, formatMs } from './fd-io.js';
import { readPipeToEnd } from './read-pipe.js';
import { pathTransport, type Transport } from './transport.js';
import {
  Command,
  DEFAULT_MAX_DATAGRAM_BYTES,
  FdType,
  LIBSBUS_MAX_MSG_BYTES,
  MAX_REPLY_BYTES,
  type Codec,
  type CommandParams,
  type FdMetadata,
  type Reply,
} from './protocol.js';

export interface ClientOptions {
  /** How long to wait for the reply, including retries of a full queue. Default 5 s. */
  timeoutMs?: number;
  codec?: Codec;
  maxDatagramBytes?: number;
  /**
   * sandlet-only: the daemon a command is for, when it goes over the factory's connection (the
   * factory routes EXECUTE, CANCEL and PING to it). Storlets agents never see it.
   */
  daemon?: string;
  /**
   * The peer is a Storlets agent (its C libsbus): a datagram longer than LIBSBUS_MAX_MSG_BYTES,
   * header included, would reach it cut short, so it is refused here, before anything is sent.
   */
  libsbusPeer?: boolean;
}

/** One fd to pass with a command, with its per-fd metadata. The client never closes it. */
export interface OutgoingFd {
  fd: number;
  type: string;
  storlets?: Record<string, unknown>;
  storage?: Record<string, unknown>;
}

export interface StartDaemonParams {
  daemon_language: string;
  storlet_path: string;
  storlet_name: string;
  uds_path: string;
  log_level: string;
  pool_size: number;
  daemon_language_version?: string;
}

/**
 * Sends SBus commands to one pipe and reads the reply from the SBUS_FD_SERVICE_OUT pipe. Stateless
 * apart from its options, so one client serves any number of concurrent commands.
 */
export class SBusClient {
  /** Names the peer (the socket path, or the connection) in errors. */
  readonly path: string;
  private readonly transport: Transport;
  private readonly daemon: string | undefined;
  readonly timeoutMs: number;
  readonly codec: Codec;
  readonly maxDatagramBytes: number;
  private readonly libsbusPeer: boolean;

  constructor(target: string | Transport, opts: ClientOptions = {}) {
    this.transport = typeof target === 'string' ? pathTransport(target) : target;
    this.path = this.transport.name;
    this.daemon = opts.daemon;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.codec = opts.codec ?? 'msgpack';
    this.maxDatagramBytes = opts.maxDatagramBytes ?? DEFAULT_MAX_DATAGRAM_BYTES;
    this.libsbusPeer = opts.libsbusPeer ?? false;
  }

  ping(timeoutMs?: number): Promise<Reply> {
    return this.request(Command.PING, {}, timeoutMs);
  }

  startDaemon(params: StartDaemonParams, timeoutMs?: number): Promise<Reply> {
    return this.request(Command.START_DAEMON, { params: { ...params } }, timeoutMs);
  }

  stopDaemon(storletName: string, timeoutMs?: number): Promise<Reply> {
    return this.request(Command.STOP_DAEMON, { params: { storlet_name: storletName } }, timeoutMs);
  }

  daemonStatus(storletName: string, timeoutMs?: number): Promise<Reply> {
    return this.request(Command.DAEMON_STATUS, { params: { storlet_name: storletName } }, timeoutMs);
  }

  stopDaemons(timeoutMs?: number): Promise<Reply> {
    return this.request(Command.STOP_DAEMONS, {}, timeoutMs);
  }

  halt(timeoutMs?: number): Promise<Reply> {
    return this.request(Command.HALT, {}, timeoutMs);
  }

  cancel(taskId: string, timeoutMs?: number): Promise<Reply> {
    return this.request(Command.CANCEL, { taskId }, timeoutMs);
  }

  /**
   * EXECUTE with the invocation fds (input, output, metadata, logger, extras), in that order.
   * `onSent` runs once the datagram is sent (the peer's copies of the fds are in flight), before
   * the reply is awaited: the caller's copies can go while the agent works, not after its reply.
   */
  execute(params: Record<string, string>, fds: OutgoingFd[], timeoutMs?: number, onSent?: () => void): Promise<Reply> {
    return this.request(Command.EXECUTE, { params, fds, onSent }, timeoutMs);
  }

  async request(
    command: string,
    opts: { params?: Record<string, unknown>; taskId?: string; fds?: OutgoingFd[]; onSent?: () => void } = {},
    timeoutMs = this.timeoutMs,
  ): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    const cmd: CommandParams = { command };
    if (opts.params && Object.keys(opts.params).length > 0) cmd.params = opts.params;
    if (opts.taskId) cmd.task_id = opts.taskId;
    if (this.daemon !== undefined) cmd.daemon = this.daemon;
    const extra = opts.fds ?? [];
    const meta: FdMetadata[] = [{ storlets: { type: FdType.SERVICE_OUT }, storage: {} }];
    for (const f of extra) meta.push({ storlets: { ...f.storlets, type: f.type }, storage: f.storage ?? {} });
    const body = encodeDatagram(cmd, meta, this.codec);
    if (body.length - HEADER_BYTES > this.maxDatagramBytes) {
      throw new SandletError(
        'ETOOLARGE',
        `${command} datagram is ${formatBytes(body.length - HEADER_BYTES)} of metadata and params; the bound is ${formatBytes(this.maxDatagramBytes)}`,
      );
    }
    if (this.libsbusPeer && body.length > LIBSBUS_MAX_MSG_BYTES) {
      throw new SandletError(
        'ETOOLARGE',
        `${command} datagram to ${this.path} is ${body.length} bytes, but a Storlets agent reads at most ${LIBSBUS_MAX_MSG_BYTES} of a datagram (libsbus MAX_MSG_LENGTH): send fewer or shorter params or metadata`,
      );
    }

    const [replyRead, replyWrite] = native.pipe();
    const fds = [replyWrite, ...extra.map((f) => f.fd)];
    try {
      await this.sendWithRetry(command, body, fds, deadline);
    } catch (err) {
      closeQuietly([replyRead, replyWrite]);
      throw err;
    }
    // The peer holds its own copy now; ours must go or we would never see EOF.
    closeQuietly([replyWrite]);
    opts.onSent?.();
    let raw: Buffer;
    try {
      raw = await readPipeToEnd(replyRead, {
        maxBytes: MAX_REPLY_BYTES * 16,
        timeoutMs: Math.max(1, deadline - Date.now()),
        what: `reply to ${command}`,
      });
    } catch (err) {
      if (err instanceof SandletError && err.code === 'ETIMEDOUT') {
        throw new SandletError('ETIMEDOUT', `no reply to ${command} within ${formatMs(timeoutMs)} from ${this.path}`);
      }
      throw err;
    }
    return parseReply(raw, command, this.path);
  }

  // A full receive queue (EAGAIN) is transient: back off and retry until the deadline.
  private async sendWithRetry(command: string, body: Buffer, fds: number[], deadline: number): Promise<void> {
    let backoff = 1;
    for (;;) {
      try {
        this.transport.send(body, fds);
        return;
      } catch (err) {
        const code = (err as ErrnoError).code;
        // A path nobody is bound to, or a connection that is gone: either way no listener.
        const gone = ['ENOENT', 'ECONNREFUSED', 'ENOTSOCK', 'ENOTCONN', 'EPIPE', 'ECONNRESET'];
        if (gone.includes(code)) {
          throw new SandletError('ENOLISTENER', `no sandbox is listening at ${this.path}`, { cause: err });
        }
        if (code !== 'EAGAIN' && code !== 'ENOBUFS') {
          throw new SandletError('ESANDBOX', `cannot send ${command} to ${this.path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new SandletError('ETIMEDOUT', `${this.path} kept its queue full; ${command} not sent in time`);
        }
        await sleep(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, 50);
      }
    }
  }
}

function parseReply(raw: Buffer, command: string, path: string): Reply {
  if (raw.length === 0) {
    throw new SandletError('ENOREPLY', `${path} closed the reply pipe of ${command} without answering`);
  }
  let value: unknown;
  try {
    value = decodeValue(raw);
  } catch (err) {
    throw new SandletError('ESBUSPROTO', `unreadable reply to ${command} from ${path}: ${(err as Error).message}`);
  }
  const reply = value as Reply;
  if (typeof reply !== 'object' || reply === null || typeof reply.status !== 'boolean') {
    throw new SandletError('ESBUSPROTO', `reply to ${command} from ${path} has no boolean "status"`);
  }
  if (typeof reply.message !== 'string') reply.message = String(reply.message ?? '');
  return reply;
}
