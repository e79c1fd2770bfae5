// Drives bench/client-process.js from a benchmark: one child, requests by message.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Small GETs per path before the timed ones (env BENCH_WARM). V8 is still optimizing sandlet's
 * per-request code over the first thousand or two requests (node --trace-opt on bench:s3: 20 to
 * 40 functions a second over the first 1,500): a door in service is past that, and the latency
 * targets are about it.
 */
export const WARM_GETS = Number(process.env.BENCH_WARM ?? 2000);

export function startClientProcess() {
  const child = fork(fileURLToPath(new URL('./client-process.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 0;
  const pending = new Map();
  child.on('message', (m) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(m.error));
    else p?.resolve(m);
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`the benchmark client exited (${code})`));
    pending.clear();
  });
  const call = (msg) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      child.send({ id, ...msg });
    });
  return {
    /** One GET; resolves { bytes, status, ms } as the client saw them. */
    get: (url, headers = {}) => call({ op: 'get', url, headers }),
    /** n rounds of one GET per target, interleaved; resolves one list of ms per target. */
    series: async (targets, n) => (await call({ op: 'series', targets, n })).times,
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}
