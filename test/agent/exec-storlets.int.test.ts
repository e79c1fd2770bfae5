// Executable storlets on the real agent (built dist/): stdin/stdout/stderr, fd 3 metadata,
// params and metadata in the environment, extra inputs, exit codes, signals and cancels.
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { SBusClient } from '../../src/sbus/client.js';
import { native } from '../../src/sbus/native.js';
import { FdType } from '../../src/sbus/protocol.js';
import { eventually, processUsage, readAll, settled, startFactory, startTask } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { childrenOf } from '../helpers/proc.js';

let dir: string;
let cleanup: () => void;
let factory: Awaited<ReturnType<typeof startFactory>>;
let client: SBusClient;
const st = () => path.join(dir, 'st');

const SCRIPTS: Record<string, string> = {
  'meta3.sh': `#!/bin/sh\necho '{"made-by": "meta3", "n": 1}' >&3\ncat\n`,
  'env.sh': '#!/bin/sh\nprintf "%s|%s|%s" "$STORLET_PARAM_GREETING" "$STORLET_PARAM_DASHED_KEY" "$STORLET_INPUT_METADATA"\n',
  'extra.sh': '#!/bin/sh\ncat\nprintf "|%s|" "$STORLET_EXTRA_INPUT_FDS"\ncat <&4\nprintf "|%s" "$STORLET_EXTRA_INPUT_METADATA"\n',
  'fail-early.sh': '#!/bin/sh\necho "first complaint" >&2\necho "the real reason" >&2\nexit 3\n',
  'fail-late.sh': '#!/bin/sh\necho partial\nexit 2\n',
  'signal.sh': '#!/bin/sh\nkill -9 $$\n',
  'stubborn.sh': "#!/bin/sh\ntrap '' TERM\necho $$ >&2\nsleep 1000 &\necho $! >&2\nwait\n",
  'leaves-child.sh': '#!/bin/sh\nsleep 1000 &\necho "{\\"child\\": \\"$!\\"}" >&3\necho done\n',
  'bad-meta.sh': "#!/bin/sh\necho 'not json' >&3\necho out\n",
  'bad-meta-silent.sh': "#!/bin/sh\necho '[1]' >&3\n",
  'meta-silent.sh': `#!/bin/sh\necho '{"empty": "yes"}' >&3\n`,
  'big.sh': '#!/bin/sh\nhead -c 3000000 /dev/zero\n',
  'endless.sh': '#!/bin/sh\necho $$ >&2\nexec yes\n',
};

beforeAll(async () => {
  ({ dir, cleanup } = tempDir());
  fs.mkdirSync(st());
  fs.copyFileSync(path.join(SAMPLES_DIR, 'gzip.sh'), path.join(st(), 'gzip.sh'));
  fs.chmodSync(path.join(st(), 'gzip.sh'), 0o555);
  for (const [name, text] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(st(), name), text, { mode: 0o555 });
  fs.writeFileSync(path.join(st(), 'not-executable'), '#!/bin/sh\ncat\n', { mode: 0o444 });
  factory = await startFactory(dir);
  client = new SBusClient(factory.pipe, { timeoutMs: 20_000 });
  for (const name of ['gzip.sh', ...Object.keys(SCRIPTS)]) expect((await start(name)).status).toBe(true);
});
afterAll(async () => {
  await factory.stop();
  cleanup();
});

const start = (name: string) =>
  client.startDaemon({ daemon_language: 'exec', storlet_path: st(), storlet_name: name, uds_path: path.join(dir, name), log_level: 'info', pool_size: 2 }, 20_000);

async function run(name: string, params: Record<string, string>, input: string | Buffer, opts: { inputMetadata?: Record<string, string>; logFd?: number } = {}) {
  const t = await startTask(path.join(dir, name), params, opts);
  expect(t.reply.status).toBe(true);
  t.input.end(input);
  const [output, metadata, status] = await Promise.all([
    readAll(t.outR).then((s) => Buffer.from(s, 'latin1')),
    readAll(t.mdR),
    readAll(t.stR),
  ]);
  return { output, metadata, status: JSON.parse(status) as { status: boolean; message: string } };
}

