// Small bodies on the storlet path, kept whole in memory where that saves a round of streaming:
// a small object is read before EXECUTE (the gateway then writes it into the input pipe, and the
// storlet finds all of it waiting), and a small output leaves in one write with its length.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { SandletError } from '../errors.js';

/** Objects (and outputs) up to this size are held whole; larger ones stream. */
export const SMALL_BODY_BYTES = 64 * 1024;

/**
 * How long a small output is held for its end before its first bytes go out anyway: a storlet
 * that writes a little and then works on keeps its reader informed.
 */
export const SMALL_OUTPUT_HOLD_MS = 50;

/**
 * The whole body of an upstream response whose Content-Length is at most SMALL_BODY_BYTES, or
 * undefined (the body is left untouched) when it is larger or unannounced. A body that ends short
 * of its announced length is an ESTORE error.
 */
export function readSmallBody(body: Readable, headers: Record<string, string | string[] | undefined>): Promise<Buffer> | undefined {
  const len = Number(headers['content-length'] ?? NaN);
  if (!(len <= SMALL_BODY_BYTES)) return undefined;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    // Events rather than an async iterator: for a body that came with its headers, a promise per
    // chunk costs more than the read.
    body.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
    });
    const short = (): SandletError => new SandletError('ESTORE', `the object store sent ${got} bytes of an object of ${len}`);
    body.once('error', reject);
    body.once('end', () => (got === len ? resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, got)) : reject(short())));
    // A connection that closes with no 'end' (nor 'error') is a short object too. Every body
    // closes after its 'end': no error is built then.
    body.once('close', () => {
      if (!body.readableEnded) reject(short());
    });
  });
}

/** The start of an output: all of it when `ended`, else what came before the bound or the hold time. */
export interface OutputHead {
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
}

/**
 * Reads an output until it ends, passes SMALL_BODY_BYTES, or was held SMALL_OUTPUT_HOLD_MS with
 * at least one byte. Not ended, the stream is left paused after the chunks returned. Rejects with
 * the stream's error. Nothing is committed before a first byte: a storlet that fails (or is
 * cancelled) before any output gets an error status, not a 200 cut before its first byte.
 */
export function readOutputHead(body: Readable): Promise<OutputHead> {
  return new Promise((resolve, reject) => {
    const head: OutputHead = { chunks: [], bytes: 0, ended: false };
    const settle = (err: Error | null): void => {
      clearTimeout(timer);
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', settle);
      if (err) return reject(err);
      if (!head.ended) {
        body.pause();
        // Whoever takes the rest hears of a failure from the stream's state; until then, nothing
        // may go unheard.
        body.on('error', () => {});
      }
      resolve(head);
    };
    let held = false;
    const onData = (c: Buffer): void => {
      head.chunks.push(c);
      head.bytes += c.length;
      if (held || head.bytes > SMALL_BODY_BYTES) settle(null);
    };
    const onEnd = (): void => {
      head.ended = true;
      settle(null);
    };
    const timer = setTimeout(() => {
      if (head.bytes > 0) settle(null);
      else held = true;
    }, SMALL_OUTPUT_HOLD_MS);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', settle);
  });
}

/** Sends an output that ended while held: in one write, with its Content-Length. */
export function sendWholeHead(res: ServerResponse, status: number, headers: Record<string, string | string[]>, head: OutputHead): void {
  res.writeHead(status, { ...headers, 'content-length': String(head.bytes) });
  res.end(head.chunks.length === 1 ? head.chunks[0] : Buffer.concat(head.chunks, head.bytes));
}
