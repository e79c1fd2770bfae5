// One mapping from sandlet's error codes to HTTP: status, a one-line JSON body, Retry-After.
import type { SandletConfig } from '../config.js';
import { isSandletError, oneLine, type SandletErrorCode } from '../errors.js';

const STATUS: Partial<Record<SandletErrorCode, number>> = {
  EBADNAME: 400,
  EBADREGISTRATION: 400,
  EBADCONFIG: 400,
  ENOSTORLET: 404,
  ESTORLET: 502,
  ETOOLARGE: 502,
  EDIGEST: 502,
  ESBUSPROTO: 502,
  ESANDBOX: 503,
  ENOLISTENER: 503,
  ENOREPLY: 503,
  EBACKOFF: 503,
  ESTORE: 503,
  ECLOSED: 503,
  ECACHE: 507,
  ETIMEDOUT: 504,
  ECANCELLED: 499,
  EINPUT: 400,
};

export interface HttpError {
  status: number;
  body: { error: string; code: string };
  retryAfter?: number;
}

export class RequestError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof RequestError) return { status: err.status, body: { error: err.message, code: err.code } };
  if (isSandletError(err)) {
    const status = STATUS[err.code] ?? 500;
    const out: HttpError = { status, body: { error: oneLine(err), code: err.code } };
    if (status === 503) {
      // A backing-off scope says when to come back; other outages: soon.
      const next = /next try in (\d+) s/.exec(err.message);
      out.retryAfter = next ? Number(next[1]) : 1;
    }
    return out;
  }
  return { status: 500, body: { error: oneLine(err), code: 'EINTERNAL' } };
}

type HostDirs = Pick<SandletConfig, 'host_root' | 'store_dir' | 'cache_dir' | 'storlets_dir' | 'pipes_dir' | 'log_dir'>;

/**
 * toHttpError for one server: a client is not told where the node keeps things, so the host's
 * directories in a message become their option names (`<store_dir>/…`). Logs keep the paths.
 */
export function httpErrorMapper(dirs: HostDirs): (err: unknown) => HttpError {
  // Longest first: store_dir usually lies inside host_root.
  const names = (['store_dir', 'cache_dir', 'storlets_dir', 'pipes_dir', 'log_dir', 'host_root'] as const)
    .map((k) => [dirs[k], `<${k}>`] as const)
    .sort((a, b) => b[0].length - a[0].length);
  return (err) => {
    const e = toHttpError(err);
    let text = e.body.error;
    for (const [dir, name] of names) if (text.includes(dir)) text = text.split(dir).join(name);
    return text === e.body.error ? e : { ...e, body: { ...e.body, error: text } };
  };
}
