// sandlet's SBus client (as the gateway uses it with `sbus_codec: json`) against a Storlets agent.
// The real one is a Python process around the C libsbus, which this repository cannot run: the
// peer here is a stand-in that receives on a real datagram socket with real fds, reads what it
// got by libsbus's rules (sbus_recv_msg: three native ints, then exactly the announced metadata
// and params bytes, at most 4096 bytes in all) and answers byte for byte as
// storlets/agent/common/server.py does (json.dumps of status, message and, for EXECUTE, task_id).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { createGateway } from '../../src/gateway.js';
import { StorletsAgent } from '../../src/runtime/storlets-agent.js';
import { SBusClient } from '../../src/sbus/client.js';
import { readInt } from '../../src/sbus/codec.js';
import { native } from '../../src/sbus/native.js';
import { openFds, tempDir } from '../helpers/fs.js';
import { int32, pythonJson } from '../helpers/wire.js';

/** libsbus's receive buffer (MAX_MSG_LENGTH): a longer datagram reaches a Storlets agent cut short. */
const LIBSBUS_MAX_MSG = 4096;

interface Received {
  body: Buffer;
  nFds: number;
  metadata: unknown;
  params: Record<string, unknown>;
}

let dir: string;
let cleanup: () => void;
let sockPath: string;
let listener: { close(): void };
let received: Received[];
/** What the stand-in answers: a function of the params it read. */
let answer: (params: Record<string, unknown>) => Record<string, unknown>;

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  sockPath = path.join(dir, 'storlets_agent');
  received = [];
  const fd = native.bind(sockPath);
  listener = native.listen(fd, 1 << 16, (body, fds) => {
    const ints = [0, 4, 8].map((o) => readInt(body, o));
    const [nFds, metaLen, paramsLen] = ints as [number, number, number];
    const metadata = metaLen > 0 ? JSON.parse(body.subarray(12, 12 + metaLen).toString('utf8')) : undefined;
    const params = JSON.parse(body.subarray(12 + metaLen, 12 + metaLen + paramsLen).toString('utf8')) as Record<string, unknown>;
    received.push({ body, nFds, metadata, params });
    // server.py: the reply goes to the service-out fd, the first; the agent keeps no other fd here.
    fs.writeSync(fds[0]!, Buffer.from(pythonJson(answer(params)), 'utf8'));
    for (const f of fds) fs.closeSync(f);
  });
});
afterEach(async () => {
  listener.close();
  await new Promise((r) => setTimeout(r, 10));
  cleanup();
});

