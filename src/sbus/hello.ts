// The first message on a factory's connection to the gateway: who the agent says it is. The
// gateway identifies the factory by the listener it connected to (one per scope, visible only in
// that scope's sandbox); the hello must agree with it, or the connection is refused.
import { AGENT_VERSION, PROTOCOL_VERSION } from '../version.js';

export const HELLO_KIND = 'sandlet-factory-hello';
/** A hello is small; anything larger is refused unread. */
export const MAX_HELLO_BYTES = 1024;
/** The gateway's listening socket in a scope's channel dir (the dir the sandbox sees read-only). */
export const CHANNEL_SOCKET_NAME = 'sandlet.sock';

export interface Hello {
  kind: typeof HELLO_KIND;
  scope: string;
  agent: string;
  protocol: number;
}

export function encodeHello(scope: string): Buffer {
  const hello: Hello = { kind: HELLO_KIND, scope, agent: AGENT_VERSION, protocol: PROTOCOL_VERSION };
  return Buffer.from(JSON.stringify(hello), 'utf8');
}

/** The hello in body, or why it is not one. */
export function parseHello(body: Buffer): Hello | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  const h = value as Partial<Hello> | null;
  if (typeof h !== 'object' || h === null || h.kind !== HELLO_KIND) return 'not a sandlet factory hello';
  if (typeof h.scope !== 'string' || typeof h.agent !== 'string' || typeof h.protocol !== 'number') {
    return 'hello lacks scope, agent or protocol';
  }
  return h as Hello;
}
