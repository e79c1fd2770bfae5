// npm run bench: sandlet's invocation path beside baselines measured in the same run.
//   warm invocation latency, 1 KiB through identity (p50/p99 over 2,000)  target p50 ≤ 0.5 ms, p99 ≤ 2 ms
//     measured twice: the first 2,000 after the daemon started (JIT still compiling), then
//     2,000 after BENCH_WARM (6,000) more (steady state, which the target is about)
//   identity throughput on 1 GiB, beside `dd | cat | cat`                  target ≥ 70% of the raw pipe
//     best of BENCH_ROUNDS (3) interleaved rounds each, the first round's figure printed beside
//   SBus PING round trip (p50/p99 over 5,000)
//   the same invocation and PING with the caller idle 5 ms between calls (p50 over 500 each), as
//   a door's calls come: a process woken from idle costs more on a VM than one kept busy
//   Python (Storlets API) identity, warm 1 KiB p50/p99                     target p50 ≤ 1 ms
//   a Python daemon's start (START_DAEMON until it answers, p50 over 10)   target ≤ 100 ms
//   throughput of the Python identity and of an exec `cat`, beside `dd | cat | cat`  target ≥ 70%
// Options (env): BENCH_N (invocations), BENCH_GIB (GiB for throughput), BENCH_ROUNDS (rounds of
// the throughput runs), BENCH_BACKEND (process |
// docker; default process), BENCH_JSON=1 (one JSON line).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { createGateway } from '../dist/index.js';
import { SAMPLES_DIR } from '../dist/package-root.js';

const N = Number(process.env.BENCH_N ?? 2000);
const WARM = Number(process.env.BENCH_WARM ?? 6000);
const GIB = Number(process.env.BENCH_GIB ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOTAL = GIB * 1024 * 1024 * 1024;
const BACKEND = process.env.BENCH_BACKEND ?? 'process';

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const f = (ms) => `${ms.toFixed(3)} ms`;

async function drain(stream) {
  let n = 0;
  for await (const c of stream) n += c.length;
  return n;
}

function zeros(total, chunk = 1024 * 1024) {
  const buf = Buffer.alloc(chunk);
  let sent = 0;
  return new Readable({
    highWaterMark: chunk,
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(chunk, total - sent);
      sent += n;
      this.push(n === chunk ? buf : buf.subarray(0, n));
    },
  });
}

