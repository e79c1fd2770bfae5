// One mapping from sandlet's error codes to HTTP: status, a one-line JSON body, Retry-After.
import type { SandletConfig } from '../config.js';
import { isSandletError, oneLine } from '../errors.js';
import { hostPathRedactor, statusOf } from '../http/error-status.js';

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
    const { status, retryAfter } = statusOf(err);
    return { status, body: { error: oneLine(err), code: err.code }, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  }
  return { status: 500, body: { error: oneLine(err), code: 'EINTERNAL' } };
}

/** toHttpError for one server, with the node's directories hidden from clients. */
export function httpErrorMapper(dirs: Parameters<typeof hostPathRedactor>[0]): (err: unknown) => HttpError {
  const redact = hostPathRedactor(dirs);
  return (err) => {
    const e = toHttpError(err);
    const text = redact(e.body.error);
    return text === e.body.error ? e : { ...e, body: { ...e.body, error: text } };
  };
}
