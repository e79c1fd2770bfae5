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

/**
 * Timed large GETs per path (env BENCH_ROUNDS), interleaved; the best of each is compared. The
 * rate of Swift's own GET moves ±10 % from one GET to the next on a VM whose cores Swift, the
 * client and sandlet share, so every path gets the same number of tries.
 */
export const BIG_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/**
 * The best rate (MB/s) of each path over BIG_ROUNDS interleaved rounds of one GET per path, after
 * one untimed GET per path: the first GET of a freshly written 1 GiB object ran at about half
 * speed (250-285 MB/s) whichever path came first, and only that path would pay for it. (Swift's
 * object server drops objects over 5 MiB from the page cache as it writes and reads them, so
 * every GET reads the disk; on the VMs measured, only the first read was slow.)
 * `paths`: name → { url, headers }.
 */
export async function bestRates(client, paths, bytes) {
  const once = async (name, { url, headers }) => {
    const got = await client.get(url, headers);
    if (got.bytes !== bytes) throw new Error(`${name}: got ${got.bytes} bytes of ${bytes} (status ${got.status})`);
    return bytes / (got.ms / 1e3) / 1e6;
  };
  for (const [name, p] of Object.entries(paths)) await once(name, p);
  const rates = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
  for (let r = 0; r < BIG_ROUNDS; r++) {
    for (const [name, p] of Object.entries(paths)) rates[name].push(await once(name, p));
  }
  return Object.fromEntries(Object.entries(rates).map(([name, v]) => [name, Math.max(...v)]));
}

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