function rawPipeMBps() {
  const t = process.hrtime.bigint();
  execFileSync('sh', ['-c', `dd if=/dev/zero bs=1M count=${GIB * 1024} status=none | cat | cat > /dev/null`]);
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  return TOTAL / 1e6 / s;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
const gw = createGateway(
  { host_root: root, backend: BACKEND, container_prefix: 'sandlet-bench-', log_level: 'warn' },
  { logger: pino({ level: 'warn' }) },
);
const results = {};
try {
  await gw.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), {
    kind: 'storlet', name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no',
  });
  await gw.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.py')), {
    kind: 'storlet', name: 'identity.py', language: 'python', main: 'identity.IdentityStorlet', interfaceVersion: '1.0', objectMetadata: 'no',
  });
  await gw.deploy(Buffer.from('#!/bin/sh\nexec cat\n'), {
    kind: 'storlet', name: 'cat.sh', language: 'exec', main: 'cat.sh', interfaceVersion: '1.0', objectMetadata: 'no',
  });
  const kib = Buffer.alloc(1024, 7);
  const once = async (storlet = 'identity.mjs') => {
    const r = await gw.invoke({ scope: 'bench', storlet, input: kib });
    return drain(r.body);
  };
  for (let i = 0; i < 200; i++) await once(); // sandbox and daemon started

  const measure = async (storlet) => {
    const lat = [];
    for (let i = 0; i < N; i++) {
      const t = process.hrtime.bigint();
      await once(storlet);
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return lat.sort((a, b) => a - b);
  };
  // The first N after start-up still pay for JIT compilation in three threads (gateway, daemon,
  // task worker) sharing the CPUs; a gateway in service is past that, and the target is about it.
  const early = await measure();
  // Windows of 2,000 after those kept improving until about 6,000 calls (p99 2.0–2.6, then
  // 1.0–1.7, then 0.7–1.5 ms): V8 was still optimizing the three threads' per-call code.
  for (let i = 0; i < WARM; i++) await once();
  const steady = await measure();
  results.invoke_early_p50_ms = quantile(early, 0.5);
  results.invoke_early_p99_ms = quantile(early, 0.99);
  results.invoke_p50_ms = quantile(steady, 0.5);
  results.invoke_p99_ms = quantile(steady, 0.99);

  // Over the sandbox's control channel, as the gateway sends every command (there are no pipe paths).
  const daemon = gw.sandbox('bench').daemonClient('identity.mjs');
  const ping = [];
  for (let i = 0; i < 5000; i++) {
    const t = process.hrtime.bigint();
    await daemon.ping();
    ping.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ping.sort((a, b) => a - b);
  results.ping_p50_ms = quantile(ping, 0.5);
  results.ping_p99_ms = quantile(ping, 0.99);

  // One call every 5 ms, every process idle in between (as a front door's calls come, each after
  // an upstream round trip): each wake-up then finds a cold CPU, which on a VM is an exit to the host.
  const idle = async (call) => {
    const lat = [];
    for (let i = 0; i < 500; i++) {
      await new Promise((r) => setTimeout(r, 5));
      const t = process.hrtime.bigint();
      await call();
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return lat.sort((a, b) => a - b);
  };
  const idleInvoke = await idle(() => once());
  const idlePing = await idle(() => daemon.ping());
  results.invoke_idle_p50_ms = quantile(idleInvoke, 0.5);
  results.invoke_idle_p99_ms = quantile(idleInvoke, 0.99);
  results.ping_idle_p50_ms = quantile(idlePing, 0.5);

  // Python: the Storlets-API identity, warm (its daemon forks a child per task).
  for (let i = 0; i < 200; i++) await once('identity.py');
  const py = await measure('identity.py');
  results.python_invoke_p50_ms = quantile(py, 0.5);
  results.python_invoke_p99_ms = quantile(py, 0.99);
  await once('cat.sh');

  // 1 GiB through each storlet and through the raw pipe, ROUNDS times, interleaved; the best of
  // each is compared (as bench:swift and bench:s3 do), the first beside it: a gateway's first
  // bulk transfer still pays for compiling its bulk paths and growing its heap.
  const throughput = async (storlet) => {
    const t0 = process.hrtime.bigint();
    const out = await gw.invoke({ scope: 'bench', storlet, input: zeros(TOTAL) });
    const n = await drain(out.body);
    if (n !== TOTAL) throw new Error(`${storlet} returned ${n} of ${TOTAL} bytes`);
    return TOTAL / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const rates = { raw_pipe: [], identity: [], python_identity: [], exec_cat: [] };
  for (let round = 0; round < ROUNDS; round++) {
    rates.raw_pipe.push(rawPipeMBps());
    rates.identity.push(await throughput('identity.mjs'));
    rates.python_identity.push(await throughput('identity.py'));
    rates.exec_cat.push(await throughput('cat.sh'));
  }
  for (const [k, v] of Object.entries(rates)) {
    results[`${k}_MBps`] = Math.max(...v);
    results[`${k}_first_MBps`] = v[0];
  }
  results.throughput_ratio = results.identity_MBps / results.raw_pipe_MBps;
  results.python_throughput_ratio = results.python_identity_MBps / results.raw_pipe_MBps;
  results.exec_throughput_ratio = results.exec_cat_MBps / results.raw_pipe_MBps;

  // A Python daemon's start: STOP_DAEMON, then START_DAEMON as the gateway sends it (the factory
  // answers once the daemon imported the storlet and answered PING).
  const sandbox = gw.sandbox('bench');
  const factory = sandbox.factory; // the sandbox's own factory client (private in TypeScript only)
  const starts = [];
  for (let i = 0; i < 10; i++) {
    await factory.stopDaemon('identity.IdentityStorlet');
    const t0 = process.hrtime.bigint();
    const reply = await factory.startDaemon({
      daemon_language: 'python', storlet_path: sandbox.paths.sandboxStorletDir('identity.py'), storlet_name: 'identity.IdentityStorlet',
      uds_path: sandbox.paths.sandboxStorletPipe('identity.py'), log_level: 'warn', pool_size: 1,
    }, 20_000);
    starts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!reply.status) throw new Error(`python daemon did not start: ${reply.message}`);
  }
  starts.sort((a, b) => a - b);
  results.python_daemon_start_p50_ms = quantile(starts, 0.5);
  results.python_daemon_start_max_ms = starts[starts.length - 1];
} finally {
  await gw.close({ stopSandboxes: true });
  fs.rmSync(root, { recursive: true, force: true });
}

if (process.env.BENCH_JSON) {
  console.log(JSON.stringify(results));
} else {
  const ok = (cond) => (cond ? 'ok' : 'MISSED');
  console.log(`sandlet bench  (${BACKEND} backend, node ${process.version}, ${os.cpus().length} cpus, ${N} invocations, ${GIB} GiB)`);
  console.log(`warm invoke, 1 KiB identity   p50 ${f(results.invoke_p50_ms)}   p99 ${f(results.invoke_p99_ms)}   target p50 ≤ 0.5 ms ${ok(results.invoke_p50_ms <= 0.5)}, p99 ≤ 2 ms ${ok(results.invoke_p99_ms <= 2)}   (${N} after ${200 + N + WARM} calls)`);
  console.log(`  … first ${N} after start    p50 ${f(results.invoke_early_p50_ms)}   p99 ${f(results.invoke_early_p99_ms)}   (JIT still warming up)`);
  console.log(`SBus PING round trip          p50 ${f(results.ping_p50_ms)}   p99 ${f(results.ping_p99_ms)}`);
  console.log(`  … one every 5 ms (idle between): invoke p50 ${f(results.invoke_idle_p50_ms)}  p99 ${f(results.invoke_idle_p99_ms)}   PING p50 ${f(results.ping_idle_p50_ms)}`);
  const first = (k) => `(first ${results[`${k}_first_MBps`].toFixed(0)})`;
  console.log(`throughput, best of ${ROUNDS} rounds, interleaved:`);
  console.log(`throughput, identity          ${results.identity_MBps.toFixed(0)} MB/s   ${first('identity')}`);
  console.log(`throughput, dd | cat | cat    ${results.raw_pipe_MBps.toFixed(0)} MB/s   ${first('raw_pipe')}   (baseline, same run)`);
  console.log(`ratio                         ${(results.throughput_ratio * 100).toFixed(0)}%   target ≥ 70% ${ok(results.throughput_ratio >= 0.7)}`);
  console.log(`python warm invoke, 1 KiB     p50 ${f(results.python_invoke_p50_ms)}   p99 ${f(results.python_invoke_p99_ms)}   target p50 ≤ 1 ms ${ok(results.python_invoke_p50_ms <= 1)}`);
  console.log(`python daemon start           p50 ${f(results.python_daemon_start_p50_ms)}   max ${f(results.python_daemon_start_max_ms)}   target ≤ 100 ms ${ok(results.python_daemon_start_p50_ms <= 100)}`);
  console.log(`throughput, python identity   ${results.python_identity_MBps.toFixed(0)} MB/s   ${first('python_identity')}   ${(results.python_throughput_ratio * 100).toFixed(0)}%   target ≥ 70% ${ok(results.python_throughput_ratio >= 0.7)}`);
  console.log(`throughput, exec cat          ${results.exec_cat_MBps.toFixed(0)} MB/s   ${first('exec_cat')}   ${(results.exec_throughput_ratio * 100).toFixed(0)}%   target ≥ 70% ${ok(results.exec_throughput_ratio >= 0.7)}`);
}
