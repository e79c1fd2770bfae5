// Executable storlets: any program (a script with a shebang or a binary) run once per task, with
// stdin = the input object, stdout = the output object, stderr = the invocation log, params in
// STORLET_PARAM_<KEY>, the input metadata as JSON in STORLET_INPUT_METADATA, extra inputs on fds
// 4 and up (STORLET_EXTRA_INPUT_FDS, STORLET_EXTRA_INPUT_METADATA), and fd 3 for the output
// metadata, which the program may write as a JSON object before its first output byte.
//
// The program's stdout reaches the output through this process: its metadata must be sent before
// the first output byte (the gateway reads nothing else until then), and only here is that first
// byte seen. The rest is moved by the addon's pump. Each task runs in a process group of its own;
// a cancel, a timeout and the task's end kill the whole group.
import { spawn, type StdioOptions } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { closeQuietly, native } from '../sbus/native.js';
import { ended, writableFromFd } from '../sbus/fd-io.js';
import { makeStorletLogger } from './storlet-log.js';
import type { RuntimeOutcome, RuntimeTask, StorletRuntime } from './storlet-runtime.js';

/** Input metadata that describes the input's bytes, which a transform changes: not passed through. */
const BYTE_DESCRIBING = /^(content-length|content-md5|etag|size|length|md5|sha256|checksum|x-object-meta-checksum)$/i;
/** The most metadata a program may write on fd 3. */
const MAX_METADATA_BYTES = 64 * 1024;
/** The program's stdout pipe buffer and the relay's read size. */
const STDOUT_PIPE_BYTES = 1 << 20;
/** The last stderr line kept for an error message, at most. */
const MAX_LAST_LINE = 500;

