// npm run bench:docker: Docker sandboxes per runtime tier (runc, and runsc when Docker knows it),
// each beside `docker run --rm` of the same image under the same runtime, in the same run.
//   cold start: no container → first output byte of an identity invocation (p50 over BENCH_COLD_N)
//     beside `docker run --rm --entrypoint true <engine image>`     target (runc) ≤ 1.5 × that baseline
//   warm invocation: first byte of a small identity invocation, p50 and p99 over BENCH_WARM_N
//   identity throughput: BENCH_MB MiB through the identity storlet (input pipe → sandbox → output)
//   daemon restart after a storlet update (runc): (update + invoke) − warm invoke (p50)   target ≤ 100 ms
//     measured with updates 0.5 s apart (the factory boots its next blank worker in between), and
//     back to back (the next blank worker may still be booting), for the worst case.
// BENCH_RUNTIMES=runc,runsc picks the tiers; no target for runsc yet.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createGateway } from '../dist/index.js';
import { SAMPLES_DIR } from '../dist/package-root.js';

const N = Number(process.env.BENCH_COLD_N ?? 10);
const WARM_N = Number(process.env.BENCH_WARM_N ?? 200);
const MB = Number(process.env.BENCH_MB ?? 64);
const IMAGE = process.env.BENCH_IMAGE ?? 'sandlet/engine:latest';
const known = JSON.parse(execFileSync('docker', ['info', '--format', '{{json .Runtimes}}'], { encoding: 'utf8' }));
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? ['runc', 'runsc'].filter((r) => r in known).join(',')).split(',').filter(Boolean);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const p50 = (xs) => pct(xs, 0.5);
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
const identity = fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs'));

async function tier(runtime) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
  const gw = createGateway(
    { host_root: root, backend: 'docker', default_container_image_name: IMAGE, container_prefix: `sandlet-bench-${runtime}-`, idle_timeout: 0, container_runtime: runtime },
    { logger: pino({ level: 'warn' }) },
  );
  // Through the gateway: the next invocation asks the store at once (whatever cache_ttl says).
  const deploy = (content) =>
    gw.deploy(content, { kind: 'storlet', name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no' });
  async function firstByte(scope, input = Buffer.from('x')) {
    const t = process.hrtime.bigint();
    const r = await gw.invoke({ scope, storlet: 'identity.mjs', input });
    let at;
    for await (const _ of r.body) at ??= ms(t);
    return at;
  }
  const results = { runtime };
  try {
    await deploy(identity);
    const run = ['run', '--rm', '--runtime', runtime, '--network', 'none', '--entrypoint', 'true', IMAGE];
    execFileSync('docker', run); // warm the engine's caches
    const baseline = [];
    for (let i = 0; i < N; i++) {
      const t = process.hrtime.bigint();
      execFileSync('docker', run);
      baseline.push(ms(t));
    }
    const cold = [];
    for (let i = 0; i < N; i++) {
      cold.push(await firstByte(`cold${i}`));
      await gw.sandbox(`cold${i}`).stop('bench');
    }
    results.docker_run_p50_ms = p50(baseline);
    results.cold_start_p50_ms = p50(cold);
    results.cold_ratio = results.cold_start_p50_ms / results.docker_run_p50_ms;

    for (let i = 0; i < 20; i++) await firstByte('warm');
    const warm = [];
    for (let i = 0; i < WARM_N; i++) warm.push(await firstByte('warm'));
    results.warm_invoke_p50_ms = p50(warm);
    results.warm_invoke_p99_ms = pct(warm, 0.99);

    const big = Buffer.alloc(MB * 1024 * 1024, 7);
    const t = process.hrtime.bigint();
    const r = await gw.invoke({ scope: 'warm', storlet: 'identity.mjs', input: big });
    let bytes = 0;
    for await (const chunk of r.body) bytes += chunk.length;
    if (bytes !== big.length) throw new Error(`identity returned ${bytes} of ${big.length} bytes`);
    results.identity_mb_per_s = MB / (ms(t) / 1000);

    if (runtime === 'runc') {
      const update = async (i) => {
        await deploy(Buffer.concat([identity, Buffer.from(`\n// version ${i}\n`)]));
        return firstByte('warm');
      };
      const spaced = [];
      for (let i = 0; i < N; i++) {
        await new Promise((r) => setTimeout(r, 500));
        spaced.push(await update(i));
      }
      const backToBack = [];
      for (let i = 0; i < N; i++) backToBack.push(await update(N + i));
      results.daemon_restart_p50_ms = p50(spaced) - results.warm_invoke_p50_ms;
      results.daemon_restart_back_to_back_p50_ms = p50(backToBack) - results.warm_invoke_p50_ms;
    }
  } finally {
    await gw.close({ stopSandboxes: true });
    fs.rmSync(root, { recursive: true, force: true });
  }
  return results;
}

const all = [];
for (const runtime of RUNTIMES) all.push(await tier(runtime));

if (process.env.BENCH_JSON) console.log(JSON.stringify(all));
else {
  const ok = (c) => (c ? 'ok' : 'MISSED');
  console.log(`sandlet docker bench  (${IMAGE}, ${N} cold starts, ${WARM_N} warm invocations, ${MB} MiB identity)`);
  for (const r of all) {
    console.log(`\n[${r.runtime}]`);
    console.log(`docker run --rm … true        p50 ${r.docker_run_p50_ms.toFixed(0)} ms   (baseline, same runtime, same run)`);
    const target = r.runtime === 'runc' ? `target ≤ 1.5 × ${ok(r.cold_ratio <= 1.5)}` : '(no target yet)';
    console.log(`cold start → first byte       p50 ${r.cold_start_p50_ms.toFixed(0)} ms   ${r.cold_ratio.toFixed(2)} × baseline, ${target}`);
    console.log(`warm invoke                   p50 ${r.warm_invoke_p50_ms.toFixed(2)} ms   p99 ${r.warm_invoke_p99_ms.toFixed(2)} ms`);
    console.log(`identity throughput           ${r.identity_mb_per_s.toFixed(0)} MB/s`);
    if (r.daemon_restart_p50_ms !== undefined) {
      console.log(`daemon restart after update   p50 ${r.daemon_restart_p50_ms.toFixed(0)} ms   target ≤ 100 ms ${ok(r.daemon_restart_p50_ms <= 100)}`);
      console.log(`  … updates back to back      p50 ${r.daemon_restart_back_to_back_p50_ms.toFixed(0)} ms   (next blank worker may still be booting)`);
    }
  }
}
