// A client that speaks only Storlets' JSON datagrams, with its own pipes and fds, as OpenStack
// Storlets' gateway does, drives sandlet's agent: PING, START_DAEMON, EXECUTE, read output.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/sbus/native.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { eventually, startFactory } from '../helpers/agent.js';
import { tempDir } from '../helpers/fs.js';
import { int32, libsbusDatagram, pythonJson, storletsFdMetadata } from '../helpers/wire.js';


type Reply = { status: boolean; message: string; task_id?: string };
type ExtraFd = { fd: number; type: string; storlets?: Record<string, string>; storage?: Record<string, string> };

/**
 * A Storlets request: JSON metadata list (omitted with no fds) and JSON params, after 3 ints.
 * `exact`: compact JSON, the body exactly as long as announced. `libsbus`: as Storlets' Python
 * gateway sends it through its C libsbus, json.dumps text and one unwritten byte after the
 * announced lengths. The reply is read to EOF from the service-out pipe.
 */
async function storletsRequest(
  sockPath: string,
  command: string,
  params?: Record<string, unknown>,
  extra: ExtraFd[] = [],
  taskId?: string,
  layout: 'exact' | 'libsbus' = 'exact',
): Promise<Reply> {
  const [r, w] = native.pipe();
  const fds: ExtraFd[] = [{ fd: w, type: 'SBUS_FD_SERVICE_OUT' }, ...extra];
  const cmd: Record<string, unknown> = { command };
  if (params) cmd.params = params;
  if (taskId) cmd.task_id = taskId;
  const fdMetadata = fds.map((f) => storletsFdMetadata(f.type, f.storlets, f.storage));
  let body: Buffer;
  if (layout === 'libsbus') {
    body = libsbusDatagram(fds.length, pythonJson(fdMetadata), pythonJson(cmd));
  } else {
    const metadata = Buffer.from(JSON.stringify(fdMetadata));
    const p = Buffer.from(JSON.stringify(cmd));
    body = Buffer.concat([int32(fds.length), int32(metadata.length), int32(p.length), metadata, p]);
  }
  native.send(sockPath, body, fds.map((f) => f.fd));
  native.close(w);
  const raw = await readPipeToEnd(r, { maxBytes: 65536, timeoutMs: 20000, what: 'reply' });
  expect(raw[0]).toBe(0x7b); // answered in JSON, the request's codec
  return JSON.parse(raw.toString()) as Reply;
}

// The agent must run on Debian's Node 18 (the engine image's) as well as on the host's Node.
// `.ci/run` sets SANDLET_NODE18 from scripts/debian-node18.sh; in CI its absence is a failure.
const node18 = process.env.SANDLET_NODE18;
const runtimes: [string, string | undefined][] = [
  [`host node ${process.version}`, process.execPath],
  ['Debian node 18', node18],
];