/** STORLET_PARAM_<KEY>: the key upper-cased, anything but letters, digits and _ as _. */
export function paramEnvName(key: string): string {
  return `STORLET_PARAM_${key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

/** The output metadata when the program wrote none: the input's, less what describes its bytes. */
export function passThroughMetadata(input: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(input).filter(([k]) => !BYTE_DESCRIBING.test(k)));
}

export class ExecRuntime implements StorletRuntime {
  private readonly program: string;
  private readonly running = new Map<string, () => void>();

  constructor(
    private readonly storletDir: string,
    main: string,
    private readonly log: Logger,
  ) {
    if (main.includes('/') || main.startsWith('.')) throw new Error(`exec storlet main ${JSON.stringify(main)} must be a file in the storlet dir`);
    this.program = path.join(storletDir, main);
  }

  async start(): Promise<void> {
    await access(this.program, fsConstants.X_OK).catch(() => {
      throw new Error(`storlet ${path.basename(this.program)} is not an executable file in ${this.storletDir}`);
    });
  }

  run(task: RuntimeTask): Promise<RuntimeOutcome> {
    return new Promise((resolve) => {
      const own = [task.output, task.metadata, ...(task.logger ? [task.logger.fd] : []), ...task.inputs.map((i) => i.fd)];
      const log = makeStorletLogger(task.logger?.fd, task.logger?.maxBytes ?? 1024 * 1024);
      const [input, ...extras] = task.inputs;
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        LANG: 'C.UTF-8',
        STORLET_EXECUTION_PATH: this.storletDir,
        STORLET_INPUT_METADATA: JSON.stringify(input!.metadata),
        STORLET_EXTRA_INPUT_FDS: extras.map((_, n) => String(4 + n)).join(','),
        STORLET_EXTRA_INPUT_METADATA: JSON.stringify(extras.map((e) => e.metadata)),
        ...(input!.range ? { STORLET_RANGE_START: String(input!.range.start), STORLET_RANGE_END: String(input!.range.end) } : {}),
      };
      for (const [k, v] of Object.entries(task.params)) env[paramEnvName(k)] = v;
      // stdout: a plain pipe with a large buffer, read by the addon in large chunks (a libuv
      // socketpair, Node's 'pipe', relays at a fraction of the speed).
      let stdoutR: number;
      let stdoutW: number;
      try {
        [stdoutR, stdoutW] = native.pipe(STDOUT_PIPE_BYTES);
      } catch (err) {
        closeQuietly(own);
        resolve({ ok: false, message: `cannot make the output pipe: ${(err as Error).message}` });
        return;
      }
      const stdio: StdioOptions = [input!.fd, stdoutW, 'pipe', 'pipe', ...extras.map((e) => e.fd)];
      let child;
      try {
        child = spawn(this.program, [], { cwd: this.storletDir, env, stdio, detached: true });
      } catch (err) {
        closeQuietly([...own, stdoutR, stdoutW]);
        resolve({ ok: false, message: `cannot run ${path.basename(this.program)}: ${(err as Error).message}` });
        return;
      }
      // The child has its copies (or failed to start): the input fds are done with here.
      closeQuietly([input!.fd, ...extras.map((e) => e.fd), stdoutW]);
      const metaIn = child.stdio[3] as Readable;
      const out = writableFromFd(task.output, true);
      let metadataFd: number | undefined = task.metadata;
      let metaBytes: Buffer[] = [];
      let metaSize = 0;
      let failure: string | undefined;
      let lastLine = '';
      let began = false;
      let cancelled = false;

      const killGroup = (): void => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      };
      this.running.set(task.id, () => {
        cancelled = true;
        killGroup();
      });

      metaIn.on('data', (chunk: Buffer) => {
        metaSize += chunk.length;
        if (metaSize > MAX_METADATA_BYTES) failure ??= `wrote more than ${MAX_METADATA_BYTES} bytes of metadata on fd 3`;
        else metaBytes.push(chunk);
      });
      metaIn.on('error', () => {});

      // Sends the output metadata once: what the program wrote on fd 3, or the input's.
      const sendMetadata = (): boolean => {
        if (metadataFd === undefined) return true;
        let record: Record<string, string> = passThroughMetadata(input!.metadata);
        const text = Buffer.concat(metaBytes).toString('utf8').trim();
        metaBytes = [];
        if (text) {
          try {
            const parsed = JSON.parse(text) as unknown;
            if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
            record = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
          } catch (err) {
            failure ??= `the metadata on fd 3 is not a JSON object (${(err as Error).message})`;
            return false;
          }
        }
        if (failure) return false;
        const fd = metadataFd;
        metadataFd = undefined;
        writeSmall(fd, Buffer.from(JSON.stringify(record)));
        return true;
      };

      // The relay: the program's stdout to the output. At the first output byte the metadata is
      // settled (what fd 3 got in the same poll round is read first: setImmediate runs after
      // every event of that round); once that byte is out, the addon's pump moves the rest, with
      // no JS per chunk (the relay through this process cost the agent about as much CPU as the
      // program itself).
      let stdoutDone: () => void = () => {};
      const stdoutEnded = new Promise<void>((r) => (stdoutDone = r));
      let pumpId: number | undefined;
      const stopRelay = (): void => {
        if (pumpId !== undefined) native.cancelPump(pumpId);
        pumpId = undefined;
        native.closeReader(reader);
        stdoutDone();
      };
      const relay = (chunk: Buffer): void => {
        if (!out.write(chunk)) {
          native.pauseReader(reader);
          out.once('drain', () => native.resumeReader(reader));
        }
      };
      const handOff = (): void => {
        try {
          pumpId = native.pump(stdoutR, task.output, -1, 0, (err) => {
            pumpId = undefined;
            if (err !== null) killGroup(); // the output's reader went (EPIPE): nothing more can arrive
            stdoutDone();
          });
        } catch {
          native.resumeReader(reader); // no fd for the pump's dups: the relay goes on
          return;
        }
        native.closeReader(reader); // the pump reads from its own dup
      };
      const reader = native.openReader(stdoutR, STDOUT_PIPE_BYTES, (err, chunk) => {
        if (!chunk) return stdoutDone();
        if (began) return relay(chunk);
        began = true;
        native.pauseReader(reader);
        setImmediate(() => {
          if (!sendMetadata()) {
            killGroup();
            stopRelay();
            return;
          }
          // Written (or failed: see out's 'error') before the pump may write after it.
          out.write(chunk, (writeErr) => {
            if (writeErr) return; // out's 'error' stops the relay
            if (cancelled) stopRelay();
            else handOff();
          });
        });
      });
      native.resumeReader(reader);
      // The reader went: nothing the program writes can arrive, so it goes.
      out.on('error', () => {
        killGroup();
        stopRelay();
      });

      child.stderr!.setEncoding('utf8');
      let partial = '';
      child.stderr!.on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        if (partial.length > 64 * 1024) {
          lines.push(partial);
          partial = '';
        }
        for (const line of lines) {
          log.info(line);
          if (line.trim()) lastLine = line.trim().slice(0, MAX_LAST_LINE);
        }
      });

      child.once('error', (err) => {
        failure ??= `cannot run ${path.basename(this.program)}: ${err.message}`;
      });
      // Done once the program exited, its stderr and fd 3 closed ('close') and its stdout ended
      // (what it left running, which could hold them open, is killed at its exit).
      child.once('exit', () => killGroup());
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('close', (code, signal) => r([code, signal])));
      void Promise.all([exited, stdoutEnded]).then(([[code, signal]]) => {
        if (partial.trim()) {
          log.info(partial);
          lastLine = partial.trim().slice(0, MAX_LAST_LINE);
        }
        this.running.delete(task.id);
        // A program that wrote no output still has its metadata (fd 3's, or the input's) sent.
        if (!cancelled && !signal && code === 0 && !began) sendMetadata();
        let outcome: RuntimeOutcome;
        if (cancelled) outcome = { ok: false, message: 'storlet task was cancelled' };
        else if (failure) outcome = { ok: false, message: failure };
        else if (signal) outcome = { ok: false, message: `${path.basename(this.program)} was killed by ${signal}${lastLine ? `: ${lastLine}` : ''}` };
        else if (code !== 0) outcome = { ok: false, message: `${path.basename(this.program)} exited with code ${code}${lastLine ? `: ${lastLine}` : ''}` };
        else outcome = { ok: true, message: 'done' };
        if (!outcome.ok) log.error(`storlet failed: ${outcome.message}`);
        if (metadataFd !== undefined) closeQuietly([metadataFd]);
        if (task.logger) closeQuietly([task.logger.fd]);
        if (!outcome.ok) {
          out.destroy();
          resolve(outcome);
          return;
        }
        const done = (): void => {
          out.destroy();
          resolve(outcome);
        };
        if (!out.writableEnded) out.end();
        ended(out).then(done, done);
      });
    });
  }

  cancel(taskId: string): void {
    this.running.get(taskId)?.();
  }

  async stop(): Promise<void> {
    for (const kill of this.running.values()) kill();
  }
}

/** Writes a small message to a pipe and closes it (the metadata fits the pipe: it is bounded). */
function writeSmall(fd: number, bytes: Buffer): void {
  const out = writableFromFd(fd, true);
  out.on('error', () => {});
  out.end(bytes, () => out.destroy());
}