describe('SBus client (json codec) and a Storlets agent', () => {
  it('sends what libsbus reads back whole, and parses the agent\'s PING reply', async () => {
    answer = () => ({ status: true, message: 'OK' });
    const client = new SBusClient(sockPath, { codec: 'json' });
    expect(await client.ping()).toEqual({ status: true, message: 'OK' });
    const meta = '[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]';
    const params = '{"command":"SBUS_CMD_PING"}';
    // Byte for byte: the exact lengths, nothing after them (libsbus would ignore it anyway).
    expect(received[0]!.body).toEqual(Buffer.concat([int32(1), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
    expect(received[0]!.body.length).toBeLessThanOrEqual(LIBSBUS_MAX_MSG);
  });

  it('parses EXECUTE, CANCEL and failure replies as the Python agent writes them', async () => {
    const client = new SBusClient(sockPath, { codec: 'json' });
    answer = () => ({ status: true, message: 'OK', task_id: '1a2b3c4d' });
    const before = openFds().length;
    const pipes = [native.pipe(), native.pipe(), native.pipe()];
    const log = fs.openSync(path.join(dir, 'log'), 'a');
    const reply = await client.execute({ color: 'red', 'caf\u00e9': '\u2603' }, [
      { fd: pipes[0]![0], type: 'SBUS_FD_INPUT_OBJECT', storage: { 'X-Object-Meta-Color': 'blue' } },
      { fd: pipes[1]![1], type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: pipes[2]![1], type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: log, type: 'SBUS_FD_LOGGER' },
    ]);
    expect(reply).toEqual({ status: true, message: 'OK', task_id: '1a2b3c4d' });
    const got = received[0]!;
    // The datagram as Storlets' SBusExecuteDatagram expects it: service out first, then its fds in order.
    expect(got.nFds).toBe(5);
    expect((got.metadata as { storlets: { type: string } }[]).map((m) => m.storlets.type)).toEqual([
      'SBUS_FD_SERVICE_OUT', 'SBUS_FD_INPUT_OBJECT', 'SBUS_FD_OUTPUT_OBJECT', 'SBUS_FD_OUTPUT_OBJECT_METADATA', 'SBUS_FD_LOGGER',
    ]);
    expect(got.params).toEqual({ command: 'SBUS_CMD_EXECUTE', params: { color: 'red', 'caf\u00e9': '\u2603' } });
    for (const [r, w] of pipes) native.close(r), native.close(w);
    fs.closeSync(log);
    expect(openFds().length).toBe(before);

    answer = (p) => ({ status: true, message: `Cancelled task ${String(p.task_id)}` });
    expect(await client.cancel('1a2b3c4d')).toEqual({ status: true, message: 'Cancelled task 1a2b3c4d' });
    expect(received[1]!.params).toEqual({ command: 'SBUS_CMD_CANCEL', task_id: '1a2b3c4d' });

    // json.dumps escapes every non-ASCII character.
    answer = () => ({ status: false, message: 'Task id caf\u00e9 \u2603 is not found' });
    const raw = pythonJson(answer({}));
    expect(raw).toBe('{"status": false, "message": "Task id caf\\u00e9 \\u2603 is not found"}');
    expect(await client.cancel('caf\u00e9')).toEqual({ status: false, message: 'Task id caf\u00e9 \u2603 is not found' });
  });
});

// sandlet's StorletsAgent (the gateway side of a Storlets agent) against stand-ins of Storlets'
// factory and Python daemon: the real ones cannot run in CI (no Storlets source there; see
// storlets-agent-real.int.test.ts, which runs them when SANDLET_STORLETS_SRC points at one). The
// stand-ins read each datagram by libsbus's rules and act on its fds as the Python agent does.
describe('StorletsAgent and a Storlets agent', () => {
  const MAIN = 'simple.SimpleStorlet';
  const SERVICE_OUT = '{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}';
  let pipes: string;
  let roots: { hostPipeDir: string; hostStorletsDir: string; hostLogDir: string };
  let factoryGot: Received[];
  let daemonGot: (Received & { fdKinds: string[]; loggerIno: number })[];
  let running: boolean;
  let standIns: { close(): void }[];
  /** Fds of a task the daemon stand-in keeps running (not closed with the datagram's). */
  let held: number[];

  const sentBy = (list: Received[]): string[] => list.map((r) => String(r.params.command));
  const readAll = (fd: number): Buffer => {
    const parts: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (let n; (n = fs.readSync(fd, buf)) > 0; ) parts.push(Buffer.from(buf.subarray(0, n)));
    return Buffer.concat(parts);
  };
  const kind = (fd: number): string => {
    const st = fs.fstatSync(fd);
    return st.isFIFO() ? 'fifo' : st.isFile() ? 'file' : 'other';
  };
  /** A stand-in server at `at`: parses as sbus_recv_msg does, hands the datagram and its fds to `act`, closes them all. */
  const standIn = (at: string, act: (got: Received, fds: number[]) => Record<string, unknown>): void => {
    const fd = native.bind(at);
    standIns.push(
      native.listen(fd, 1 << 16, (body, fds) => {
        const [nFds, metaLen, paramsLen] = [0, 4, 8].map((o) => readInt(body, o)) as [number, number, number];
        const got: Received = {
          body,
          nFds,
          metadata: JSON.parse(body.subarray(12, 12 + metaLen).toString('utf8')),
          params: JSON.parse(body.subarray(12 + metaLen, 12 + metaLen + paramsLen).toString('utf8')) as Record<string, unknown>,
        };
        fs.writeSync(fds[0]!, Buffer.from(pythonJson(act(got, fds)), 'utf8'));
        for (const f of fds) if (!held.includes(f)) fs.closeSync(f);
      }),
    );
  };

  beforeEach(() => {
    // A gateway rooted at `dir` finds scope sc's agent here (backend storlets-agent).
    pipes = path.join(dir, 'pipes', 'sc');
    fs.mkdirSync(pipes, { recursive: true });
    roots = { hostPipeDir: pipes, hostStorletsDir: path.join(dir, 'storlets', 'sc'), hostLogDir: path.join(dir, 'logs', 'sc') };
    factoryGot = [];
    daemonGot = [];
    running = false;
    standIns = [];
    held = [];
    // Storlets' daemon_factory/server.py: DAEMON_STATUS, STOP_DAEMON and START_DAEMON by storlet_name.
    standIn(path.join(pipes, 'factory_pipe'), (got) => {
      factoryGot.push(got);
      const p = got.params.params as Record<string, unknown> | undefined;
      switch (got.params.command) {
        case 'SBUS_CMD_DAEMON_STATUS':
          return running ? { status: true, message: `The storlet daemon ${String(p?.storlet_name)} seems to be OK` } : { status: false, message: 'No running storlet daemons' };
        case 'SBUS_CMD_STOP_DAEMON':
          running = false;
          return { status: true, message: 'stopped' };
        case 'SBUS_CMD_START_DAEMON':
          running = true;
          return { status: true, message: 'OK' };
        default:
          return { status: true, message: 'OK' };
      }
    });
    // Storlets' daemon/server.py: EXECUTE answers a task id; its forked child reads the input,
    // writes the metadata (StorletOutputFile.set_metadata), the output and a log line.
    standIn(path.join(pipes, MAIN), (got, fds) => {
      if (got.params.command === 'SBUS_CMD_CANCEL') {
        daemonGot.push({ ...got, fdKinds: [], loggerIno: 0 });
        // The task is killed, and the daemon leaves its main loop (CommandSuccess(..., False)); the
        // factory notices only when it next reaps it, so DAEMON_STATUS may still say it runs.
        for (const f of held.splice(0)) fs.closeSync(f);
        return { status: true, message: `Cancelled task ${String(got.params.task_id)}` };
      }
      if ((got.params.params as Record<string, string>).sleep) {
        held.push(...fds.slice(1)); // a task that never answers
        daemonGot.push({ ...got, fdKinds: [], loggerIno: 0 });
        return { status: true, message: 'OK', task_id: 'sleeping' };
      }
      const [, input, output, meta, logger] = fds as [number, number, number, number, number];
      daemonGot.push({ ...got, fdKinds: fds.slice(1).map(kind), loggerIno: fs.fstatSync(logger).ino });
      const data = readAll(input);
      const md = (got.metadata as { storage: Record<string, string> }[])[1]!.storage;
      fs.writeSync(meta, JSON.stringify({ ...md, test: 'simple' }));
      fs.writeSync(output, data);
      fs.writeSync(logger, `${MAIN} DEBUG: Complete`);
      return { status: true, message: 'OK', task_id: '1a2b3c4d' };
    });
  });
  afterEach(() => {
    for (const s of standIns) s.close();
    for (const f of held) fs.closeSync(f);
  });

  it('installs a Python storlet where the agent looks and starts it with Storlets\' START_DAEMON', async () => {
    const agent = new StorletsAgent(roots);
    const code = 'class SimpleStorlet(object):\n    pass\n';
    await agent.start({ main: MAIN, storlet: { name: 'simple.py', content: code }, dependencies: [{ name: 'get42.sh', content: '#!/bin/sh\nexit 42\n', mode: 0o775 }] });
    expect(sentBy(factoryGot)).toEqual(['SBUS_CMD_DAEMON_STATUS', 'SBUS_CMD_START_DAEMON']);
    const meta = `[${SERVICE_OUT}]`;
    const params =
      '{"command":"SBUS_CMD_START_DAEMON","params":{"daemon_language":"python","storlet_path":"/var/lib/storlets/simple.SimpleStorlet/simple.py:/var/lib/storlets/simple.SimpleStorlet/get42.sh",' +
      '"storlet_name":"simple.SimpleStorlet","uds_path":"/mnt/channels/simple.SimpleStorlet","log_level":"DEBUG","pool_size":5,"daemon_language_version":"3"}}';
    expect(factoryGot[1]!.body).toEqual(Buffer.concat([int32(1), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
    // The same keys in the same order as Storlets' SBusClient.start_daemon puts them in its json.dumps.
    expect(pythonJson(factoryGot[1]!.params)).toBe(
      '{"command": "SBUS_CMD_START_DAEMON", "params": {"daemon_language": "python", "storlet_path": "/var/lib/storlets/simple.SimpleStorlet/simple.py:/var/lib/storlets/simple.SimpleStorlet/get42.sh", ' +
        '"storlet_name": "simple.SimpleStorlet", "uds_path": "/mnt/channels/simple.SimpleStorlet", "log_level": "DEBUG", "pool_size": 5, "daemon_language_version": "3"}}',
    );
    // Storlets' layout: <storlets dir>/<main>/ holds the module (the daemon's PYTHONPATH), owner-only modes.
    const sdir = path.join(roots.hostStorletsDir, MAIN);
    expect(fs.statSync(sdir).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(path.join(sdir, 'simple.py'), 'utf8')).toBe(code);
    expect(fs.statSync(path.join(sdir, 'simple.py')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(sdir, 'get42.sh')).mode & 0o777).toBe(0o700);

    // The same files again: the daemon runs them, nothing is restarted.
    await agent.start({ main: MAIN, storlet: { name: 'simple.py', content: code }, dependencies: [{ name: 'get42.sh', content: '#!/bin/sh\nexit 42\n', mode: 0o775 }] });
    expect(sentBy(factoryGot).slice(2)).toEqual(['SBUS_CMD_DAEMON_STATUS']);
    // Changed files: the running daemon is stopped before they are replaced, then started again.
    await agent.start({ main: MAIN, storlet: { name: 'simple.py', content: `${code}# v2\n` } });
    expect(sentBy(factoryGot).slice(3)).toEqual(['SBUS_CMD_DAEMON_STATUS', 'SBUS_CMD_STOP_DAEMON', 'SBUS_CMD_START_DAEMON']);
    expect(factoryGot[4]!.params).toEqual({ command: 'SBUS_CMD_STOP_DAEMON', params: { storlet_name: MAIN } });
    expect(fs.readdirSync(sdir)).toEqual(['simple.py']);
    agent.close();
  });

  it('refuses a main Storlets cannot name before anything is sent or written', async () => {
    const agent = new StorletsAgent(roots);
    await expect(agent.start({ main: 'simple', storlet: { name: 'simple.py', content: '' } })).rejects.toMatchObject({ code: 'EBADNAME' });
    await expect(agent.start({ main: 'a.b.C', storlet: { name: 'a.py', content: '' } })).rejects.toMatchObject({ code: 'EBADNAME' });
    await expect(agent.start({ main: MAIN, storlet: { name: '../x.py', content: '' } })).rejects.toMatchObject({ code: 'EBADNAME' });
    expect(factoryGot).toEqual([]);
    expect(fs.existsSync(roots.hostStorletsDir)).toBe(false);
  });

  it('sends EXECUTE with Storlets\' fds in order and their metadata, and reads back metadata and output', async () => {
    const agent = new StorletsAgent(roots);
    const before = openFds().length;
    const res = await agent.invoke(MAIN, {
      input: Buffer.from('abcdefghijklmonp'),
      inputMetadata: { 'X-Object-Meta-Color': 'blue' },
      params: { color: 'red' },
      extraInputs: [{ input: Buffer.from('extra'), metadata: { 'Content-Type': 'text/plain' } }],
    });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('abcdefghijklmonp');
    expect(res.metadata).toEqual({ 'X-Object-Meta-Color': 'blue', test: 'simple' });
    expect(res.taskId).toBe('1a2b3c4d');

    const got = daemonGot[0]!;
    const meta =
      `[${SERVICE_OUT},{"storlets":{"type":"SBUS_FD_INPUT_OBJECT"},"storage":{"X-Object-Meta-Color":"blue"}},` +
      '{"storlets":{"type":"SBUS_FD_OUTPUT_OBJECT"},"storage":{}},{"storlets":{"type":"SBUS_FD_OUTPUT_OBJECT_METADATA"},"storage":{}},' +
      '{"storlets":{"type":"SBUS_FD_LOGGER"},"storage":{}},{"storlets":{"type":"SBUS_FD_INPUT_OBJECT"},"storage":{"Content-Type":"text/plain"}}]';
    const params = '{"command":"SBUS_CMD_EXECUTE","params":{"color":"red","storlet_execution_path":"/var/lib/storlets/simple.SimpleStorlet"}}';
    expect(got.body).toEqual(Buffer.concat([int32(6), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
    expect(got.body.length).toBeLessThanOrEqual(LIBSBUS_MAX_MSG);
    // Input, output, output metadata: pipes; the logger: the storlet's log in Storlets' layout.
    expect(got.fdKinds).toEqual(['fifo', 'fifo', 'fifo', 'file', 'fifo']);
    const logPath = path.join(roots.hostLogDir, MAIN, 'storlet_invoke.log');
    expect(got.loggerIno).toBe(fs.statSync(logPath).ino);
    expect(fs.readFileSync(logPath, 'utf8')).toBe(`${MAIN} DEBUG: Complete`);
    agent.close();
    expect(openFds().length).toBe(before);
  });

  it('puts a range in the input\'s storlets metadata as Storlets does', async () => {
    const agent = new StorletsAgent(roots);
    const res = await agent.invoke(MAIN, { input: Buffer.from('0123456789'), range: { start: 2, end: 5 } });
    res.body.resume();
    await new Promise((r) => res.body.on('close', r));
    const input = (daemonGot[0]!.metadata as unknown[])[1];
    expect(JSON.stringify(input)).toBe('{"storlets":{"start":"2","end":"5","type":"SBUS_FD_INPUT_OBJECT"},"storage":{}}');
    agent.close();
  });

  it('sends CANCEL as Storlets does when a task times out, and starts the daemon that CANCEL ended again', async () => {
    const agent = new StorletsAgent(roots);
    const storlet = { main: MAIN, storlet: { name: 'simple.py', content: 'class SimpleStorlet: pass\n' } };
    await agent.start(storlet);
    await expect(agent.invoke(MAIN, { input: Buffer.from('x'), params: { sleep: '1' }, timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    await vi.waitFor(() => expect(daemonGot).toHaveLength(2), { timeout: 10_000 });
    const params = '{"command":"SBUS_CMD_CANCEL","task_id":"sleeping"}';
    const meta = `[${SERVICE_OUT}]`;
    expect(daemonGot[1]!.body).toEqual(Buffer.concat([int32(1), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
    // Same files, but the daemon is not trusted to run after a CANCEL: started again.
    factoryGot.length = 0;
    await agent.start(storlet);
    expect(sentBy(factoryGot)).toEqual(['SBUS_CMD_DAEMON_STATUS', 'SBUS_CMD_STOP_DAEMON', 'SBUS_CMD_START_DAEMON']);
    agent.close();
  });

  it('refuses a datagram longer than libsbus reads (4096 bytes) with a clear error, sending nothing', async () => {
    const agent = new StorletsAgent(roots);
    const before = openFds().length;
    const err = await agent.invoke(MAIN, { input: Buffer.from('x'), params: { big: 'y'.repeat(4000) } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ETOOLARGE' });
    expect((err as Error).message).toMatch(/SBUS_CMD_EXECUTE datagram to .* is \d+ bytes, but a Storlets agent reads at most 4096 of a datagram/);
    expect(daemonGot).toEqual([]);
    agent.close(); // its kept log fd
    expect(openFds().length).toBe(before);

    // The bound is exact: 4096 bytes, header included, go; one more does not.
    const client = new SBusClient(path.join(pipes, 'factory_pipe'), { codec: 'json', libsbusPeer: true });
    const fixed = 12 + `[${SERVICE_OUT}]`.length + '{"command":"SBUS_CMD_PING","params":{"x":""}}'.length;
    await client.request('SBUS_CMD_PING', { params: { x: 'a'.repeat(LIBSBUS_MAX_MSG - fixed) } });
    expect(factoryGot.at(-1)!.body.length).toBe(LIBSBUS_MAX_MSG);
    await expect(client.request('SBUS_CMD_PING', { params: { x: 'a'.repeat(LIBSBUS_MAX_MSG - fixed + 1) } })).rejects.toMatchObject({ code: 'ETOOLARGE' });
    expect(factoryGot).toHaveLength(1);
  });

  it('is what a gateway with backend storlets-agent (and sbus_codec json) runs a deployed Python storlet with', async () => {
    expect(() => createGateway({ host_root: dir, backend: 'storlets-agent' })).toThrow(/backend storlets-agent drives OpenStack Storlets agents, which read JSON only: set sbus_codec: json/);
    const gateway = createGateway({ host_root: dir, backend: 'storlets-agent', sbus_codec: 'json' }, { logger: pino({ level: 'silent' }) });
    try {
      const code = 'class SimpleStorlet(object):\n    pass\n';
      await gateway.deploy(Buffer.from('#!/bin/sh\nexit 42\n'), { kind: 'dependency', name: 'get42.sh', version: '1', permissions: '0755' });
      await gateway.deploy(Buffer.from(code), { kind: 'storlet', name: 'simple.py', language: 'python', languageVersion: '3', interfaceVersion: '1.0', objectMetadata: 'no', main: MAIN, dependencies: ['get42.sh'] });
      const res = await gateway.invoke({ scope: 'sc', storlet: 'simple.py', input: Buffer.from('via the gateway'), inputMetadata: { color: 'blue' }, params: { p: 'q' } });
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('via the gateway');
      expect(res.metadata).toEqual({ color: 'blue', test: 'simple' });
      expect(gateway.backendName).toBe('storlets-agent');
      expect(sentBy(factoryGot)).toEqual(['SBUS_CMD_DAEMON_STATUS', 'SBUS_CMD_START_DAEMON']);
      expect(factoryGot[1]!.params.params).toEqual({
        daemon_language: 'python',
        storlet_path: '/var/lib/storlets/simple.SimpleStorlet/simple.py:/var/lib/storlets/simple.SimpleStorlet/get42.sh',
        storlet_name: MAIN,
        uds_path: '/mnt/channels/simple.SimpleStorlet',
        log_level: 'INFO',
        pool_size: 4,
        daemon_language_version: '3',
      });
      expect(daemonGot[0]!.params).toEqual({ command: 'SBUS_CMD_EXECUTE', params: { p: 'q', storlet_execution_path: '/var/lib/storlets/simple.SimpleStorlet' } });
      // The catalog installed the files in Storlets' layout: the module, the dependency executable.
      const sdir = path.join(roots.hostStorletsDir, MAIN);
      expect(fs.readFileSync(path.join(sdir, 'simple.py'), 'utf8')).toBe(code);
      expect(fs.statSync(path.join(sdir, 'get42.sh')).mode & 0o100).toBe(0o100);
      // A JS storlet cannot run there: said before anything is sent.
      await gateway.deploy(Buffer.from('export function invoke() {}'), { kind: 'storlet', name: 'id.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'id.mjs', dependencies: [] });
      await expect(gateway.invoke({ scope: 'sc', storlet: 'id.mjs', input: Buffer.from('x') })).rejects.toThrow(/storlet id\.mjs is js; a Storlets agent runs Python storlets only/);
      expect(factoryGot).toHaveLength(2);
    } finally {
      await gateway.close();
    }
  });
});
