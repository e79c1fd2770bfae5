// Talks to a running `sandlet serve` for the operator commands: over its Unix socket or a URL,
// with the token from SANDLET_TOKEN. Failures become exit codes scripts can rely on.
import http from 'node:http';
import https from 'node:https';
import { SandletError } from '../errors.js';

/** Exit codes of the operator commands (documented in the README). */
export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3, auth: 4, unavailable: 5 } as const;

export class ServerCommandError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface ServerTarget {
  socketPath?: string;
  url?: URL;
  token?: string;
}

/** `unix:/path`, `/path`, or `http(s)://host:port`. */
export function parseServer(value: string, token = process.env.SANDLET_TOKEN): ServerTarget {
  const t = token ? { token } : {};
  if (value.startsWith('unix:')) return { socketPath: value.slice(5), ...t };
  if (value.startsWith('/')) return { socketPath: value, ...t };
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return { url, ...t };
  } catch {
    /* fall through */
  }
  throw new SandletError('EBADNAME', `--server must be unix:PATH or an http(s) URL, not ${JSON.stringify(value)}`);
}

function exitFor(status: number): number {
  if (status === 404) return EXIT.notFound;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 503) return EXIT.unavailable;
  return EXIT.error;
}

/** Sends a request; resolves with the response once its status is OK (the body unread). */
export function request(target: ServerTarget, method: string, path: string): Promise<http.IncomingMessage> {
  const where = target.socketPath ? `unix:${target.socketPath}` : target.url!.origin;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = target.token ? { authorization: `Bearer ${target.token}` } : {};
    const opts: http.RequestOptions = target.socketPath
      ? { socketPath: target.socketPath, path, method, headers }
      : { host: target.url!.hostname, port: target.url!.port, path: `${target.url!.pathname.replace(/\/$/, '')}${path}`, method, headers };
    const req = (target.url?.protocol === 'https:' ? https : http).request(opts, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 400) return resolve(res);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let message = Buffer.concat(chunks).toString('utf8').trim();
        try {
          message = (JSON.parse(message) as { error?: string }).error ?? message;
        } catch {
          /* not JSON */
        }
        reject(new ServerCommandError(`${status}: ${message}`, exitFor(status)));
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const down = ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EHOSTUNREACH'].includes(err.code ?? '');
      reject(new ServerCommandError(`cannot reach the server at ${where}: ${err.code ?? err.message}`, down ? EXIT.unavailable : EXIT.error));
    });
    req.end();
  });
}

export async function requestJson<T>(target: ServerTarget, method: string, path: string): Promise<T> {
  const res = await request(target, method, path);
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}
