import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SBusClient } from '../../src/sbus/client.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';
import { native } from '../../src/sbus/native.js';
import { readAll, startFactory, startTask } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { FIXTURES } from '../helpers/gateway.js';

let dir: string;
let cleanup: () => void;
let factory: Awaited<ReturnType<typeof startFactory>>;
let client: SBusClient;
beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  const storlets = path.join(dir, 'st');
  fs.mkdirSync(storlets);
  for (const f of ['misbehave.mjs', 'bad-syntax.mjs', 'no-invoke.mjs']) fs.copyFileSync(path.join(FIXTURES, f), path.join(storlets, f));
  // Loads in the daemon's first thread only: a second thread's load fails.
  fs.writeFileSync(
    path.join(storlets, 'once-only.mjs'),
    "import fs from 'node:fs';\nconst marker = new URL('./once-only.loaded', import.meta.url);\nif (fs.existsSync(marker)) throw new Error('loaded twice');\nfs.writeFileSync(marker, '');\n" +
      "export async function invoke({ inputs, output }) { output.setMetadata({}); for await (const c of inputs[0].stream) output.stream.write(c); output.stream.end(); }\n",
  );
  fs.writeFileSync(path.join(storlets, 'slow-load.mjs'), "await new Promise((r) => setTimeout(r, 1500));\nexport function invoke() {}\n");
  // Marks the end of its load: a thread stopped mid-load never gets there.
  fs.writeFileSync(
    path.join(storlets, 'slow-load-2.mjs'),
    "import fs from 'node:fs';\nawait new Promise((r) => setTimeout(r, 1500));\nfs.writeFileSync(new URL('./slow-load-2.loaded', import.meta.url), '');\nexport function invoke() {}\n",
  );
  factory = await startFactory(dir);
  client = new SBusClient(factory.pipe);
});
afterAll(async () => {
  await factory.stop();
  cleanup();
});

const start = (name: string, poolSize = 2) =>
  client.startDaemon({ daemon_language: 'js', storlet_path: path.join(dir, 'st'), storlet_name: name, uds_path: path.join(dir, name), log_level: 'info', pool_size: poolSize }, 20_000);

