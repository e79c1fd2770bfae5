import { SandletError } from './errors.js';

// Scope and storlet names become path components and container names, so they are checked
// before any path is built: letters, digits, `_ . -`, bounded, never `.` or `..`.
const NAME_RE = /^[A-Za-z0-9_.-]+$/;
export const MAX_SCOPE_LENGTH = 63;
export const MAX_STORLET_LENGTH = 64;

function check(kind: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new SandletError('EBADNAME', `${kind} name must be a non-empty string`);
  }
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value.length > max) {
    throw new SandletError('EBADNAME', `${kind} name ${shown} is longer than ${max} characters`);
  }
  if (value === '.' || value === '..') {
    throw new SandletError('EBADNAME', `${kind} name ${shown} is not allowed`);
  }
  if (!NAME_RE.test(value)) {
    throw new SandletError(
      'EBADNAME',
      `${kind} name ${shown} may only hold letters, digits, '_', '.' and '-'`,
    );
  }
  return value;
}

// A scope also names its sandbox and its tenant image on every backend, so it must be what Docker
// takes as one component of an image reference once lowercased: letters and digits, separated by
// one '.', one or two '_', or a run of '-'; starting and ending with a letter or digit.
const SCOPE_RE = /^[a-z0-9]+(?:(?:\.|_{1,2}|-+)[a-z0-9]+)*$/;

export function validateScopeName(value: unknown): string {
  const name = check('scope', value, MAX_SCOPE_LENGTH);
  if (!/^[A-Za-z0-9]/.test(name)) {
    throw new SandletError('EBADNAME', `scope name ${JSON.stringify(name)} must start with a letter or digit`);
  }
  if (!SCOPE_RE.test(name.toLowerCase())) {
    throw new SandletError(
      'EBADNAME',
      `scope name ${JSON.stringify(name)} must end with a letter or digit, and separate letters and digits by one '.', one or two '_' or dashes`,
    );
  }
  return name;
}

/**
 * The tenant image a scope runs when it exists: `<image_namespace>/<scope, lowercased>:latest`
 * (Docker references are lowercase, so `AUTH_a` and `auth_a` share one).
 */
export function tenantImage(namespace: string, scope: string): string {
  return `${namespace}/${validateScopeName(scope).toLowerCase()}:latest`;
}

export function validateStorletName(value: unknown): string {
  return check('storlet', value, MAX_STORLET_LENGTH);
}

export function validateDependencyName(value: unknown): string {
  return check('dependency', value, MAX_STORLET_LENGTH);
}

// S3 bucket names (an access point's name is used as one): 3 to 63 lower-case letters, digits,
// `.` and `-`, starting and ending with a letter or digit, not shaped like an IP address. Names
// the Swift front door routes itself are refused so the two doors never claim one path.
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** First path segments the proxy always gives to Swift (`/v1/...`, `/auth/...`, `/info`, ...). */
export const SWIFT_ROUTES: ReadonlySet<string> = new Set(['v1', 'v1.0', 'auth', 'info', 'healthcheck', 'crossdomain.xml']);

export function validateBucketName(value: unknown, kind = 'access point'): string {
  const shown = JSON.stringify(typeof value === 'string' ? value.slice(0, 80) : value);
  if (typeof value !== 'string' || !BUCKET_RE.test(value) || value.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(value)) {
    throw new SandletError('EBADNAME', `${kind} name ${shown} must be a bucket name: 3 to 63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit`);
  }
  if (SWIFT_ROUTES.has(value)) throw new SandletError('EBADNAME', `${kind} name ${shown} is a path the Swift front door serves`);
  return value;
}
