import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { AGENT_MAIN } from '../../src/package-root.js';

/** Starts a real agent factory process; resolves once it logged that it listens. */
export async function startFactory(pipesDir: string, nodeBinary = process.execPath): Promise<{ child: ChildProcess; pipe: string; stop: () => Promise<void> }> {
  const pipe = path.join(pipesDir, 'factory_pipe');
  const child = spawn(nodeBinary, [AGENT_MAIN, 'factory', '--pipe', pipe, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (c: Buffer) => {
      log += c.toString();
      if (log.includes('daemon factory listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`factory exited with ${code}: ${log}`)));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  return { child, pipe, stop };
}
