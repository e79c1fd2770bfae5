// Which headers belong to one connection rather than to the message (RFC 9110 §7.6.1): a proxy
// drops them, and also every header the Connection header names, in both directions.
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Answered by this proxy itself (100 Continue is sent to the client before the body is read).
  'expect',
]);

/** Header names (lower case) that must not be forwarded, given the message's own headers. */
export function hopByHopNames(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Set<string> {
  const names = new Set(HOP_BY_HOP);
  const conn = headers.connection;
  const list = Array.isArray(conn) ? conn.join(',') : conn;
  if (list) for (const n of list.split(',')) if (n.trim()) names.add(n.trim().toLowerCase());
  return names;
}

/**
 * The end-to-end headers of a message, as a flat record of arrays-or-strings (`set-cookie` and
 * friends stay arrays). `drop` names further headers to leave out (lower case).
 */
export function endToEnd(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  drop: Iterable<string> = [],
): Record<string, string | string[]> {
  const skip = hopByHopNames(headers);
  for (const d of drop) skip.add(d);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || skip.has(k)) continue;
    out[k] = v;
  }
  return out;
}
