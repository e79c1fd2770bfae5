// Typed errors: every failure a user can see has a stable `code` and a one-line message.

export type SandletErrorCode =
  | 'EBADNAME'
  | 'EBADCONFIG'
  | 'EBADREGISTRATION'
  | 'ENOSTORLET'
  | 'ENOLISTENER'
  /** The peer took the command, then closed its reply pipe unanswered: it died meanwhile. */
  | 'ENOREPLY'
  | 'ETIMEDOUT'
  | 'ESBUSPROTO'
  | 'ETOOLARGE'
  | 'ESTORLET'
  | 'ESANDBOX'
  | 'ECANCELLED'
  /** The caller's own input stream failed; the original error is the `cause`. */
  | 'EINPUT'
  | 'EBACKOFF'
  | 'ECLOSED'
  | 'ESTORE'
  | 'EDIGEST'
  | 'ECACHE'
  | 'ECACHEMISS';

export class SandletError extends Error {
  readonly code: SandletErrorCode;

  constructor(code: SandletErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SandletError';
  }
}

export function isSandletError(err: unknown, code?: SandletErrorCode): err is SandletError {
  return err instanceof SandletError && (code === undefined || err.code === code);
}

/** The message of anything thrown, on one line. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
