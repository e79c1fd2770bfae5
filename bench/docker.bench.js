// npm run bench:docker: Docker sandbox start-up beside `docker run` of the same image, same run.
//   cold start: no container → first output byte of an identity invocation (p50 over BENCH_COLD_N)
//     beside `docker run --rm --entrypoint true <engine image>`     target ≤ 1.5 × that baseline
//   daemon restart after a storlet update: (update + invoke) − warm invoke (p50)   target ≤ 100 ms
//     measured with updates 0.5 s apart (the factory boots its next blank worker in between), and
//     back to back (the next blank worker may still be booting), for the worst case.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createGateway } from '../dist/index.js';
import { SAMPLES_DIR } from '../dist/package-root.js';

const N = Number(process.env.BENCH_COLD_N ?? 10);
const IMAGE = process.env.BENCH_IMAGE ?? 'sandlet/engine:latest';
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
const gw = createGateway(
  { host_root: root, backend: 'docker', default_container_image_name: IMAGE, container_prefix: 'sandlet-bench-', idle_timeout: 0 },
  { logger: pino({ level: 'warn' }) },
);
const identity = fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs'));
// Through the gateway: the next invocation asks the store at once (whatever cache_ttl says).
const deploy = (content) =>
  gw.deploy(content, { kind: 'storlet', name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no' });
async function firstByte(scope) {
  const t = process.hrtime.bigint();
  const r = await gw.invoke({ scope, storlet: 'identity.mjs', input: Buffer.from('x') });
  let at;
  for await (const _ of r.body) at ??= ms(t);
  return at;
}

const results = {};
try {
  await deploy(identity);
  execFileSync('docker', ['run', '--rm', '--entrypoint', 'true', IMAGE]); // warm the engine's caches
  const baseline = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    execFileSync('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'true', IMAGE]);
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

  const warm = [];
  for (let i = 0; i < 50; i++) warm.push(await firstByte('warm'));
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
  results.warm_invoke_p50_ms = p50(warm);
  results.daemon_restart_p50_ms = p50(spaced) - results.warm_invoke_p50_ms;
  results.daemon_restart_back_to_back_p50_ms = p50(backToBack) - results.warm_invoke_p50_ms;
} finally {
  await gw.close({ stopSandboxes: true });
  fs.rmSync(root, { recursive: true, force: true });
}

if (process.env.BENCH_JSON) console.log(JSON.stringify(results));
else {
  const ok = (c) => (c ? 'ok' : 'MISSED');
  console.log(`sandlet docker bench  (${IMAGE}, ${N} cold starts)`);
  console.log(`docker run --rm … true        p50 ${results.docker_run_p50_ms.toFixed(0)} ms   (baseline, same run)`);
  console.log(`cold start → first byte       p50 ${results.cold_start_p50_ms.toFixed(0)} ms   ${results.cold_ratio.toFixed(2)} × baseline, target ≤ 1.5 × ${ok(results.cold_ratio <= 1.5)}`);
  console.log(`warm invoke                   p50 ${results.warm_invoke_p50_ms.toFixed(2)} ms`);
  console.log(`daemon restart after update   p50 ${results.daemon_restart_p50_ms.toFixed(0)} ms   target ≤ 100 ms ${ok(results.daemon_restart_p50_ms <= 100)}`);
  console.log(`  … updates back to back      p50 ${results.daemon_restart_back_to_back_p50_ms.toFixed(0)} ms   (next blank worker may still be booting)`);
}
