// Passthrough: a request that runs no storlet goes to the upstream unchanged (method, path and query
// as received, end-to-end headers including the client's Host and credentials, body streamed).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { endToEnd } from './hop-by-hop.js';
import { forwardGet } from './pump-body.js';
import { clientGone, hasRequestBody, relayResponse, sendText } from './relay.js';
import type { Upstream, UpstreamResponse } from './upstream.js';

export type ForwardOutcome = 'ok' | 'aborted' | 'failed_midstream' | 'upstream_error';

export async function forward(req: IncomingMessage, res: ServerResponse, upstream: Upstream): Promise<ForwardOutcome> {
  // Downloads, which may be large: their bodies can be moved socket to socket by the addon.
  if (req.method === 'GET' && upstream.rawGets && !hasRequestBody(req)) return forwardGet(req, res, upstream);
  const gone = clientGone(res);
  let up: UpstreamResponse;
  try {
    up = await upstream.request({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: endToEnd(req.headers),
      body: hasRequestBody(req) ? req : null,
      signal: gone.signal,
    });
  } catch (err) {
    if (gone.signal.aborted) return 'aborted';
    // An upload that broke off midway is the client's doing; anything else is the upstream's.
    if (req.errored || (req.readableAborted && !req.complete)) {
      res.destroy();
      return 'aborted';
    }
    sendText(res, 502, `The object store at ${upstream.origin} could not be reached: ${(err as Error).message}`);
    return 'upstream_error';
  }
  return relayResponse(req, res, up);
}
