// npm run bench:http: what HTTP adds to an invocation, measured beside the library call in the
// same run (interleaved, so both see the same machine). 1 KiB through identity, p50/p99.
//   target: HTTP adds ≤ 0.3 ms at p50
// Options (env): BENCH_N (invocations per path, default 2000), BENCH_JSON=1 (one JSON line).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createGateway } from '../dist/index.js';
import { SAMPLES_DIR } from '../dist/package-root.js';
import { startServer } from '../dist/server/server.js';
import { createToken } from '../dist/server/tokens.js';

const N = Number(process.env.BENCH_N ?? 2000);
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const f = (ms) => `${ms.toFixed(3)} ms`;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
const logger = pino({ level: 'warn' });
const gw = createGateway({ host_root: root, backend: 'process', log_level: 'warn' }, { logger });
const tokensFile = path.join(root, 'tokens.json');
const { token } = await createToken(tokensFile, 'invoke');
await gw.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), {
  kind: 'storlet', name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no',
});
const socket = path.join(root, 'api.sock');
const server = await startServer({ gateway: gw, config: { ...gw.config, listen_socket: socket, listen_tcp: '127.0.0.1:0', tokens_file: tokensFile }, logger });
const port = Number(server.addresses.find((a) => a.startsWith('http://')).split(':').at(-1));
const payload = Buffer.alloc(1024, 120);

async function library() {
  const r = await gw.invoke({ scope: 'bench', storlet: 'identity.mjs', input: payload });
  for await (const _ of r.body);
}

const agents = { unix: new http.Agent({ keepAlive: true, maxSockets: 1 }), tcp: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
function overHttp(via) {
  return new Promise((resolve, reject) => {
    const where = via === 'unix' ? { socketPath: socket } : { host: '127.0.0.1', port };
    const req = http.request({ ...where, agent: agents[via], method: 'POST', path: '/v1/invoke/bench/identity.mjs', headers: { authorization: `Bearer ${token}`, 'content-length': payload.length } }, (res) => {
      res.on('data', () => {});
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const paths = { library, unix: () => overHttp('unix'), tcp: () => overHttp('tcp') };
const times = { library: [], unix: [], tcp: [] };
try {
  for (let i = 0; i < 300; i++) for (const fn of Object.values(paths)) await fn(); // warm: daemon, JIT, keep-alive sockets
  for (let i = 0; i < N; i++) {
    for (const [name, fn] of Object.entries(paths)) {
      const t = process.hrtime.bigint();
      await fn();
      times[name].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  const stats = Object.fromEntries(Object.entries(times).map(([k, v]) => {
    const s = [...v].sort((a, b) => a - b);
    return [k, { p50: quantile(s, 0.5), p99: quantile(s, 0.99) }];
  }));
  const added = { unix: stats.unix.p50 - stats.library.p50, tcp: stats.tcp.p50 - stats.library.p50 };
  if (process.env.BENCH_JSON) {
    process.stdout.write(`${JSON.stringify({ n: N, ...stats, addedP50: added })}\n`);
  } else {
    console.log(`1 KiB through identity, ${N} calls per path, interleaved (process backend)`);
    console.log(`  library (baseline)   p50 ${f(stats.library.p50)}  p99 ${f(stats.library.p99)}`);
    console.log(`  HTTP, Unix socket    p50 ${f(stats.unix.p50)}  p99 ${f(stats.unix.p99)}  adds ${f(added.unix)} at p50 (target ≤ 0.300 ms)`);
    console.log(`  HTTP, loopback TCP   p50 ${f(stats.tcp.p50)}  p99 ${f(stats.tcp.p99)}  adds ${f(added.tcp)} at p50 (target ≤ 0.300 ms)`);
  }
} finally {
  agents.unix.destroy();
  agents.tcp.destroy();
  await server.close({ drainMs: 1000, stopSandboxes: true });
  fs.rmSync(root, { recursive: true, force: true });
}
