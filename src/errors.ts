// Typed errors: every failure a user can see has a stable `code` and a one-line message.

/** Every code a `SandletError` carries (the README's error table lists each; a test checks). */
export const ERROR_CODES = [
  'EBADNAME',
  'EBADCONFIG',
  'EBADREGISTRATION',
  'ENOSTORLET',
  'ENOLISTENER',
  /** The peer took the command, then closed its reply pipe unanswered: it died meanwhile. */
  'ENOREPLY',
  'ETIMEDOUT',
  'ESBUSPROTO',
  'ETOOLARGE',
  'ESTORLET',
  'ESANDBOX',
  'ECANCELLED',
  /** The caller's own input stream failed; the original error is the `cause`. */
  'EINPUT',
  'EBACKOFF',
  'ECLOSED',
  'ESTORE',
  'EDIGEST',
  'ECACHE',
  'ECACHEMISS',
] as const;

export type SandletErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes only the HTTP API answers with (they name a request's fault, not the gateway's), also in
 * the README's table.
 */
export const HTTP_ERROR_CODES = ['EAUTH', 'EFORBIDDEN', 'ENOROUTE', 'ENOSCOPE', 'ENODAEMON', 'ENOLOG', 'ENOACCESSPOINT', 'EHTTP', 'EINTERNAL'] as const;

export class SandletError extends Error {
  readonly code: SandletErrorCode;
  /** The HTTP status a remote store answered, when that is what failed (read it, never parse the message). */
  readonly status?: number;

  constructor(code: SandletErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options);
    this.code = code;
    this.name = 'SandletError';
    if (options?.status !== undefined) this.status = options.status;
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
