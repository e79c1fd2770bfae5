import fs from 'node:fs';
import type { Logger } from 'pino';
import { oneLine } from '../errors.js';
import { decodeDatagram, encodeValue, detectCodec, readInt, HEADER_BYTES, type DecodedDatagram } from './codec.js';
import { closeQuietly, native } from './native.js';
import { formatBytes } from './fd-io.js';
import { DEFAULT_MAX_DATAGRAM_BYTES, FdType, MAX_REPLY_BYTES, type Codec, type FdMetadata, type Reply } from './protocol.js';

/** One fd received with a command, with the metadata the peer sent for it. */
export interface ReceivedFd {
  fd: number;
  type: string;
  metadata: FdMetadata;
}

export interface SBusRequest extends Omit<DecodedDatagram, 'fdMetadata'> {
  /** The fds after SBUS_FD_SERVICE_OUT. The server closes them after the handler settles unless claimed. */
  readonly fds: readonly ReceivedFd[];
  /** Takes ownership of the fds: the handler now closes them on every path. */
  claimFds(): ReceivedFd[];
}

export type Handler = (req: SBusRequest) => Promise<Reply> | Reply;

export interface ServerOptions {
  maxDatagramBytes?: number;
  logger: Logger;
}

/**
 * An SBus server on one socket path: decodes each datagram, dispatches by command, writes the
 * reply to SBUS_FD_SERVICE_OUT in the request's codec, and closes every fd it received unless a
 * handler claimed it. No datagram a peer can send makes it throw.
 */
export class SBusServer {
  /** The socket path it binds (listen), or a name for the connection it serves (serve). */
  readonly path: string;
  private readonly handlers = new Map<string, Handler>();
  private readonly maxDatagramBytes: number;
  private readonly log: Logger;
  private fd = -1;
  private connected = false;
  private listener: { close(): void } | undefined;

  constructor(path: string, opts: ServerOptions) {
    this.path = path;
    this.maxDatagramBytes = opts.maxDatagramBytes ?? DEFAULT_MAX_DATAGRAM_BYTES;
    this.log = opts.logger;
  }

  on(command: string, handler: Handler): this {
    this.handlers.set(command, handler);
    return this;
  }

  listen(): void {
    this.fd = native.bind(this.path);
    // One byte of slack: libsbus sends a byte after the lengths its header announces.
    this.listener = native.listen(this.fd, HEADER_BYTES + this.maxDatagramBytes + 1, (body, fds, truncated) =>
      this.onDatagram(body, fds, truncated),
    );
  }

  /**
   * Serves a connected SOCK_SEQPACKET socket (owned from now on) instead of a bound path: the
   * gateway's end of a connection the sandbox dialled. onClosed runs once when the peer hangs up;
   * the fd is closed by then.
   */
  serve(fd: number, onClosed: () => void): void {
    this.connected = true;
    this.fd = fd;
    const listener = native.listen(
      fd,
      HEADER_BYTES + this.maxDatagramBytes + 1,
      (body, fds, truncated) => this.onDatagram(body, fds, truncated),
      () => {
        if (this.listener !== listener) return;
        this.close();
        onClosed();
      },
    );
    this.listener = listener;
  }

  /** The connection served, while it is open (to send the hello on, say). */
  get connectionFd(): number | undefined {
    return this.connected && this.fd >= 0 ? this.fd : undefined;
  }

