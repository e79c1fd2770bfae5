// The gateway's end of a scope's control channel: a listening SOCK_SEQPACKET socket in the scope's
// channel dir, which the sandbox sees read-only. The sandbox's factory dials it; the gateway sends
// commands and fds over the one connection it accepted, so it never resolves a path the sandbox
// can write. A factory is known by the listener it reached (each scope's sandbox sees only its
// own), never by what it claims: a hello naming another scope, or a second connection, is refused.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { SandletError } from '../errors.js';
import { CHANNEL_SOCKET_NAME, MAX_HELLO_BYTES, parseHello, type Hello } from '../sbus/hello.js';
import { closeQuietly, native, type ErrnoError } from '../sbus/native.js';
import { notConnected, type Transport } from '../sbus/transport.js';

export { CHANNEL_SOCKET_NAME };

const REFUSAL_LOG_INTERVAL_MS = 10_000;

interface Connection {
  fd: number;
  listener: { close(): void };
  hello: Hello | undefined;
}

export class FactoryChannel implements Transport {
  readonly name: string;
  private readonly scope: string;
  private readonly log: Logger;
  private acceptor: { close(): void } | undefined;
  private conn: Connection | undefined;
  private lost = false;
  private refused = 0;
  private lastRefusalLog = 0;
  private readonly socketPath: string;
  /** The socket file as bound, so close() removes ours and never a successor's. */
  private socketIno = 0;
  private wake: (() => void) | undefined;
  /** Called once when an established connection closes: the factory is gone. */
  onLost: (why: string) => void = () => {};

  /**
   * Listens at socketPath (replacing a stale file). A live socket there belongs to another
   * gateway: ESANDBOX, touching nothing. owner: who may connect (the sandbox's user); mode 0600.
   */
  constructor(scope: string, socketPath: string, logger: Logger, owner?: { uid: number; gid: number }) {
    this.scope = scope;
    this.socketPath = socketPath;
    this.name = `factory connection of scope ${scope}`;
    this.log = logger.child({ scope, channel: socketPath });
    let fd: number;
    try {
      fd = native.listenSeqpacket(socketPath);
    } catch (err) {
      if ((err as ErrnoError).code === 'EADDRINUSE') {
        throw new SandletError(
          'ESANDBOX',
          `scope ${scope} has a sandbox this gateway did not start (its channel ${socketPath} is live): another gateway or backend on this root runs it; stop it there (or with \`sandlet scopes stop --all\` and that backend) first`,
        );
      }
      throw new SandletError('ESANDBOX', `cannot listen for the factory of scope ${scope}: ${(err as Error).message}`);
    }
    try {
      if (owner) fs.chownSync(socketPath, owner.uid, owner.gid);
      fs.chmodSync(socketPath, 0o600);
      this.socketIno = fs.statSync(socketPath).ino;
      this.acceptor = native.acceptOn(fd, (conn) => this.onConnection(conn));
    } catch (err) {
      closeQuietly([fd]);
      throw err;
    }
  }

  /** True once a factory connected and said hello, until the connection closes. */
  get connected(): boolean {
    return this.conn?.hello !== undefined && !this.lost;
  }

  get hello(): Hello | undefined {
    return this.conn?.hello;
  }

  /** Resolves when a factory connected and said a good hello; rejects after timeoutMs or if `gone` settles first. */
  async waitConnected(timeoutMs: number, gone?: Promise<unknown>): Promise<void> {
    if (this.connected) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => (this.wake = resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new SandletError('ETIMEDOUT', `no factory connected for scope ${this.scope} within ${timeoutMs / 1000} s`)), timeoutMs);
        }),
        ...(gone ? [gone.then(() => Promise.reject(new SandletError('ESANDBOX', `the sandbox of scope ${this.scope} ended before its factory connected`)))] : []),
      ]);
    } finally {
      clearTimeout(timer);
      this.wake = undefined;
    }
  }

  send(body: Buffer, fds: number[]): void {
    // Only while the connection is open: after close the fd number may name something else.
    if (!this.connected || !this.conn) throw notConnected(this.name);
    native.sendOn(this.conn.fd, body, fds);
  }

  close(): void {
    if (this.acceptor) {
      // The addon closes the socket a loop turn later: the file goes now, so a new listener can bind.
      try {
        if (fs.statSync(this.socketPath).ino === this.socketIno) fs.unlinkSync(this.socketPath);
      } catch {
        // already gone
      }
    }
    this.acceptor?.close();
    this.acceptor = undefined;
    this.dropConnection();
    this.lost = true;
  }

  private onConnection(fd: number): void {
    if (this.conn || this.lost) {
      // One connection per sandbox start: whoever dials again is not the factory we started.
      this.refused++;
      if (Date.now() - this.lastRefusalLog >= REFUSAL_LOG_INTERVAL_MS) {
        // Logged at most once per interval, with the count: dialling cannot flood the log.
        this.log.warn({ established: this.connected, refused: this.refused }, 'refused a second factory connection');
        this.lastRefusalLog = Date.now();
        this.refused = 0;
      }
      closeQuietly([fd]);
      return;
    }
    const conn: Connection = { fd, hello: undefined, listener: { close() {} } };
    this.conn = conn;
    let warned = false;
    conn.listener = native.listen(
      fd,
      MAX_HELLO_BYTES,
      (body, fds) => {
        closeQuietly(fds); // the factory has no fds to give the gateway
        if (conn.hello) {
          if (!warned) this.log.warn({ bytes: body.length }, 'ignored a message from the factory after its hello');
          warned = true;
          return;
        }
        const hello = parseHello(body);
        const why = typeof hello === 'string' ? hello : hello.scope !== this.scope ? `it names scope ${JSON.stringify(hello.scope)}` : undefined;
        if (why !== undefined || typeof hello === 'string') {
          this.log.warn({ why }, 'refused a factory connection: bad hello');
          this.dropConnection();
          return;
        }
        conn.hello = hello;
        this.log.debug({ agent: hello.agent }, 'factory connected');
        this.wake?.();
      },
      () => {
        const established = conn.hello !== undefined && !this.lost;
        this.dropConnection();
        if (established) this.onLost('the factory closed its connection');
      },
    );
  }

  private dropConnection(): void {
    const conn = this.conn;
    if (!conn) return;
    conn.listener.close();
    // A refused hello frees the slot: the factory may dial again. An established one never does.
    if (conn.hello === undefined) this.conn = undefined;
    else this.lost = true;
  }
}
