// A TCP relay between a real client and the door that records what the client sent and can
// change bytes on the way: the stand-in for a network that tampers with a body, a fault no real
// client can be asked to make.
import net from 'node:net';
import { once } from 'node:events';

export interface Tap {
  url: string;
  /** Everything clients sent, as latin1 text. */
  sent(): string;
  close(): Promise<void>;
}

export async function startTap(target: string, replace?: { from: string; to: string }): Promise<Tap> {
  const t = new URL(target);
  let sent = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(Number(t.port), t.hostname);
    sockets.add(client).add(up);
    client.on('data', (d: Buffer) => {
      let text = d.toString('latin1');
      if (replace) text = text.split(replace.from).join(replace.to);
      sent += text;
      up.write(Buffer.from(text, 'latin1'));
    });
    up.pipe(client);
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