  close(): void {
    if (this.fd < 0) return;
    this.listener?.close(); // closes the socket fd too
    this.listener = undefined;
    this.fd = -1;
    if (this.connected) {
      this.connected = false;
      return; // nothing bound: no file to remove
    }
    try {
      fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  /**
   * Runs the handler of a request another server received (the factory passes a daemon's
   * commands on to it). The reply is the caller's to write; fds follow req.claimFds() as usual.
   */
  async handle(req: SBusRequest): Promise<Reply> {
    const handler = this.handlers.get(req.command);
    if (!handler) return { status: false, message: `unknown command ${JSON.stringify(req.command)}` };
    try {
      return await handler(req);
    } catch (err) {
      this.log.error({ err: oneLine(err), command: req.command }, 'SBus handler failed');
      return { status: false, message: oneLine(err) };
    }
  }

  private onDatagram(body: Buffer, fds: number[], truncated: boolean): void {
    // The byte of slack holds libsbus's trailing byte, not more metadata or params.
    const overBound = body.length > HEADER_BYTES + this.maxDatagramBytes && announcedBytes(body) > this.maxDatagramBytes;
    if (truncated || overBound) {
      const codec = guessCodec(body);
      this.log.warn({ bytes: body.length, fds: fds.length }, 'refused an oversized SBus datagram');
      closeQuietly(fds.slice(1));
      this.replyAndClose(fds[0], codec, {
        status: false,
        message: `datagram refused: larger than the ${formatBytes(this.maxDatagramBytes)} bound of metadata and params`,
      });
      return;
    }
    let decoded: DecodedDatagram;
    try {
      decoded = decodeDatagram(body, fds.length);
    } catch (err) {
      this.log.warn({ err: oneLine(err), fds: fds.length }, 'dropped a malformed SBus datagram');
      closeQuietly(fds.slice(1));
      this.replyAndClose(fds[0], guessCodec(body), { status: false, message: oneLine(err) });
      return;
    }
    if (decoded.fdMetadata[0]?.storlets.type !== FdType.SERVICE_OUT) {
      this.log.warn({ command: decoded.command }, 'dropped an SBus datagram whose first fd is not SBUS_FD_SERVICE_OUT');
      closeQuietly(fds);
      return;
    }
    void this.dispatch(decoded, fds);
  }

  private async dispatch(decoded: DecodedDatagram, fds: number[]): Promise<void> {
    const serviceOut = fds[0]!;
    let claimed = false;
    const rest: ReceivedFd[] = fds.slice(1).map((fd, i) => ({
      fd,
      type: decoded.fdMetadata[i + 1]!.storlets.type,
      metadata: decoded.fdMetadata[i + 1]!,
    }));
    const req: SBusRequest = {
      codec: decoded.codec,
      command: decoded.command,
      params: decoded.params,
      taskId: decoded.taskId,
      daemon: decoded.daemon,
      fds: rest,
      claimFds: () => {
        claimed = true;
        return rest;
      },
    };
    const reply = await this.handle(req);
    if (!claimed) closeQuietly(rest.map((r) => r.fd));
    this.replyAndClose(serviceOut, decoded.codec, reply);
  }

  /**
   * One atomic non-blocking write, then close: a peer can never make the server wait. Only a pipe
   * gets the reply: an fd of any other kind (a regular file, say, sent first in a datagram the
   * server could not read) is closed unwritten, so no peer can make the server write into it.
   */
  private replyAndClose(fd: number | undefined, codec: Codec, reply: Reply): void {
    if (fd === undefined) return;
    try {
      if (!isPipe(fd)) {
        this.log.warn('an SBus reply fd is not a pipe; closed it unanswered');
        return;
      }
      let bytes = encodeValue(reply, codec);
      if (bytes.length > MAX_REPLY_BYTES) {
        bytes = encodeValue({ ...reply, message: `${reply.message.slice(0, MAX_REPLY_BYTES / 2)}…` }, codec);
      }
      native.tryWrite(fd, bytes);
    } catch (err) {
      this.log.debug({ err: oneLine(err) }, 'could not write an SBus reply');
    } finally {
      closeQuietly([fd]);
    }
  }
}

function isPipe(fd: number): boolean {
  try {
    return fs.fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
}

/** The metadata and params bytes the header announces (0 when there is no header). */
function announcedBytes(body: Buffer): number {
  return body.length < HEADER_BYTES ? 0 : readInt(body, 4) + readInt(body, 8);
}

function guessCodec(body: Buffer): Codec {
  if (body.length >= HEADER_BYTES) {
    const metaLen = readInt(body, 4);
    const at = HEADER_BYTES + Math.max(0, metaLen);
    if (at < body.length) return detectCodec(body[at]) ?? 'json';
  }
  return 'json';
}
