// What a Swift request asks of a storlet, read from Storlets' headers: `X-Run-Storlet`, parameters
// (query string and `X-Storlet-Parameter-N: key:value`), `X-Storlet-Range`, extra resources and
// log generation. Everything is checked before any request is made for it.
import type { IncomingHttpHeaders } from 'node:http';
import { SandletError } from '../../errors.js';
import { parseByteRange, type ByteRangeSpec } from '../../http/byte-range.js';
import { validateStorletName } from '../../names.js';
import { parseContainerObject } from './swift-path.js';

export interface StorletRequest {
  storlet: string;
  params: Record<string, string>;
  range?: ByteRangeSpec;
  extraResources: { container: string; object: string }[];
  generateLog: boolean;
}

const PARAM_HEADER = /^x-storlet-parameter-\d+$/;
/** Storlets reserves this prefix for the system's own parameters. */
const RESERVED_PREFIX = 'storlet_';
const MAX_EXTRA_RESOURCES = 16;

function bad(message: string): SandletError {
  return new SandletError('EBADNAME', message);
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (Array.isArray(v)) throw bad(`header ${name} is given more than once`);
  return v;
}

function addParam(params: Record<string, string>, key: string, value: string, from: string): void {
  if (!key) throw bad(`${from}: a storlet parameter needs a name`);
  if (key.toLowerCase().startsWith(RESERVED_PREFIX)) throw bad(`${from}: parameter ${JSON.stringify(key.slice(0, 80))} uses the reserved prefix "${RESERVED_PREFIX}"`);
  if (Object.hasOwn(params, key)) throw bad(`${from}: parameter ${JSON.stringify(key.slice(0, 80))} is given more than once`);
  params[key] = value;
}

/** Undefined when the request runs no storlet. */
export function parseStorletRequest(method: string, headers: IncomingHttpHeaders, query: URLSearchParams): StorletRequest | undefined {
  const name = single(headers, 'x-run-storlet');
  if (name === undefined) return undefined;
  const storlet = validateStorletName(name.trim());
  if (headers.range !== undefined) throw bad('Range cannot be used with X-Run-Storlet: use X-Storlet-Range to hand the storlet a range');
  if (method === 'COPY' || (method === 'PUT' && headers['x-copy-from'] !== undefined)) {
    for (const h of ['x-copy-from-account', 'destination-account', 'x-fresh-metadata']) {
      if (headers[h] !== undefined) throw bad(`header ${h} cannot be used when a storlet runs on copy`);
    }
  }
  const params: Record<string, string> = {};
  for (const [k, v] of query) addParam(params, k, v, 'query string');
  for (const [k, v] of Object.entries(headers)) {
    if (!PARAM_HEADER.test(k)) continue;
    if (typeof v !== 'string') throw bad(`header ${k} is given more than once`);
    const colon = v.indexOf(':');
    if (colon < 0) throw bad(`header ${k} must be "key:value"`);
    addParam(params, v.slice(0, colon).trim(), v.slice(colon + 1).trim(), `header ${k}`);
  }
  const rangeHeader = single(headers, 'x-storlet-range');
  const extra = single(headers, 'x-storlet-extra-resources');
  const extraResources = extra === undefined ? [] : extra.split(',').filter((s) => s.trim()).map((s) => parseContainerObject(s, 'X-Storlet-Extra-Resources'));
  if (extraResources.length > MAX_EXTRA_RESOURCES) throw bad(`X-Storlet-Extra-Resources names more than ${MAX_EXTRA_RESOURCES} objects`);
  const log = single(headers, 'x-storlet-generate-log');
  return {
    storlet,
    params,
    ...(rangeHeader !== undefined ? { range: parseByteRange(rangeHeader, 'X-Storlet-Range') } : {}),
    extraResources,
    generateLog: log !== undefined && log.trim().toLowerCase() === 'true',
  };
}
