// Access points: a name S3 clients use as a bucket, bound to an upstream bucket, a storlet with
// fixed params, the scope it runs in, and what it serves (get, put, delete). Kept in one JSON file
// (config access_points_file) that the CLI and the admin API edit and a running server follows.
import { SandletError } from '../../errors.js';
import { validateBucketName, validateScopeName, validateStorletName } from '../../names.js';
import { RecordFile } from './live-file.js';

/** get: GetObject, HeadObject, listings; put: PutObject and multipart uploads; delete: DeleteObject. */
export const OPERATIONS = ['get', 'put', 'delete'] as const;
export type Operation = (typeof OPERATIONS)[number];
/** `output`: a Range applies to the storlet's output; `storlet`: it is handed to the storlet as its input range. */
export const RANGE_MODES = ['output', 'storlet'] as const;
export type RangeMode = (typeof RANGE_MODES)[number];

export interface AccessPoint {
  name: string;
  /** The upstream bucket. */
  bucket: string;
  storlet: string;
  params: Record<string, string>;
  /** The sandbox scope the storlet runs in (default: the access point's name). */
  scope: string;
  on: Operation[];
  range: RangeMode;
  created: string;
}

export interface AccessPointInput {
  name: unknown;
  bucket: unknown;
  storlet: unknown;
  params?: unknown;
  scope?: unknown;
  on?: unknown;
  range?: unknown;
}

const MAX_PARAMS = 64;

function bad(message: string): SandletError {
  return new SandletError('EBADNAME', message);
}

/** Checks an access point as given by a user (CLI flags or admin API JSON). */
export function validateAccessPoint(input: AccessPointInput, created = new Date().toISOString()): AccessPoint {
  const name = validateBucketName(input.name);
  const bucket = validateBucketName(input.bucket, 'bucket');
  const storlet = validateStorletName(input.storlet);
  const scope = validateScopeName(input.scope ?? name);
  const params: Record<string, string> = {};
  if (input.params !== undefined) {
    if (typeof input.params !== 'object' || input.params === null || Array.isArray(input.params)) throw bad('params must be an object of strings');
    const entries = Object.entries(input.params as Record<string, unknown>);
    if (entries.length > MAX_PARAMS) throw bad(`an access point has at most ${MAX_PARAMS} params`);
    for (const [k, v] of entries) {
      if (!k || typeof v !== 'string') throw bad(`param ${JSON.stringify(k.slice(0, 80))} must be a non-empty name with a string value`);
      if (k.toLowerCase().startsWith('storlet_')) throw bad(`param ${JSON.stringify(k.slice(0, 80))} uses the reserved prefix "storlet_"`);
      params[k] = v;
    }
  }
  const onList = input.on === undefined ? ['get'] : typeof input.on === 'string' ? input.on.split(',').map((s) => s.trim()).filter(Boolean) : input.on;
  if (!Array.isArray(onList) || onList.length === 0 || !onList.every((o) => (OPERATIONS as readonly unknown[]).includes(o))) {
    throw bad(`on must list operations out of ${OPERATIONS.join(', ')}`);
  }
  const range = input.range ?? 'output';
  if (!(RANGE_MODES as readonly unknown[]).includes(range)) throw bad(`range must be ${RANGE_MODES.join(' or ')}`);
  return { name, bucket, storlet, params, scope, on: [...new Set(onList as Operation[])], range: range as RangeMode, created };
}

/** The access points file (config access_points_file); a server follows it through get(). */
export class AccessPointRegistry extends RecordFile<AccessPoint> {
  constructor(file: string) {
    super({ file, what: 'access points', listKey: 'accessPoints', mode: 0o644, parse: (e) => validateAccessPoint(e as AccessPointInput, (e as AccessPoint).created), id: (a) => a.name });
  }
}

export function listAccessPoints(file: string): AccessPoint[] {
  return [...new AccessPointRegistry(file).read().values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Adds an access point; `replace` lets it overwrite one of the same name. */
export function createAccessPoint(file: string, input: AccessPointInput, replace = false): AccessPoint {
  const ap = validateAccessPoint(input);
  const registry = new AccessPointRegistry(file);
  const all = registry.read();
  if (all.has(ap.name) && !replace) throw new SandletError('EBADNAME', `access point ${ap.name} exists already (remove it first)`);
  all.set(ap.name, ap);
  registry.write(all);
  return ap;
}

/** Removes an access point; false when there was none of that name. */
export function removeAccessPoint(file: string, name: string): boolean {
  return new AccessPointRegistry(file).remove(name);
}
