import pino, { type Logger } from 'pino';

/** The gateway's logger: pino JSON on stderr, so stdout stays free for storlet output. */
export function createLogger(level: string): Logger {
  return pino({ name: 'sandlet', level }, pino.destination(2));
}
