// Drives bench/client-process.js from a benchmark: one child, requests by message. Bulk GETs
// go to curl instead (see bulkGet).
import { execFile, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
    /**
     * One large GET, by curl into /dev/null unless BENCH_CLIENT=node: the client shares the
     * machine's cores with the store and sandlet, and Node's http client costs about twice
     * curl's CPU per GiB (it copies every body byte out of its parser). Resolves { bytes, status, ms }
     * as the client saw them.
     */
    bulkGet: (url, headers = {}) => (process.env.BENCH_CLIENT === 'node' ? call({ op: 'get', url, headers }) : curlGet(url, headers)),
    /** n rounds of one GET per target, interleaved; resolves one list of ms per target. */
    series: async (targets, n) => (await call({ op: 'series', targets, n })).times,
    close: () => {
      if (child.connected) child.disconnect();
    },
  };
}

/** GET by curl, body to /dev/null; ms is curl's own transfer time (its start-up not counted). */
function curlGet(url, headers) {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{http_code} %{time_total}'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) =>
    execFile('curl', args, (err, out, errText) => {
      if (err) return reject(new Error(`curl: ${(errText || err.message).trim()}`));
      const [bytes, status, secs] = out.trim().split(' ');
      resolve({ bytes: Number(bytes), status: Number(status), ms: Number(secs) * 1000 });
    }),
  );
}
