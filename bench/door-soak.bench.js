// npm run soak:door: a long mixed load through the Swift front door of a real `sandlet serve
// --upstream` process (process backend) in front of a local Swift, then the server's and the
// agent's fds and threads beside their values after warm-up. The mix: passthrough GETs small and
// large (pumped), storlet GETs small and large (pumped into and out of the storlet), storlet
// failures before and after output, timeouts, clients that leave mid-download (passthrough and
// storlet) and mid-upload (a PUT through a storlet). Options (env): SOAK_N (default 3000),
// SOAK_CONCURRENCY (8).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSwift, swiftToken, SWIFT_USERS } from '../scripts/local-swift.mjs';

const N = Number(process.env.SOAK_N ?? 3000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 8);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIG = 2 * 1024 * 1024;
const TIMEOUT_MS = 2000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function sample(pid) {
  return { fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads: fs.readdirSync(`/proc/${pid}/task`).length };
}

function agentPid(serverPid) {
  for (const tid of fs.readdirSync(`/proc/${serverPid}/task`)) {
    for (const kid of fs.readFileSync(`/proc/${serverPid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      if (fs.readFileSync(`/proc/${kid}/cmdline`, 'utf8').includes('factory')) return Number(kid);
    }
  }
  throw new Error('no agent process under the server');
}

/** One raw HTTP exchange; `cut` ends it early from the client's side. Resolves with the status line and byte count. */
function exchange(port, head, { body, cut } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let bytes = 0;
    let first = '';
    s.on('error', () => {});
    s.on('data', (c) => {
      if (!first) first = c.subarray(0, 12).toString('latin1');
      bytes += c.length;
      if (cut === 'download' && bytes > 256 * 1024) s.destroy();
    });
    s.on('close', () => resolve({ status: first.slice(9, 12) || 'cut', bytes }));
    s.write(head);
    if (cut === 'upload') {
      s.write(Buffer.alloc(300 * 1024, 1)); // of a body announced far longer
      setTimeout(() => s.destroy(), 30);
    } else if (body) s.write(body);
  });
}

const swift = await startSwift();
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-door-soak-'));
let server;
try {
  const port = await freePort();
  fs.writeFileSync(path.join(root, 'sandlet.yaml'), `host_root: ${root}\nstorlet_timeout_ms: ${TIMEOUT_MS}\nstorlet_daemon_thread_pool_size: 4\nlog_level: warn\ncache_ttl: 60\n`);
  server = spawn(process.execPath, [path.join(ROOT, 'bin', 'sandlet.js'), 'serve', '--config', path.join(root, 'sandlet.yaml'), '--backend', 'process',
    '--listen-socket', path.join(root, 'api.sock'), '--upstream', swift.url, '--proxy-listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (c) => (stderr += c));
  for (let i = 0; i < 200 && !/serving on/.test(stderr); i++) await sleep(50);
  if (!/serving on/.test(stderr)) throw new Error(`sandlet serve did not start: ${stderr}`);

  const token = await swiftToken(`http://127.0.0.1:${port}`, SWIFT_USERS.admin);
  const base = `http://127.0.0.1:${port}/v1/AUTH_test`;
  const put = (p, body, headers = {}) => fetch(`${base}${p}`, { method: 'PUT', headers: { 'x-auth-token': token, ...headers }, body });
  await put('/storlet', '');
  await put('/data', '');
  const reg = (main) => ({ 'x-object-meta-storlet-language': 'js', 'x-object-meta-storlet-interface-version': '1.0', 'x-object-meta-storlet-object-metadata': 'no', 'x-object-meta-storlet-main': main });
  const misbehave = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'storlets', 'misbehave.mjs'));
  await put('/storlet/identity.mjs', fs.readFileSync(path.join(ROOT, 'samples', 'identity.mjs')), reg('identity.mjs'));
  await put('/storlet/misbehave.mjs', misbehave, reg('misbehave.mjs'));
  // Timeouts get a storlet of their own: three in a row stop its daemon (wedge protection).
  await put('/storlet/timeouts.mjs', misbehave, reg('timeouts.mjs'));
  await put('/data/small', Buffer.alloc(1024, 120));
  await put('/data/big', Buffer.alloc(BIG, 98));

  const get = (obj, storlet, params = {}) => {
    const q = new URLSearchParams(params).toString();
    return `GET /v1/AUTH_test/data/${obj}${q ? `?${q}` : ''} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Auth-Token: ${token}\r\n${storlet ? `X-Run-Storlet: ${storlet}\r\n` : ''}Connection: close\r\n\r\n`;
  };
  const KINDS = {
    pass_small: [14, () => exchange(port, get('small')), ['200']],
    pass_big: [8, () => exchange(port, get('big')), ['200']],
    storlet_small: [18, () => exchange(port, get('small', 'identity.mjs')), ['200']],
    storlet_big: [10, () => exchange(port, get('big', 'identity.mjs')), ['200']],
    fail_before: [8, () => exchange(port, get('small', 'misbehave.mjs', { mode: 'fail-before' })), ['502']],
    fail_after: [8, () => exchange(port, get('small', 'misbehave.mjs', { mode: 'fail-after' })), ['200']],
    timeout: [4, () => exchange(port, get('small', 'timeouts.mjs', { mode: 'stall-after' })), ['200']],
    cut_pass_download: [8, () => exchange(port, get('big'), { cut: 'download' }), ['200', 'cut']],
    cut_storlet_download: [10, () => exchange(port, get('big', 'identity.mjs'), { cut: 'download' }), ['200', 'cut']],
    cut_storlet_upload: [12, () => exchange(port, `PUT /v1/AUTH_test/data/up HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Auth-Token: ${token}\r\nX-Run-Storlet: identity.mjs\r\nContent-Length: ${BIG}\r\n\r\n`, { cut: 'upload' }), ['cut', '100']],
  };
  const total = Object.values(KINDS).reduce((a, [w]) => a + w, 0);
  const pick = (i) => {
    let x = (i * 7919) % total;
    for (const [name, [w]] of Object.entries(KINDS)) {
      if (x < w) return name;
      x -= w;
    }
    return 'pass_small';
  };
  const counts = {};
  const unexpected = [];
  const run = async (n) => {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const kind = pick(next++);
        const [, call, ok] = KINDS[kind];
        const r = await call();
        counts[kind] ??= {};
        counts[kind][r.status] = (counts[kind][r.status] ?? 0) + 1;
        if (!ok.includes(r.status)) unexpected.push(`${kind}: ${r.status}`);
      }
    }));
  };
  // Each daemon's idle pool filled alike before sampling: what it holds depends on its last calls.
  const settle = async () => {
    await sleep(TIMEOUT_MS + 5000); // cancelled tasks end; kept-alive upstream sockets expire (4 s)
    // Calls that hold a thread a while, so 8 at once need every thread of a pool of 4 (quick
    // ones can be served by fewer, and the pool is then sampled short).
    await Promise.all(Array.from({ length: 8 }, () => exchange(port, get('big', 'identity.mjs'))));
    await Promise.all(Array.from({ length: 8 }, () => exchange(port, get('small', 'misbehave.mjs', { mode: 'slow-small' }))));
    await Promise.all(Array.from({ length: 8 }, () => exchange(port, get('small', 'timeouts.mjs', { mode: 'slow-small' }))));
    await sleep(5000);
    return { server: sample(server.pid), agent: sample(agentPid(server.pid)) };
  };
  await run(300);
  const before = await settle();
  const started = Date.now();
  await run(N);
  const after = await settle();
  console.log(`front-door soak: ${N} calls through sandlet serve --upstream (process backend), concurrency ${CONCURRENCY}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const [k, v] of Object.entries(counts)) console.log(`  ${k.padEnd(22)} ${JSON.stringify(v)}`);
  console.log(`  server fds ${before.server.fds} → ${after.server.fds}, threads ${before.server.threads} → ${after.server.threads}`);
  console.log(`  agent  fds ${before.agent.fds} → ${after.agent.fds}, threads ${before.agent.threads} → ${after.agent.threads}`);
  if (unexpected.length) console.log(`  unexpected outcomes (${unexpected.length}): ${[...new Set(unexpected)].join(', ')}`);
  const flat = after.server.fds <= before.server.fds && after.server.threads <= before.server.threads && after.agent.fds <= before.agent.fds && after.agent.threads <= before.agent.threads;
  console.log(flat && unexpected.length === 0 ? '  flat' : '  NOT FLAT or unexpected outcomes');
  process.exitCode = flat && unexpected.length === 0 ? 0 : 1;
} finally {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  await swift.stop();
  fs.rmSync(root, { recursive: true, force: true });
}
