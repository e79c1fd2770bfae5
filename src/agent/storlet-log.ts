// The logger a storlet writes its invocation log with. A log line is `<ISO time> <LEVEL> <text>`;
// the text is the storlet's, so it is escaped: no control character, line or paragraph separator
// or bidi override of it reaches the file raw, and a storlet cannot forge, overwrite or hide lines.
import fs from 'node:fs';
import type { StorletLogger } from './storlet-api.js';

// C0 controls, DEL, C1 controls, backslash (so that escapes are unambiguous), U+2028/2029, and the
// bidi embeddings, overrides and isolates.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\\\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/** One line of text: `\n`, `\r`, `\t`, `\\`, `\xHH` or `\uHHHH` for every unsafe character. */
export function escapeLogText(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Writes to fd (the invocation log the gateway sent), at most maxBytes per invocation. */
export function makeStorletLogger(fd: number | undefined, maxBytes: number): StorletLogger {
  let written = 0;
  let truncated = false;
  const write = (level: string, message: string): void => {
    if (fd === undefined || truncated) return;
    let line = `${new Date().toISOString()} ${level} ${escapeLogText(String(message))}\n`;
    if (written + Buffer.byteLength(line) > maxBytes) {
      truncated = true;
      line = `${new Date().toISOString()} WARN log of this invocation truncated at ${maxBytes} bytes\n`;
    }
    written += Buffer.byteLength(line);
    try {
      fs.writeSync(fd, line);
    } catch {
      truncated = true; // the log file went away: logging must never fail the storlet
    }
  };
  return {
    debug: (m) => write('DEBUG', m),
    info: (m) => write('INFO', m),
    warn: (m) => write('WARN', m),
    error: (m) => write('ERROR', m),
  };
}
