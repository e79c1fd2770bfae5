// Swift object paths as the storlet front door reads them: `/v1/<account>/<container>/<object>`.
// Every name is decoded once, checked, and encoded again by one function, so what sandlet forwards
// names exactly the account, container and object it checked (no dot segments, NUL or encoded
// slash can move it to another account).
import { SandletError } from '../../errors.js';
import { validateScopeName } from '../../names.js';

export const MAX_CONTAINER_BYTES = 256;
export const MAX_OBJECT_BYTES = 1024;

export interface ObjectPath {
  version: string;
  account: string;
  container: string;
  object: string;
}

export interface SwiftPath {
  version: string;
  account: string;
  container?: string;
  object?: string;
}

function bad(message: string): SandletError {
  return new SandletError('EBADNAME', message);
}

function decode(raw: string, what: string): string {
  let s: string;
  try {
    s = decodeURIComponent(raw);
  } catch {
    throw bad(`${what} is not valid percent-encoding`);
  }
  if (s.includes('\0')) throw bad(`${what} holds a NUL character`);
  return s;
}

function checkContainer(name: string): string {
  if (!name) throw bad('the container name is empty');
  if (name.includes('/')) throw bad('a container name cannot hold "/"');
  if (name === '.' || name === '..') throw bad(`container name ${JSON.stringify(name)} is not allowed`);
  if (Buffer.byteLength(name) > MAX_CONTAINER_BYTES) throw bad(`the container name is longer than ${MAX_CONTAINER_BYTES} bytes`);
  return name;
}

function checkObject(name: string): string {
  if (!name) throw bad('the object name is empty');
  if (Buffer.byteLength(name) > MAX_OBJECT_BYTES) throw bad(`the object name is longer than ${MAX_OBJECT_BYTES} bytes`);
  if (name.split('/').some((seg) => seg === '.' || seg === '..')) throw bad('an object name used with a storlet cannot hold "." or ".." segments');
  return name;
}

/**
 * Parses the path part of a request URL (no query). Undefined when it is not a Swift storage path
 * (`/v1/...` or another version word Swift may serve: `v1.0`).
 */
export function parseSwiftPath(rawPath: string): SwiftPath | undefined {
  const m = /^\/(v1|v1\.0)\/([^/]+)(?:\/([^/]*)(?:\/(.*))?)?$/.exec(rawPath);
  if (!m) return undefined;
  const account = validateScopeName(decode(m[2]!, 'the account name'));
  const out: SwiftPath = { version: m[1]!, account };
  if (m[3] !== undefined && m[3] !== '') out.container = checkContainer(decode(m[3], 'the container name'));
  if (m[4] !== undefined && m[4] !== '') out.object = checkObject(decode(m[4], 'the object name'));
  return out;
}

/** `container/object` as Swift's copy headers give it (`X-Copy-From`, `Destination`), maybe with a leading `/`. */
export function parseContainerObject(value: string, header: string): { container: string; object: string } {
  const v = decode(value.trim(), `header ${header}`).replace(/^\//, '');
  const slash = v.indexOf('/');
  if (slash <= 0 || slash === v.length - 1) throw bad(`header ${header} must be <container>/<object>`);
  return { container: checkContainer(v.slice(0, slash)), object: checkObject(v.slice(slash + 1)) };
}

const encodeSegment = (s: string): string => encodeURIComponent(s);

/** The canonical request path for an object of an account. */
export function objectPath(p: ObjectPath): string {
  return `/${p.version}/${encodeSegment(p.account)}/${encodeSegment(p.container)}/${p.object.split('/').map(encodeSegment).join('/')}`;
}

export function containerPath(version: string, account: string, container: string): string {
  return `/${version}/${encodeSegment(account)}/${encodeSegment(container)}`;
}