describe('exec storlets on the agent', () => {
  it('runs the one-line gzip sample; the input metadata passes through less size and checksum', async () => {
    const text = 'compress me '.repeat(1000);
    const t = await startTask(path.join(dir, 'gzip.sh'), {}, { inputMetadata: { color: 'red', 'Content-Length': '12000', etag: 'abc' } });
    t.input.end(text);
    const out: Buffer[] = [];
    const { createReadStream } = await import('node:fs');
    await new Promise<void>((resolve, reject) => createReadStream('', { fd: t.outR }).on('data', (c) => out.push(c as Buffer)).on('end', resolve).on('error', reject));
    expect(gunzipSync(Buffer.concat(out)).toString()).toBe(text);
    expect(JSON.parse(await readAll(t.mdR))).toEqual({ color: 'red' });
    expect(JSON.parse(await readAll(t.stR))).toEqual({ status: true, message: 'done' });
  });

  it('takes the output metadata from fd 3', async () => {
    const r = await run('meta3.sh', {}, 'body', { inputMetadata: { color: 'red' } });
    expect(JSON.parse(r.metadata)).toEqual({ 'made-by': 'meta3', n: '1' });
    expect(r.output.toString()).toBe('body');
    const bad = await run('bad-meta.sh', {}, '');
    expect(bad.metadata).toBe('');
    expect(bad.status.status).toBe(false);
    expect(bad.status.message).toMatch(/metadata on fd 3 is not a JSON object/);
    // No output at all: the metadata is still fd 3's, or a failure when it is no object.
    const silent = await run('meta-silent.sh', {}, '');
    expect(silent).toEqual({ output: Buffer.alloc(0), metadata: '{"empty":"yes"}', status: { status: true, message: 'done' } });
    const badSilent = await run('bad-meta-silent.sh', {}, '');
    expect(badSilent.metadata).toBe('');
    expect(badSilent.status).toEqual({ status: false, message: 'the metadata on fd 3 is not a JSON object (not an object)' });
  });

  it('passes params and input metadata in the environment, extra inputs on fd 4 and up', async () => {
    const r = await run('env.sh', { greeting: 'hi there', 'dashed-key': 'x' }, '', { inputMetadata: { a: 'b' } });
    expect(r.output.toString()).toBe('hi there|x|{"a":"b"}');
    const [exR, exW] = native.pipe();
    fs.writeSync(exW, 'extra bytes');
    native.close(exW);
    const [inR, inW] = native.pipe();
    fs.writeSync(inW, 'main ');
    native.close(inW);
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const reply = await new SBusClient(path.join(dir, 'extra.sh')).execute({}, [
      { fd: inR, type: FdType.INPUT_OBJECT },
      { fd: outW, type: FdType.OUTPUT_OBJECT },
      { fd: mdW, type: FdType.OUTPUT_OBJECT_METADATA },
      { fd: exR, type: FdType.INPUT_OBJECT, storage: { extra: 'yes' } },
    ]);
    for (const fd of [inR, outW, mdW, exR]) native.close(fd);
    expect(reply.status).toBe(true);
    await readAll(mdR);
    expect(await readAll(outR)).toBe('main |4|extra bytes|[{"extra":"yes"}]');
  });

  it('fails with the last stderr line before output; after output the stream errors; stderr is the log', async () => {
    const log = path.join(dir, 'exec.log');
    const logFd = fs.openSync(log, 'a');
    const early = await run('fail-early.sh', {}, '', { logFd });
    fs.closeSync(logFd);
    expect(early.metadata).toBe('');
    expect(early.status).toEqual({ status: false, message: 'fail-early.sh exited with code 3: the real reason' });
    expect(fs.readFileSync(log, 'utf8')).toMatch(/INFO first complaint\n.*INFO the real reason\n.*ERROR storlet failed: fail-early.sh exited with code 3/);
    const late = await run('fail-late.sh', {}, '');
    expect(late.metadata).toBe('{}');
    expect(late.status).toEqual({ status: false, message: 'fail-late.sh exited with code 2' });
    const killed = await run('signal.sh', {}, '');
    expect(killed.status).toEqual({ status: false, message: 'signal.sh was killed by SIGKILL' });
  });

  it('relays an output larger than any pipe', async () => {
    const r = await run('big.sh', {}, '');
    expect(r.output.length).toBe(3_000_000);
    expect(r.status.status).toBe(true);
  });

  it('kills the program when the output reader goes away mid-stream', async () => {
    const log = path.join(dir, 'endless.log');
    const logFd = fs.openSync(log, 'a');
    const t = await startTask(path.join(dir, 'endless.sh'), {}, { logFd });
    fs.closeSync(logFd);
    t.input.end('');
    const pid = await eventually(() => {
      const found = fs.readFileSync(log, 'utf8').match(/INFO (\d+)/);
      expect(found).not.toBeNull();
      return Number(found![1]);
    });
    // Past the first chunk (at most 1 MiB, relayed by the agent itself): the rest comes by the pump.
    const buf = Buffer.alloc(256 * 1024);
    let got = 0;
    while (got < 4 << 20) got += fs.readSync(t.outR, buf);
    native.close(t.outR);
    // Killed by the agent, or by the SIGPIPE of its stdout's reader going first: either way, stopped.
    const status = JSON.parse(await readAll(t.stR)) as { status: boolean; message: string };
    expect(status.status).toBe(false);
    expect(status.message).toMatch(/^endless\.sh was killed by SIG(KILL|PIPE)/);
    await eventually(() => expect(alive(pid)).toBe(false));
    native.close(t.mdR);
  });

  it('CANCEL kills the whole process group, also a process that ignores SIGTERM', async () => {
    const log = path.join(dir, 'stubborn.log');
    const logFd = fs.openSync(log, 'a');
    const t = await startTask(path.join(dir, 'stubborn.sh'), {}, { logFd });
    fs.closeSync(logFd);
    const pids = await eventually(() => {
      const found = fs.readFileSync(log, 'utf8').match(/INFO (\d+)/g);
      expect(found?.length).toBe(2);
      return found!.map((l) => Number(l.slice(5)));
    });
    expect(await t.cancel()).toEqual({ status: true, message: 'task cancelled' });
    expect(JSON.parse(await readAll(t.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
    t.input.destroy();
    for (const fd of [t.outR, t.mdR]) native.close(fd);
    for (const pid of pids) await eventually(() => expect(alive(pid)).toBe(false));
  });

  it('kills what the program left running when it exits', async () => {
    const r = await run('leaves-child.sh', {}, '');
    expect(r.status).toEqual({ status: true, message: 'done' });
    await eventually(() => expect(alive(Number(JSON.parse(r.metadata).child))).toBe(false));
  });

  it('fails START_DAEMON for a file that is not executable', async () => {
    const reply = await start('not-executable');
    expect(reply.status).toBe(false);
    expect(reply.message).toMatch(/not an executable file/);
  });

  it('STOP_DAEMON ends running and queued tasks, with their processes', async () => {
    const tasks = await Promise.all([1, 2, 3].map(() => startTask(path.join(dir, 'stubborn.sh'), {})));
    expect(tasks.every((t) => t.reply.status)).toBe(true);
    const children = () => childrenOf(factory.child.pid!);
    await eventually(() => expect(children().length).toBeGreaterThanOrEqual(2)); // the pool of 2 runs
    expect(await client.stopDaemon('stubborn.sh')).toEqual({ status: true, message: 'daemon stubborn.sh stopped' });
    for (const t of tasks) {
      expect(JSON.parse(await readAll(t.stR))).toEqual({ status: false, message: 'storlet task was cancelled' });
      t.input.destroy();
      for (const fd of [t.outR, t.mdR]) native.close(fd);
    }
    await eventually(() => expect(children()).toEqual([]));
  });

  it('keeps fds, processes and threads flat over many invocations', async () => {
    for (let i = 0; i < 3; i++) await run('meta3.sh', {}, 'warm');
    const before = await settled(() => processUsage(factory.child.pid!));
    for (let i = 0; i < 60; i++) await run(i % 6 === 0 ? 'fail-early.sh' : 'meta3.sh', {}, `n${i}`);
    await eventually(() => expect(processUsage(factory.child.pid!)).toEqual(before));
  });
});

function alive(pid: number): boolean {
  try {
    return !/State:\s+Z/.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