/** EXECUTE on a daemon with fresh pipes; returns the task id and readers for output and status. */
async function execute(pipe: string, params: Record<string, string>, input: string) {
  const [inR, inW] = native.pipe();
  const [outR, outW] = native.pipe();
  const [mdR, mdW] = native.pipe();
  const [stR, stW] = native.pipe();
  const reply = await new SBusClient(pipe).execute(params, [
    { fd: inR, type: 'SBUS_FD_INPUT_OBJECT' },
    { fd: outW, type: 'SBUS_FD_OUTPUT_OBJECT' },
    { fd: mdW, type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
    { fd: stW, type: 'SANDLET_FD_TASK_STATUS' },
  ]);
  for (const fd of [inR, outW, mdW, stW]) native.close(fd);
  new net.Socket({ fd: inW, readable: false, writable: true }).on('error', () => {}).end(input);
  const read = (fd: number) => readPipeToEnd(fd, { maxBytes: 1 << 20, timeoutMs: 10_000, what: 'pipe' }).then(String);
  return { reply, output: read(outR), metadata: read(mdR), status: read(stR) };
}

describe('daemon factory and storlet daemon', () => {
  it('keeps answering while a daemon is starting', async () => {
    const starting = start('slow-load.mjs');
    // The slow module is still loading: PING and DAEMON_STATUS answer meanwhile.
    expect((await client.ping()).status).toBe(true);
    expect((await client.daemonStatus('misbehave.mjs')).status).toBe(false);
    expect(await starting).toEqual({ status: true, message: 'daemon slow-load.mjs started' });
  });

  it('STOP_DAEMON stops a daemon still loading its module, whose START_DAEMON then fails', async () => {
    const starting = start('slow-load-2.mjs');
    // Datagrams reach the factory in order: the stop finds the daemon loading.
    expect(await client.stopDaemon('slow-load-2.mjs')).toEqual({ status: true, message: 'daemon slow-load-2.mjs stopped' });
    // Its thread went once the load was over, not in the middle of it (where a file the module
    // loader has open would stay open in the agent for good).
    expect(fs.existsSync(path.join(dir, 'st', 'slow-load-2.loaded'))).toBe(true);
    expect(await starting).toEqual({ status: false, message: 'daemon was stopped while it started' });
    expect((await client.daemonStatus('slow-load-2.mjs')).status).toBe(false);
    expect(fs.existsSync(path.join(dir, 'slow-load-2.mjs'))).toBe(false);
  });

  it('fails START_DAEMON with the load error', async () => {
    expect((await start('bad-syntax.mjs')).message).toMatch(/^cannot load storlet .*bad-syntax\.mjs: /);
    expect((await start('no-invoke.mjs')).message).toMatch(/storlet module has no invoke/);
    expect((await client.daemonStatus('bad-syntax.mjs')).status).toBe(false);
  });

  it('CANCEL stops a busy loop while other tasks go on; the daemon lives', async () => {
    expect((await start('misbehave.mjs', 3)).status).toBe(true);
    const pipe = path.join(dir, 'misbehave.mjs');
    const busy = await execute(pipe, { mode: 'busy-loop' }, 'x');
    expect(busy.reply.status).toBe(true);
    const other = await execute(pipe, {}, 'still flowing');
    const cancel = await new SBusClient(pipe).cancel(busy.reply.task_id!);
    expect(cancel).toEqual({ status: true, message: 'task cancelled' });
    // The busy task's pipes reach EOF: its thread is gone.
    expect(await busy.output).toBe('');
    expect(await busy.metadata).toBe('');
    expect(await other.output).toBe('still flowing');
    expect(JSON.parse(await other.status)).toEqual({ status: true, message: 'done' });
    expect((await new SBusClient(pipe).ping()).status).toBe(true);
    const after = await execute(pipe, {}, 'next');
    expect(await after.output).toBe('next');
    expect(await new SBusClient(pipe).cancel('no-such-task')).toEqual({ status: false, message: 'no running task "no-such-task"' });
  });

  it('metadata reaches its reader, one JSON line and EOF, as the storlet sets it, while its task goes on', async () => {
    await start('misbehave.mjs', 3); // already running when the test above ran
    const t = await startTask(path.join(dir, 'misbehave.mjs'), { mode: 'end-then-wait' });
    // The storlet returns only once its input ends: this EOF comes from its thread, not its daemon.
    expect(await readAll(t.mdR)).toBe('{"ended":"yes"}\n');
    const [output, status] = [readAll(t.outR), readAll(t.stR)];
    t.input.end('now finish');
    expect(await output).toBe('ended early');
    expect(await status).toBe('{"status":true,"message":"done"}\n');
  });

  it("reports a thread that died with no error of its own as 'died', so the gateway may ask the sandbox why", async () => {
    const t = await execute(path.join(dir, 'misbehave.mjs'), { mode: 'exit-thread' }, 'x');
    expect(JSON.parse(await t.status)).toEqual({ status: false, message: 'storlet worker died before finishing the task', died: true });
    const after = await execute(path.join(dir, 'misbehave.mjs'), {}, 'next');
    expect(await after.output).toBe('next');
  });

  it('a task whose thread cannot load the module fails with the load error, not as a death', async () => {
    expect((await start('once-only.mjs', 2)).status).toBe(true);
    const pipe = path.join(dir, 'once-only.mjs');
    // The first task holds the loaded thread (its input stays open); the second needs a new one.
    const [inR, inW] = native.pipe();
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const [stR, stW] = native.pipe();
    const held = await new SBusClient(pipe).execute({}, [
      { fd: inR, type: 'SBUS_FD_INPUT_OBJECT' },
      { fd: outW, type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: mdW, type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: stW, type: 'SANDLET_FD_TASK_STATUS' },
    ]);
    for (const fd of [inR, outW, mdW, stW]) native.close(fd);
    expect(held.status).toBe(true);
    const second = await execute(pipe, {}, 'x');
    const status = JSON.parse(await second.status) as Record<string, unknown>;
    expect(status).toMatchObject({ status: false, message: expect.stringMatching(/^storlet task could not run: cannot load storlet .*once-only\.mjs: loaded twice$/) });
    expect(status.died).toBeUndefined();
    native.close(inW);
    expect(JSON.parse(await readAll(stR))).toEqual({ status: true, message: 'done' });
    for (const fd of [outR, mdR]) native.close(fd);
  });

  it('escapes what a storlet logs: one line per call, no control character raw', async () => {
    const file = path.join(dir, 'forge.log');
    const logFd = fs.openSync(file, 'a');
    const t = await startTask(path.join(dir, 'misbehave.mjs'), { mode: 'log-forge' }, { logFd });
    fs.closeSync(logFd);
    t.input.end();
    expect(JSON.parse(await readAll(t.stR))).toEqual({ status: true, message: 'done' });
    for (const fd of [t.outR, t.mdR]) fs.closeSync(fd);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toMatch(/^\S+ WARN real\\r2026-01-01T00:00:00\.000Z INFO forged\\n2026-01-01T00:00:00\.000Z ERROR fake\\x1b\[2J\\u2028end\n$/);
  });

  it('STOP_DAEMONS stops them all and HALT ends the factory', async () => {
    expect((await client.stopDaemons()).status).toBe(true);
    expect((await client.daemonStatus('misbehave.mjs')).status).toBe(false);
    const exited = new Promise((r) => factory.child.once('exit', r));
    expect(await client.halt()).toEqual({ status: true, message: 'factory is stopping' });
    await exited;
    expect(fs.existsSync(factory.pipe)).toBe(false);
  });
});
