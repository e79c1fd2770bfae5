// The storlet API as storlet authors see it (ARCHITECTURE § Storlet API).
import type { Readable, Writable } from 'node:stream';

export interface StorletRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive (as in HTTP `bytes=START-END`). */
  end: number;
}

export interface StorletInput {
  /** The object's user metadata (e.g. from `X-Object-Meta-*`). */
  metadata: Record<string, string>;
  range?: StorletRange;
  stream: Readable;
}

export interface StorletOutput {
  /** Sets the output object's metadata. Call before writing; later calls are an error. */
  setMetadata(record: Record<string, string>): void;
  stream: Writable;
}

export interface StorletLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface StorletContext {
  /** inputs[0] is the object; further entries are the extra inputs, in order. */
  inputs: StorletInput[];
  output: StorletOutput;
  params: Record<string, string>;
  logger: StorletLogger;
  /** Aborted when the invocation is cancelled or times out. */
  signal: AbortSignal;
}

export type InvokeFn = (ctx: StorletContext) => unknown;
