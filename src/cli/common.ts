import { InvalidArgumentError, Option, type Command } from 'commander';
import { BACKENDS, loadConfig, type SandletConfig } from '../config.js';
import { parseByteRange } from '../http/byte-range.js';
import { SandletError } from '../errors.js';
import type { Gateway } from '../gateway.js';

/** Chooses the backend now, printing auto's fallback notice as one line on stderr. */
export async function readyWithNotice(gateway: Gateway): Promise<void> {
  await gateway.ready();
  if (gateway.notice) process.stderr.write(`sandlet: notice: ${gateway.notice}\n`);
}

export interface CommonFlags {
  backend?: string;
  root?: string;
  config?: string;
  logLevel?: string;
}

/** Every command that touches sandboxes or the store takes these. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backend <name>', 'sandbox backend (auto: Docker when an engine answers and the default image exists)').choices([...BACKENDS]))
    .option('--root <dir>', 'host root for pipes, storlets, logs and the store (config host_root)')
    .option('--config <file>', 'YAML or JSON config file')
    .addOption(new Option('--log-level <level>', 'gateway log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']));
}

/**
 * Defaults of the one-shot commands (invoke, demo, cache, scopes stop --all), which print for
 * people: their log says only what went wrong unless the file, SANDLET_LOG_LEVEL or --log-level
 * asks for more.
 */
export const ONE_SHOT_DEFAULTS = { log_level: 'warn' };

/**
 * Config from file, environment and flags. `defaults` are the command's own (below the file and
 * the environment); `overrides` are further flags, which win when set, as the common ones do.
 */
export function configFromFlags(flags: CommonFlags, defaults: Record<string, unknown> = {}, overrides: Record<string, unknown> = {}): SandletConfig {
  return loadConfig(flags.config, { ...overrides, backend: flags.backend, host_root: flags.root, log_level: flags.logLevel }, defaults);
}

/** `k=v` pairs from repeated flags (a malformed one is a usage error). */
export function collectPair(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `START-END`, inclusive, as in HTTP ranges. */
/** `--range START-END` is the byte range rule of every API (`bytes=START-END`), without the unit. */
export function parseRange(value: string): { start: number; end: number } {
  return parseByteRange(value, '--range', '');
}
