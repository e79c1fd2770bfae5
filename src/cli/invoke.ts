import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { createGateway } from '../gateway.js';
import { SandletError } from '../errors.js';
import type { InvocationInput } from '../invocation/invocation.js';
import { ONE_SHOT_DEFAULTS, addCommonOptions, collectList, collectPair, configFromFlags, parseRange, readyWithNotice, type CommonFlags } from './common.js';

interface InvokeFlags extends CommonFlags {
  scope: string;
  storlet: string;
  param?: Record<string, string>;
  meta?: Record<string, string>;
  range?: string;
  input: string;
  extra?: string[];
  output: string;
  timeout?: string;
  keep?: boolean;
}

/** A regular file is passed to the sandbox as its fd (zero copy); anything else is streamed. */
function openInput(spec: string, opened: number[]): InvocationInput {
  if (spec === '-') return fs.fstatSync(0).isFile() ? { fd: 0 } : process.stdin;
  let fd: number;
  try {
    fd = fs.openSync(spec, 'r');
  } catch (err) {
    throw new SandletError('EBADNAME', `cannot open input ${spec}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  opened.push(fd);
  if (fs.fstatSync(fd).isFile()) return { fd };
  return fs.createReadStream('', { fd, autoClose: false });
}

export function registerInvoke(program: Command): void {
  addCommonOptions(
    program
      .command('invoke')
      .description('run a storlet on an object: body to --output, output metadata as one JSON line on stderr')
      .requiredOption('--scope <scope>', 'scope (tenant) whose sandbox runs the storlet')
      .requiredOption('--storlet <name>', 'deployed storlet name, e.g. uppercase.mjs')
      .option('--param <k=v>', 'storlet parameter (repeatable)', collectPair)
      .option('--meta <k=v>', 'input object metadata (repeatable)', collectPair)
      .option('--range <START-END>', 'byte range for the storlet, inclusive')
      .option('--input <file|->', 'the object', '-')
      .option('--extra <file>', 'an extra input (repeatable)', collectList)
      .option('--output <file|->', 'where the output goes', '-')
      .option('--timeout <ms>', 'longest the storlet may stay silent')
      .option('--keep', 'leave the Docker sandbox this run started running, for later runs to adopt (default: stop it)'),
  ).action(async (flags: InvokeFlags) => {
    const config = configFromFlags(flags, ONE_SHOT_DEFAULTS);
    const gateway = createGateway(config);
    const opened: number[] = [];
    // What this run finds running (adopted from an earlier one) is not its to stop.
    let found = true;
    try {
      await readyWithNotice(gateway);
      found = gateway.findSandbox(flags.scope)?.state === 'running';
      const input = openInput(flags.input, opened);
      const extraInputs = (flags.extra ?? []).map((e) => openInput(e, opened));
      const timeoutMs = flags.timeout === undefined ? undefined : Number(flags.timeout);
      if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new SandletError('EBADNAME', `--timeout must be a positive number of ms`);
      const result = await gateway.invoke({
        scope: flags.scope,
        storlet: flags.storlet,
        params: flags.param ?? {},
        inputMetadata: flags.meta ?? {},
        input,
        extraInputs,
        ...(flags.range ? { range: parseRange(flags.range) } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      process.stderr.write(`${JSON.stringify(result.metadata)}\n`);
      const out = flags.output === '-' ? process.stdout : fs.createWriteStream(flags.output);
      await pipeline(result.body, out);
    } finally {
      for (const fd of opened) fs.closeSync(fd);
      // A one-shot run has nothing to reap its Docker sandbox later: stop it unless asked to keep it.
      if (!found && !flags.keep) await gateway.scopes().find((s) => s.scope === flags.scope)?.stop('one-shot invoke done').catch(() => {});
      await gateway.close();
    }
  });
}
