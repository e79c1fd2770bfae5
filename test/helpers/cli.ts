// The real `sandlet` CLI (bin/sandlet.js on dist/), run as a child process.
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-root.js';

const run = promisify(execFile);
export const BIN = path.join(PACKAGE_ROOT, 'bin', 'sandlet.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function sandlet(args: string[], input?: string, env: Record<string, string> = {}): Promise<CliResult> {
  // A hung CLI fails its test with what it printed (code null) instead of hanging it.
  const child = run(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 100_000, killSignal: 'SIGKILL' });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string; killed?: boolean };
    return { code: e.killed ? -1 : e.code, stdout: e.stdout, stderr: e.stderr + (e.killed ? `\n[killed after 100 s: sandlet ${args.join(' ')}]` : '') };
  }
}

/**
 * Runs the CLI with stdout piped into a reader that closes the pipe after the first line, as
 * `| head -1` does; `afterClose` runs then (e.g. to make a followed log write again).
 */
export function firstLineThenClose(
  args: string[],
  opts: { env?: Record<string, string>; afterClose?: () => void } = {},
): Promise<{ code: number | null; signal: string | null; firstLine: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let out = '';
    let stderr = '';
    let firstLine = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl >= 0 && !firstLine) {
        firstLine = out.slice(0, nl);
        child.stdout.destroy();
        opts.afterClose?.();
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, firstLine, stderr }));
  });
}
