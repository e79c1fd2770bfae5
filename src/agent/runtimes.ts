// The runtime for a storlet of a language other than JS (which the daemon runs in its own threads).
import type { Logger } from 'pino';
import { ExecRuntime } from './exec-runtime.js';
import type { StorletLanguage } from './languages.js';
import { PythonRuntime } from './python-runtime.js';
import type { StorletRuntime } from './storlet-runtime.js';

export function makeRuntime(language: Exclude<StorletLanguage, 'js'>, storletDir: string, main: string, poolSize: number, log: Logger): StorletRuntime {
  return language === 'python' ? new PythonRuntime(storletDir, main, poolSize, log) : new ExecRuntime(storletDir, main, log);
}
