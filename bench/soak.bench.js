// npm run soak: a long mixed load on a real `sandlet serve` process, then whether the server and
// the agent came back to where they were. Successes, storlet errors, timeouts, uploads and
// downloads aborted mid-body (raw sockets destroyed) and readers that leave, at a bounded
// concurrency; fds, threads and RSS of the server and of the agent sampled after warm-up and at
// the end (after a quiet moment), as a before/after/delta table, with every call's outcome counted.
//   target: fds and threads flat, RSS within noise
// Options (env): SOAK_N (calls, default 5000), SOAK_BACKEND (process, default, or docker),
// SOAK_CONCURRENCY (default 8), SOAK_IMAGE (docker: the engine image, default the config's;
// build one from this tree with `sandlet image build --tag ...`), SOAK_JSON=1 (one JSON line).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../dist/package-root.js';
import { KINDS, newlyOpen, runSoak, sampleAll, startSoakServer } from './soak-lib.js';

const N = Number(process.env.SOAK_N ?? 5000);
const BACKEND = process.env.SOAK_BACKEND ?? 'process';
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 8);
const WARMUP = Math.min(400, Math.max(100, Math.floor(N / 10)));

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-soak-'));
const s = await startSoakServer({ root, backend: BACKEND, packageRoot: PACKAGE_ROOT, image: process.env.SOAK_IMAGE });
try {
  process.stderr.write(`soak: ${BACKEND} backend, server pid ${s.pid}; warm-up ${WARMUP} calls\n`);
  const warm = await runSoak(s, WARMUP, CONCURRENCY);
  const before = await sampleAll(s);
  process.stderr.write(`soak: ${N} calls at concurrency ${CONCURRENCY}\n`);
  const t0 = performance.now();
  const main = await runSoak(s, N, CONCURRENCY, (done) => {
    if (done % 500 === 0) process.stderr.write(`  ${done}/${N}\n`);
  });
  const seconds = (performance.now() - t0) / 1000;
  const after = await sampleAll(s);
  const unexpected = [...warm.unexpected, ...main.unexpected];
  const rows = [];
  for (const who of Object.keys(before)) {
    for (const what of ['fds', 'threads', 'rssMiB']) {
      const b = before[who][what];
      const a = after[who]?.[what];
      rows.push({ who, what, before: b, after: a, delta: a === undefined ? undefined : +(a - b).toFixed(1) });
    }
  }
  if (process.env.SOAK_JSON) {
    process.stdout.write(`${JSON.stringify({ backend: BACKEND, n: N, seconds, counts: main.counts, unexpected, rows })}\n`);
  } else {
    console.log(`${N} mixed calls over HTTP, ${BACKEND} backend, concurrency ${CONCURRENCY}, ${seconds.toFixed(0)} s (after ${WARMUP} warm-up calls)`);
    console.log('\noutcomes (kind: outcome × count)');
    for (const kind of Object.keys(KINDS)) {
      const got = Object.entries(main.counts[kind] ?? {}).map(([o, c]) => `${o} × ${c}`).join(', ');
      console.log(`  ${kind.padEnd(16)} ${got}`);
    }
    console.log(unexpected.length ? `\nUNEXPECTED outcomes (${unexpected.length}):` : '\nunexpected outcomes: none');
    for (const u of unexpected.slice(0, 50)) console.log(`  ${u}`);
    // What the server logged at warn and above, by message: daemon stops, tasks that did not end.
    const said = {};
    for (const line of s.stderr().split('\n')) {
      if (!line.startsWith('{')) continue;
      const { msg, unanswered } = JSON.parse(line);
      if (msg === 'invocation failed') continue;
      const key = unanswered ? `${msg} (${unanswered})` : msg;
      said[key] = (said[key] ?? 0) + 1;
    }
    console.log('\nserver warnings (besides each failed invocation):');
    for (const [msg, n] of Object.entries(said)) console.log(`  ${n} × ${msg}`);
    console.log('\nprocess         measure   after warm-up     at the end        delta');
    for (const r of rows) {
      console.log(`  ${r.who.padEnd(14)}${r.what.padEnd(10)}${String(r.before).padStart(10)}${String(r.after ?? 'gone').padStart(18)}${String(r.delta ?? '-').padStart(13)}`);
    }
    for (const who of Object.keys(before)) {
      const extra = after[who] ? newlyOpen(before[who], after[who]) : [];
      if (extra.length) console.log(`  ${who}: open at the end, not after warm-up: ${extra.join(', ')}`);
    }
  }
  process.exitCode = unexpected.length ? 1 : 0;
} finally {
  await s.stop();
  try {
    fs.rmSync(root, { recursive: true, force: true });
  } catch {
    // Docker sandboxes write as another uid; what is left is removed as root, or stays in /tmp.
    execFileSync('rm', ['-rf', root]);
  }
}
