// Object metadata on HTTP, one mapping for every API: user metadata travels as `X-Object-Meta-<Key>`
// headers (Swift's form), keys in one canonical form (each dash-separated word capitalised), values
// as UTF-8 bytes carried in latin1 header strings (what Swift sends and expects).
import { SandletError } from '../errors.js';

export const META_PREFIX = 'x-object-meta-';
const TOKEN_RE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** `content-type` → `Content-Type`, `COLOR` → `Color`: the one canonical form of a metadata key. */
export function canonicalKey(key: string): string {
  return key.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** User metadata from request or response headers (`X-Object-Meta-*`), keys canonical. */
export function metadataFromHeaders(headers: Iterable<[string, string | string[] | undefined]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) {
    if (typeof v !== 'string' || !k.toLowerCase().startsWith(META_PREFIX)) continue;
    out[canonicalKey(k.slice(META_PREFIX.length))] = Buffer.from(v, 'latin1').toString('utf8');
  }
  return out;
}

/** Finds a key case-insensitively (storlets may write `content-type` or `Content-Type`). */
export function metadataValue(metadata: Record<string, string>, key: string): string | undefined {
  const want = key.toLowerCase();
  for (const [k, v] of Object.entries(metadata)) if (k.toLowerCase() === want) return v;
  return undefined;
}

export interface MetadataHeaderOptions {
  /** The content type when the metadata has none. */
  defaultContentType?: string;
  /**
   * Also answer `Content-Type` as `X-Object-Meta-Content-Type` (sandlet's own API keeps every key
   * as metadata; the Swift front door, like Storlets, makes it the content type only).
   */
  keepContentTypeMeta?: boolean;
}

/**
 * A storlet's output metadata as headers: `X-Object-Meta-<Key>` each (names in that canonical case;
 * keys differing only in case are one header, the last wins), and `Content-Type` from its
 * Content-Type. A storlet cannot smuggle header syntax through a key or value.
 */
export function metadataToHeaders(metadata: Record<string, string>, opts: MetadataHeaderOptions = {}): Record<string, string> {
  const out: Record<string, string> = {};
  if (opts.defaultContentType) out['Content-Type'] = opts.defaultContentType;
  for (const [k, v] of Object.entries(metadata)) {
    if (!TOKEN_RE.test(k)) throw new SandletError('ESTORLET', `the storlet's output metadata key ${JSON.stringify(k.slice(0, 80))} cannot be an HTTP header`);
    if (CONTROL_RE.test(v)) throw new SandletError('ESTORLET', `the storlet's output metadata ${k} holds control characters`);
    const name = canonicalKey(k);
    const wire = Buffer.from(v, 'utf8').toString('latin1'); // UTF-8 on the wire, as Swift sends it
    if (name === 'Content-Type') {
      if (v) out['Content-Type'] = wire;
      if (!opts.keepContentTypeMeta) continue;
    }
    out[`X-Object-Meta-${name}`] = wire;
  }
  return out;
}
