// The gateway's end of a scope's control channel, on real SOCK_SEQPACKET sockets: a factory is
// known by the listener it reached; a wrong hello or a second connection is refused and logged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FactoryChannel } from '../../src/runtime/factory-channel.js';
import { encodeHello } from '../../src/sbus/hello.js';
import { native } from '../../src/sbus/native.js';
import { SBusClient } from '../../src/sbus/client.js';
import { SBusServer } from '../../src/sbus/server.js';
import { openFds } from '../helpers/fs.js';

let dir = '';
let lines: { msg: string; why?: string }[] = [];
const logger = () =>
  pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
const hangup = (fd: number): Promise<void> =>
  new Promise((resolve) => {
    const l = native.listen(fd, 4096, () => {}, () => {
      l.close();
      resolve();
    });
  });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slch-'));
  lines = [];
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('factory channel', () => {
  it('refuses a hello naming another scope, then takes the right one; a second connection is refused', async () => {
    const sock = path.join(dir, 'sandlet.sock');
    const channel = new FactoryChannel('alpha', sock, logger());
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);

    const impostor = native.connectSeqpacket(sock);
    native.sendOn(impostor, encodeHello('victim'), []);
    await hangup(impostor); // the gateway hung up on it
    expect(channel.connected).toBe(false);
    expect(lines.some((l) => l.msg === 'refused a factory connection: bad hello' && /victim/.test(l.why ?? ''))).toBe(true);

    const factory = native.connectSeqpacket(sock);
    native.sendOn(factory, encodeHello('alpha'), []);
    await channel.waitConnected(5000);
    expect(channel.hello).toMatchObject({ scope: 'alpha' });

    const second = native.connectSeqpacket(sock);
    native.sendOn(second, encodeHello('alpha'), []);
    await hangup(second);
    expect(lines.some((l) => l.msg === 'refused a second factory connection')).toBe(true);
    expect(channel.connected).toBe(true);

    // Commands reach the factory over its connection; the factory hanging up is reported once.
    const served = new SBusServer('factory', { logger: pino({ level: 'silent' }) }).on('SBUS_CMD_PING', (req) => ({
      status: true,
      message: `pong for ${req.daemon ?? 'factory'}`,
    }));
    const closed = new Promise<void>((resolve) => served.serve(factory, resolve));
    expect((await new SBusClient(channel, { daemon: 'x.mjs' }).ping()).message).toBe('pong for x.mjs');
    const lost = new Promise<string>((resolve) => (channel.onLost = resolve));
    channel.close();
    expect(fs.existsSync(sock)).toBe(false);
    await closed;
    expect(await Promise.race([lost, new Promise((r) => setTimeout(() => r('not reported'), 200))])).toBe('not reported');
    await expect(new SBusClient(channel).ping()).rejects.toMatchObject({ code: 'ENOLISTENER' });
  });

  it('reports the factory hanging up, and never accepts another connection after it', async () => {
    const sock = path.join(dir, 'sandlet.sock');
    const channel = new FactoryChannel('alpha', sock, logger());
    const factory = native.connectSeqpacket(sock);
    native.sendOn(factory, encodeHello('alpha'), []);
    await channel.waitConnected(5000);
    const lost = new Promise<string>((resolve) => (channel.onLost = resolve));
    native.close(factory);
    expect(await lost).toMatch(/closed its connection/);
    expect(channel.connected).toBe(false);
    const again = native.connectSeqpacket(sock);
    native.sendOn(again, encodeHello('alpha'), []);
    await hangup(again);
    expect(channel.connected).toBe(false);
    channel.close();
  });

  it('refuses to take over a live channel of another gateway, touching nothing; replaces a stale one', async () => {
    const sock = path.join(dir, 'sandlet.sock');
    const first = new FactoryChannel('alpha', sock, logger());
    const ino = fs.statSync(sock).ino;
    expect(() => new FactoryChannel('alpha', sock, logger())).toThrow(/has a sandbox this gateway did not start/);
    expect(fs.statSync(sock).ino).toBe(ino);
    first.close();
    // A socket file nobody listens on (a gateway that died) is replaced.
    const orphan = native.listenSeqpacket(path.join(dir, 'stale.sock'));
    native.close(orphan);
    const second = new FactoryChannel('alpha', path.join(dir, 'stale.sock'), logger());
    second.close();
  });

  it('keeps fds flat through 2,000 commands over the connection', async () => {
    const sock = path.join(dir, 'sandlet.sock');
    const channel = new FactoryChannel('alpha', sock, logger());
    const factory = native.connectSeqpacket(sock);
    native.sendOn(factory, encodeHello('alpha'), []);
    await channel.waitConnected(5000);
    const served = new SBusServer('factory', { logger: pino({ level: 'silent' }) }).on('SBUS_CMD_PING', () => ({ status: true, message: 'ok' }));
    served.serve(factory, () => {});
    const client = new SBusClient(channel);
    await client.ping();
    const before = openFds().length;
    for (let i = 0; i < 2000; i += 4) await Promise.all([client.ping(), client.ping(), client.ping(), client.ping()]);
    expect(openFds().length).toBe(before);
    served.close();
    channel.close();
  });
});
