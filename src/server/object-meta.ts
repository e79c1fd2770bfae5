// Object metadata on the wire as `X-Object-Meta-<Name>` headers, in one canonical form both ways:
// HTTP header names carry no case, so each dash-separated part is title-cased as Swift does
// (`x-object-meta-content-type` → `Content-Type`, answered as `X-Object-Meta-Content-Type`).
import { SandletError } from '../errors.js';

const PREFIX = 'x-object-meta-';

/** `content-TYPE` → `Content-Type`. */
export function canonicalMetaName(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** Metadata from request (or multipart part) headers. */
export function metaFromHeaders(headers: Iterable<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) {
    if (k.length <= PREFIX.length || k.slice(0, PREFIX.length).toLowerCase() !== PREFIX) continue;
    // Values arrive as latin1 strings of UTF-8 bytes (what Swift sends): decode them.
    out[canonicalMetaName(k.slice(PREFIX.length))] = Buffer.from(v, 'latin1').toString('utf8');
  }
  return out;
}

/**
 * A storlet's output metadata as response headers: `X-Object-Meta-<Name>` each, and
 * `Content-Type` from its Content-Type when it has one. A storlet cannot smuggle header syntax
 * through it. Names differing only in case are one header (the last wins).
 */
export function metaToHeaders(metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
  for (const [k, v] of Object.entries(metadata)) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(k)) throw new SandletError('ESTORLET', `the storlet's output metadata key ${JSON.stringify(k.slice(0, 80))} cannot be an HTTP header`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(v)) throw new SandletError('ESTORLET', `the storlet's output metadata ${k} holds control characters`);
    const name = canonicalMetaName(k);
    const wire = Buffer.from(v, 'utf8').toString('latin1'); // UTF-8 on the wire, as Swift sends it
    out[`X-Object-Meta-${name}`] = wire;
    if (name === 'Content-Type' && v) out['Content-Type'] = wire;
  }
  return out;
}
