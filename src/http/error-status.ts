// One mapping from sandlet's error codes to HTTP statuses, for every HTTP API (sandlet's own and
// the front doors), with the Retry-After a temporary outage deserves.
import type { SandletConfig } from '../config.js';
import { isSandletError, type SandletErrorCode } from '../errors.js';

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

export function statusOf(err: unknown): { status: number; retryAfter?: number } {
  if (!isSandletError(err)) return { status: 500 };
  const status = STATUS[err.code] ?? 500;
  if (status !== 503) return { status };
  // A backing-off scope says when to come back; other outages: soon.
  const next = /next try in (\d+) s/.exec(err.message);
  return { status, retryAfter: next ? Number(next[1]) : 1 };
}

type HostDirs = Pick<SandletConfig, 'host_root' | 'store_dir' | 'cache_dir' | 'storlets_dir' | 'pipes_dir' | 'log_dir'>;

/**
 * A client is not told where the node keeps things: the host's directories in a message become
 * their option names (`<store_dir>/…`). Logs keep the paths.
 */
export function hostPathRedactor(dirs: HostDirs): (text: string) => string {
  // Longest first: store_dir usually lies inside host_root.
  const names = (['store_dir', 'cache_dir', 'storlets_dir', 'pipes_dir', 'log_dir', 'host_root'] as const)
    .map((k) => [dirs[k], `<${k}>`] as const)
    .sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    for (const [dir, name] of names) if (text.includes(dir)) text = text.split(dir).join(name);
    return text;
  };
}
