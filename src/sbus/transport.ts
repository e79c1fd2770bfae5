import { native } from './native.js';

/**
 * Where an SBus client's commands go: a socket path (Storlets' way: a datagram to a path) or a
 * connection the gateway accepted (sandlet's way: the sandbox dialled out, so no path the sandbox
 * can write is ever resolved). send() throws errno-coded errors as the addon does.
 */
export interface Transport {
  /** Names the peer in errors and logs. */
  readonly name: string;
  send(body: Buffer, fds: number[]): void;
}

export function pathTransport(path: string): Transport {
  return { name: path, send: (body, fds) => native.send(path, body, fds) };
}

/** The errno name a transport with no peer throws with; SBusClient maps it to ENOLISTENER. */
const NOT_CONNECTED = 'ENOTCONN';

/** An errno-coded error for a transport with no peer (a connection that is gone or not yet made). */
export function notConnected(name: string): Error & { code: string } {
  return Object.assign(new Error(`${name}: not connected`), { code: NOT_CONNECTED });
}
