import pino, { type Logger } from 'pino';

/** The agent logs pino JSON to stderr; the sandbox's owner collects it. */
export function createAgentLogger(name: string, level = 'info'): Logger {
  return pino({ name, level: normalizeLevel(level), base: { pid: process.pid } }, pino.destination(2));
}

// Storlets passes Python level names (DEBUG, WARNING, CRITICAL); pino wants lowercase.
export function normalizeLevel(level: string): string {
  const l = level.toLowerCase();
  if (l === 'warning') return 'warn';
  if (l === 'critical') return 'fatal';
  return ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(l) ? l : 'info';
}
