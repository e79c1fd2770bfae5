// A storlet daemon process as the factory sees it. Every daemon starts as a *spare*: a node
// process that has booted and waits, over its IPC channel, to be told which storlet to serve.
// The factory keeps one spare ready, so START_DAEMON costs a module load, not a process start.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const AGENT_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export interface Assignment {
  pipe: string;
  storletPath: string;
  storletName: string;
  poolSize: number;
  logLevel: string;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the process booted and waits for its assignment. */
  readonly spareReady: Promise<void>;
  private stderrTail = '';

  constructor(maxDatagramBytes: number | undefined) {
    // SANDLET_DAEMON_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp") reaches each daemon's node.
    const nodeArgs = (process.env.SANDLET_DAEMON_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const args = [...nodeArgs, AGENT_MAIN, 'daemon', '--spare'];
    if (maxDatagramBytes) args.push('--max-datagram-bytes', String(maxDatagramBytes));
    // The IPC channel carries the assignment and the ready/error message, and ends the daemon if
    // the factory dies.
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    this.exited = once(this.child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    this.spareReady = new Promise((resolve, reject) => {
      const onMessage = (msg: { type?: string }): void => {
        if (msg.type !== 'spare-ready') return;
        this.child.off('message', onMessage);
        resolve();
      };
      this.child.on('message', onMessage);
      void this.exited.then(({ code, signal }) => reject(new Error(`daemon process exited (${signal ?? `code ${code}`}) before it booted${this.lastError()}`)));
    });
    this.spareReady.catch(() => {});
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Hands the storlet over; resolves once the daemon listens on its pipe. */
  async assign(work: Assignment, timeoutMs: number): Promise<void> {
    await this.spareReady;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`daemon ${work.storletName} did not start within ${timeoutMs / 1000} s`)), timeoutMs);
      const onMessage = (msg: { type?: string; message?: string }): void => {
        if (msg.type === 'listening') finish(null);
        else if (msg.type === 'error') finish(new Error(msg.message ?? 'daemon failed to start'));
      };
      const onExit = (code: number | null, signal: string | null): void =>
        finish(new Error(`daemon ${work.storletName} exited (${signal ?? `code ${code}`}) before it was ready${this.lastError()}`));
      const finish = (err: Error | null): void => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send({ type: 'assign', ...work });
    });
  }

  /** The last error the process logged (pino JSON or plain text), for error messages. */
  lastError(): string {
    const lines = this.stderrTail.trim().split('\n').filter(Boolean);
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const rec = JSON.parse(lines[i]!) as { msg?: string; err?: string };
        if (rec.err || rec.msg) return `: ${rec.err ?? rec.msg}`;
      } catch {
        return `: ${lines[i]!.slice(0, 300)}`;
      }
    }
    return '';
  }
}