for (const [label, nodeBinary] of runtimes) describe.skipIf(!nodeBinary && !process.env.CI)(`Storlets JSON client against sandlet agent on ${label}`, () => {
  let dir: string;
  let cleanup: () => void;
  let factory: Awaited<ReturnType<typeof startFactory>>;
  beforeAll(async () => {
    if (!nodeBinary) throw new Error('SANDLET_NODE18 is not set: run scripts/debian-node18.sh and export its output');
    ({ dir, cleanup } = tempDir());
    fs.mkdirSync(path.join(dir, 'storlet'));
    fs.copyFileSync(path.join(SAMPLES_DIR, 'uppercase.mjs'), path.join(dir, 'storlet', 'uppercase.mjs'));
    fs.copyFileSync(path.join(SAMPLES_DIR, 'uppercase.py'), path.join(dir, 'storlet', 'uppercase.py'));
    factory = await startFactory(dir, nodeBinary);
  });
  afterAll(async () => {
    await factory?.stop();
    cleanup?.();
  });

  it('pings, starts a daemon, executes and reads output and metadata', async () => {
    const pong = await storletsRequest(factory.pipe, 'SBUS_CMD_PING');
    expect(pong.status).toBe(true);
    expect((pong as unknown as { version: { agent: string; protocol: number } }).version.protocol).toBe(1);
    if (nodeBinary !== process.execPath) {
      expect(fs.readFileSync(`/proc/${factory.child.pid}/cmdline`, 'utf8')).toContain('root/usr/bin/node');
    }

    const uds = path.join(dir, 'uppercase.mjs');
    const started = await storletsRequest(factory.pipe, 'SBUS_CMD_START_DAEMON', {
      daemon_language: 'js', storlet_path: path.join(dir, 'storlet'), storlet_name: 'uppercase.mjs',
      uds_path: uds, log_level: 'DEBUG', pool_size: 3,
    });
    expect(started).toEqual({ status: true, message: 'daemon uppercase.mjs started' });
    expect((await storletsRequest(factory.pipe, 'SBUS_CMD_DAEMON_STATUS', { storlet_name: 'uppercase.mjs' })).status).toBe(true);

    const [inR, inW] = native.pipe();
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const logPath = path.join(dir, 'invoke.log');
    const logFd = fs.openSync(logPath, 'a');
    const reply = await storletsRequest(uds, 'SBUS_CMD_EXECUTE', { color: 'red' }, [
      { fd: inR, type: 'SBUS_FD_INPUT_OBJECT', storage: { 'X-Object-Meta-Name': 'o1' } },
      { fd: outW, type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: mdW, type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: logFd, type: 'SBUS_FD_LOGGER' },
    ]);
    for (const fd of [inR, outW, mdW, logFd]) native.close(fd);
    expect(reply.status).toBe(true);
    expect(reply.task_id).toMatch(/^[0-9a-f]{16}$/);
    new net.Socket({ fd: inW, readable: false, writable: true }).end('storlets speak json\n');
    const md = await readPipeToEnd(mdR, { maxBytes: 65536, timeoutMs: 10000, what: 'metadata' });
    expect(JSON.parse(md.toString())).toEqual({ 'X-Object-Meta-Name': 'o1', 'Storlet-Transform': 'uppercase' });
    const out = await readPipeToEnd(outR, { maxBytes: 65536, timeoutMs: 10000, what: 'output' });
    expect(out.toString()).toBe('STORLETS SPEAK JSON\n');
    expect(fs.readFileSync(logPath, 'utf8')).toMatch(/INFO uppercasing/);

    expect(await storletsRequest(factory.pipe, 'SBUS_CMD_STOP_DAEMON', { storlet_name: 'uppercase.mjs' })).toEqual({ status: true, message: 'daemon uppercase.mjs stopped' });
    expect((await storletsRequest(factory.pipe, 'SBUS_CMD_DAEMON_STATUS', { storlet_name: 'uppercase.mjs' })).status).toBe(false);
  });

  it('serves datagrams laid out byte for byte as libsbus sends them', async () => {
    const json = (sock: string, command: string, params?: Record<string, unknown>, extra: ExtraFd[] = [], taskId?: string) =>
      storletsRequest(sock, command, params, extra, taskId, 'libsbus');
    expect(await json(factory.pipe, 'SBUS_CMD_PING')).toMatchObject({ status: true, message: 'factory is running' });
    const uds = path.join(dir, 'libsbus-upper');
    expect(await json(factory.pipe, 'SBUS_CMD_START_DAEMON', {
      daemon_language: 'js', storlet_path: path.join(dir, 'storlet'), storlet_name: 'uppercase.mjs',
      uds_path: uds, log_level: 'DEBUG', pool_size: 1,
    })).toMatchObject({ status: true });
    expect(await json(factory.pipe, 'SBUS_CMD_DAEMON_STATUS', { storlet_name: 'uppercase.mjs' })).toMatchObject({ status: true });
    expect(await json(uds, 'SBUS_CMD_PING')).toMatchObject({ status: true, message: 'daemon is running' });

    const [inR, inW] = native.pipe();
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const logFd = fs.openSync(path.join(dir, 'libsbus.log'), 'a');
    const reply = await json(uds, 'SBUS_CMD_EXECUTE', { color: 'red' }, [
      { fd: inR, type: 'SBUS_FD_INPUT_OBJECT', storlets: { start: '0', end: '5' }, storage: { 'X-Object-Meta-Name': 'o\u00e9' } },
      { fd: outW, type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: mdW, type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: logFd, type: 'SBUS_FD_LOGGER' },
    ]);
    for (const fd of [inR, outW, mdW, logFd]) native.close(fd);
    expect(reply).toMatchObject({ status: true, message: 'task started', task_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    new net.Socket({ fd: inW, readable: false, writable: true }).end('libsbus\n');
    const md = await readPipeToEnd(mdR, { maxBytes: 65536, timeoutMs: 10000, what: 'metadata' });
    expect(JSON.parse(md.toString())).toEqual({ 'X-Object-Meta-Name': 'o\u00e9', 'Storlet-Transform': 'uppercase' });
    expect((await readPipeToEnd(outR, { maxBytes: 65536, timeoutMs: 10000, what: 'output' })).toString()).toBe('LIBSBUS\n');
    // The output's EOF comes as the storlet ends it, a moment before its task is over.
    await eventually(async () => expect(await json(uds, 'SBUS_CMD_CANCEL', undefined, [], String(reply.task_id))).toMatchObject({ status: false }));
    expect(await json(factory.pipe, 'SBUS_CMD_STOP_DAEMON', { storlet_name: 'uppercase.mjs' })).toEqual({ status: true, message: 'daemon uppercase.mjs stopped' });
  });

  it('starts and runs a Python storlet written for Storlets, as Storlets\' gateway asks', async () => {
    const json = (sock: string, command: string, params?: Record<string, unknown>, extra: ExtraFd[] = [], taskId?: string) =>
      storletsRequest(sock, command, params, extra, taskId, 'libsbus');
    const uds = path.join(dir, 'py-upper');
    // daemon_language python and storlet_name module.Class, as Storlets' gateway sends them.
    expect(await json(factory.pipe, 'SBUS_CMD_START_DAEMON', {
      daemon_language: 'python', daemon_language_version: '3', storlet_path: path.join(dir, 'storlet'),
      storlet_name: 'uppercase.UpperStorlet', uds_path: uds, log_level: 'DEBUG', pool_size: 2,
    })).toEqual({ status: true, message: 'daemon uppercase.UpperStorlet started' });
    expect(await json(factory.pipe, 'SBUS_CMD_DAEMON_STATUS', { storlet_name: 'uppercase.UpperStorlet' })).toMatchObject({ status: true });
    const [inR, inW] = native.pipe();
    const [outR, outW] = native.pipe();
    const [mdR, mdW] = native.pipe();
    const logPath = path.join(dir, 'py.log');
    const logFd = fs.openSync(logPath, 'a');
    const reply = await json(uds, 'SBUS_CMD_EXECUTE', { color: 'red' }, [
      { fd: inR, type: 'SBUS_FD_INPUT_OBJECT', storage: { 'X-Object-Meta-Name': 'o1' } },
      { fd: outW, type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: mdW, type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: logFd, type: 'SBUS_FD_LOGGER' },
    ]);
    for (const fd of [inR, outW, mdW, logFd]) native.close(fd);
    expect(reply).toMatchObject({ status: true, task_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    new net.Socket({ fd: inW, readable: false, writable: true }).end('python\nvia storlets\n');
    const md = await readPipeToEnd(mdR, { maxBytes: 65536, timeoutMs: 10000, what: 'metadata' });
    expect(JSON.parse(md.toString())).toEqual({ 'X-Object-Meta-Name': 'o1', 'transformed-by': 'uppercase.py' });
    expect((await readPipeToEnd(outR, { maxBytes: 65536, timeoutMs: 10000, what: 'output' })).toString()).toBe('PYTHON\nVIA STORLETS\n');
    expect(fs.readFileSync(logPath, 'utf8')).toMatch(/INFO upper-cased 2 lines/);
    expect(await json(factory.pipe, 'SBUS_CMD_STOP_DAEMON', { storlet_name: 'uppercase.UpperStorlet' })).toEqual({ status: true, message: 'daemon uppercase.UpperStorlet stopped' });
  });

  it('names the supported languages when asked for another', async () => {
    const reply = await storletsRequest(factory.pipe, 'SBUS_CMD_START_DAEMON', {
      daemon_language: 'java', storlet_path: dir, storlet_name: 'x.jar', uds_path: path.join(dir, 'x'), log_level: 'INFO', pool_size: 1,
    });
    expect(reply).toEqual({ status: false, message: 'unsupported daemon_language "java"; this agent supports: js, python, exec' });
  });
});
