// npm run bench:swift: the Swift front door beside Swift itself, in one run, interleaved.
//   1 GiB GET: direct to Swift, through sandlet's passthrough, through an identity storlet
//   1 KiB GET p50/p99 for the same three
//   targets: passthrough ≥ 90 % of direct throughput and ≤ 1 ms added p50;
//            identity storlet ≥ 80 % of direct throughput and ≤ 2 ms added p50
// Needs Debian's Swift (see README, "Storlets on Swift"). Options (env): BENCH_N (1 KiB GETs per
// path, default 1000), BENCH_WARM (1 KiB GETs per path before those,
// default 2000), BENCH_BIG_MB (default 1024), BENCH_ROUNDS (timed big GETs per path, default 5,
// after one untimed).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createGateway } from '../dist/index.js';
import { resolveConfig } from '../dist/config.js';
import { SAMPLES_DIR } from '../dist/package-root.js';
import { startFrontDoor } from '../dist/proxy/front-door.js';
import { startSwift, swiftToken, SWIFT_USERS } from '../scripts/local-swift.mjs';
import { BIG_ROUNDS, bestRates, startClientProcess, WARM_GETS } from './client-process-driver.js';

const N = Number(process.env.BENCH_N ?? 1000);
const BIG = Number(process.env.BENCH_BIG_MB ?? 1024) * 1024 * 1024;
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const ms = (v) => `${v.toFixed(3)} ms`;

const swift = await startSwift({ logs: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
const config = resolveConfig({ host_root: root, backend: process.env.BENCH_BACKEND ?? 'process', log_level: 'warn', upstream: swift.url, proxy_listen: '127.0.0.1:0', cache_ttl: 60 });
const gw = createGateway(config, { logger: pino({ level: 'warn' }) });
const door = await startFrontDoor({ gateway: gw, config, registry: new Registry(), logger: gw.logger });
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const client = startClientProcess();

function request(base, method, p, headers = {}, body) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers, agent }, (res) => {
      let bytes = 0;
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => (res.statusCode < 300 ? resolve(bytes) : reject(new Error(`${method} ${p}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

try {
  const token = await swiftToken(swift.url, SWIFT_USERS.admin);
  const auth = { 'x-auth-token': token };
  await request(swift.url, 'PUT', '/v1/AUTH_test/storlet', auth);
  await request(swift.url, 'PUT', '/v1/AUTH_test/bench', auth);
  await request(swift.url, 'PUT', '/v1/AUTH_test/storlet/identity.mjs', {
    ...auth,
    'x-object-meta-storlet-language': 'js', 'x-object-meta-storlet-interface-version': '1.0',
    'x-object-meta-storlet-object-metadata': 'no', 'x-object-meta-storlet-main': 'identity.mjs',
  }, fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')));
  await request(swift.url, 'PUT', '/v1/AUTH_test/bench/small', auth, Buffer.alloc(1024, 120));
  const chunk = Buffer.alloc(1024 * 1024, 97);
  let left = BIG;
  const big = new Readable({ read() { if (left <= 0) return this.push(null); left -= chunk.length; this.push(chunk); } });
  await request(swift.url, 'PUT', '/v1/AUTH_test/bench/big', { ...auth, 'content-length': String(BIG) }, big);

  // Timed requests come from a client process of its own (bench/client-process.js), as real
  // clients do: sandlet's process then does only sandlet's work.
  const obj = (base, name) => `${base}/v1/AUTH_test/bench/${name}`;
  const paths = {
    direct: { base: swift.url, headers: auth },
    passthrough: { base: door.url, headers: auth },
    identity: { base: door.url, headers: { ...auth, 'x-run-storlet': 'identity.mjs' } },
  };
  const targets = (name) => Object.values(paths).map((p) => ({ url: obj(p.base, name), headers: p.headers }));
  await client.series(targets('small'), 200); // warm: daemon, sockets
  const best = await bestRates(client, Object.fromEntries(Object.entries(paths).map(([name, p]) => [name, { url: obj(p.base, 'big'), headers: p.headers }])), BIG);
  await client.series(targets('small'), WARM_GETS); // past V8's warm-up (client-process-driver.js)
  const series = await client.series(targets('small'), N);
  const times = Object.fromEntries(Object.keys(paths).map((name, k) => [name, series[k]]));
  const lat = Object.fromEntries(Object.entries(times).map(([k, v]) => {
    const s = [...v].sort((a, b) => a - b);
    return [k, { p50: quantile(s, 0.5), p99: quantile(s, 0.99) }];
  }));
  const pct = (k) => (100 * best[k]) / best.direct;
  const added = (k) => lat[k].p50 - lat.direct.p50;
  if (process.env.BENCH_JSON) {
    process.stdout.write(`${JSON.stringify({ bigBytes: BIG, mbps: best, latency: lat })}\n`);
  } else {
    console.log(`Swift front door (${gw.backendName} backend), ${(BIG / 2 ** 20).toFixed(0)} MiB GET x ${BIG_ROUNDS} (best, after 1 untimed), ${N} x 1 KiB GET after ${WARM_GETS} warm-up, interleaved`);
    console.log(`  direct to Swift (baseline)  ${best.direct.toFixed(0)} MB/s   1 KiB p50 ${ms(lat.direct.p50)}  p99 ${ms(lat.direct.p99)}`);
    console.log(`  sandlet passthrough         ${best.passthrough.toFixed(0)} MB/s = ${pct('passthrough').toFixed(0)} % (target ≥ 90 %)   p50 ${ms(lat.passthrough.p50)} (+${ms(added('passthrough'))}, target ≤ 1 ms)  p99 ${ms(lat.passthrough.p99)}`);
    console.log(`  identity storlet            ${best.identity.toFixed(0)} MB/s = ${pct('identity').toFixed(0)} % (target ≥ 80 %)   p50 ${ms(lat.identity.p50)} (+${ms(added('identity'))}, target ≤ 2 ms)  p99 ${ms(lat.identity.p99)}`);
  }
} finally {
  client.close();
  agent.destroy();
  await door.close();
  await gw.close({ stopSandboxes: true });
  await swift.stop();
  fs.rmSync(root, { recursive: true, force: true });
}
