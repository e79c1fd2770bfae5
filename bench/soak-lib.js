// The mixed soak shared by `npm run soak` (bench/soak.bench.js) and its CI-sized version
// (test/server/soak.int.test.ts): a real `sandlet serve` process, the call mix, and /proc samples.
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';

/** Short enough that timeouts are cheap, long enough for a 1 MiB call on a loaded 2-core machine. */
export const STORLET_TIMEOUT_MS = 3000;
const SCOPE = 'soak';
const MIB = 1024 * 1024;
const SMALL = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(24));
const BIG = Buffer.alloc(MIB);
for (let i = 0; i < BIG.length; i++) BIG[i] = 97 + (i % 26);
/** A client's own bound on one call: a call still open after it is an unexpected outcome (hung). */
const CALL_DEADLINE_MS = 4 * STORLET_TIMEOUT_MS + 30_000;

/**
 * The mix: weight and the outcomes each kind may end with. `broken` is a 200 whose body broke off
 * (the storlet failed or timed out after its metadata went out); `left` is the client leaving.
 */
export const KINDS = {
  'ok-small': { weight: 26, expect: ['200'] },
  'ok-upper': { weight: 14, expect: ['200'] },
  'ok-1mib': { weight: 10, expect: ['200'] },
  'fail-before': { weight: 10, expect: ['502'] },
  'fail-after': { weight: 10, expect: ['broken'] },
  // On their own daemon, which the gateway stops after 3 timeouts in a row: a timeout call in
  // flight then may end cancelled (502) rather than timed out. A stall queued behind spinning
  // tasks (the pool is busy) times out before its metadata: 504.
  'timeout-stall': { weight: 5, expect: ['broken', '504', '502 cancelled'] },
  'timeout-spin': { weight: 1, expect: ['504', '502 cancelled'] },
  'abort-upload': { weight: 10, expect: ['left'] },
  'abort-download': { weight: 10, expect: ['left'] },
  'reader-leaves': { weight: 4, expect: ['left'] },
};
const WHEEL = Object.entries(KINDS).flatMap(([kind, k]) => Array(k.weight).fill(kind));

function bin(packageRoot) {
  return path.join(packageRoot, 'bin', 'sandlet.js');
}

/** Starts `sandlet serve` on a fresh root with the samples and misbehave.mjs deployed and an invoke token. */
export async function startSoakServer({ root, backend = 'process', packageRoot, image, logLevel = 'warn' }) {
  const id = `${process.pid}-${Date.now().toString(36)}`;
  const config = path.join(root, 'sandlet.yaml');
  fs.writeFileSync(config, [
    `host_root: ${root}`,
    `storlet_timeout_ms: ${STORLET_TIMEOUT_MS}`,
    `log_level: ${logLevel}`,
    // Unique per run: soaks in other worktrees on the same engine must not collide.
    `container_prefix: sl-soak-${id}-`,
    ...(image ? [`default_container_image_name: ${image}`] : []),
    '',
  ].join('\n'));
  const cli = (args) => execFileSync(process.execPath, [bin(packageRoot), ...args, '--config', config], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const samples = path.join(packageRoot, 'samples');
  const misbehave = path.join(packageRoot, 'test', 'fixtures', 'storlets', 'misbehave.mjs');
  for (const file of [...fs.readdirSync(samples).filter((f) => f.endsWith('.mjs')).map((f) => path.join(samples, f)), misbehave]) {
    cli(['deploy', file, '--backend', 'process']);
  }
  // Timeouts get a registration of their own: the gateway stops a daemon after 3 timeouts in a
  // row (wedge protection), which would otherwise also cut the error calls in flight beside them.
  cli(['deploy', misbehave, '--name', 'timeouts.mjs', '--backend', 'process']);
  const token = cli(['token', 'create', '--role', 'invoke', '--note', 'soak']).trim().split(/\s+/).find((w) => w.startsWith('sl_'));
  if (!token) throw new Error('`sandlet token create` printed no token');
  const socket = path.join(root, 'api.sock');
  const child = spawn(process.execPath, [bin(packageRoot), 'serve', '--config', config, '--backend', backend, '--listen-socket', socket, '--log-level', logLevel], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c.toString()));
  await new Promise((resolve, reject) => {
    const check = () => {
      if (!/serving on /.test(stderr)) return;
      child.stderr.off('data', check);
      resolve();
    };
    child.stderr.on('data', check);
    void exited.then((code) => reject(new Error(`sandlet serve exited (${code}) before serving: ${stderr}`)));
  });
  return {
    pid: child.pid,
    backend,
    socket,
    token,
    containerName: `sl-soak-${id}-${SCOPE}`,
    /** What the server wrote to stderr (warnings and errors). */
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      if (backend === 'docker') await new Promise((resolve) => execFile('docker', ['rm', '-f', `sl-soak-${id}-${SCOPE}`], () => resolve()));
    },
  };
}

function requestHead(s, storlet, { params = {}, length }) {
  const query = new URLSearchParams(params).toString();
  return {
    socketPath: s.socket,
    method: 'POST',
    path: `/v1/invoke/${SCOPE}/${storlet}${query ? `?${query}` : ''}`,
    headers: { authorization: `Bearer ${s.token}`, 'content-length': String(length) },
    agent: false,
  };
}

/** A whole call: the status, and whether the body came complete and as expected. */
function whole(s, storlet, body, { params, check } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    let answered = 'no answer';
    const req = http.request(requestHead(s, storlet, { params, length: body.length }), (res) => {
      answered = `answer ${res.statusCode}`;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const out = Buffer.concat(chunks);
        if (res.statusCode === 200 && check && !check(out)) resolve(`200 with a wrong body (${out.length} bytes)`);
        else if (res.statusCode === 200) resolve('200');
        else if (res.statusCode === 502 && storlet === 'timeouts.mjs' && /task was cancelled/.test(out.toString())) resolve('502 cancelled');
        else resolve({ outcome: String(res.statusCode), detail: out.toString('utf8').slice(0, 300) });
      });
      res.on('error', () => resolve(res.statusCode === 200 ? 'broken' : `${res.statusCode} broken`));
    });
    // The code is the outcome; when and whether an answer came helps tell a refusal from a drop.
    req.on('error', (err) => resolve({ outcome: `request error ${err.code ?? err.message}`, detail: `(${answered}, ${Math.round(performance.now() - started)} ms in)` }));
    req.end(body);
  });
}

/** Sends the headers and part of a 1 MiB body on a raw socket, then destroys it mid-body. */
function abortUpload(s) {
  return new Promise((resolve) => {
    const h = requestHead(s, 'identity.mjs', { length: BIG.length });
    const sock = net.connect(s.socket);
    sock.on('error', () => {});
    sock.on('data', () => {}); // an early answer (a refusal) would be read, not left in the buffer
    sock.once('connect', () => {
      const head = `POST ${h.path} HTTP/1.1\r\nhost: sandlet\r\n${Object.entries(h.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
      sock.write(head);
      sock.write(BIG.subarray(0, 256 * 1024), () => {
        // Let the server start the invocation on what it got, then leave mid-body.
        setTimeout(() => {
          sock.destroy();
          resolve('left');
        }, 10 + Math.floor(Math.random() * 30));
      });
    });
  });
}

/** Uploads 1 MiB whole, reads the first chunk of the answer, then destroys the socket mid-body. */
function abortDownload(s) {
  return new Promise((resolve) => {
    const req = http.request(requestHead(s, 'identity.mjs', { length: BIG.length }), (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return res.on('end', () => resolve(String(res.statusCode)));
      }
      res.once('data', () => {
        req.socket.destroy();
        resolve('left');
      });
      res.on('error', () => {});
      res.on('end', () => resolve('200 before the client could leave'));
    });
    req.on('error', () => {});
    req.end(BIG);
  });
}

/** Sends a storlet that stalls its output, never reads it, and leaves once the headers are in. */
function readerLeaves(s) {
  return new Promise((resolve) => {
    const req = http.request(requestHead(s, 'misbehave.mjs', { params: { mode: 'stall-after' }, length: SMALL.length }), (res) => {
      res.pause();
      setTimeout(() => {
        req.socket.destroy();
        resolve(res.statusCode === 200 ? 'left' : String(res.statusCode));
      }, 20 + Math.floor(Math.random() * 100));
    });
    req.on('error', () => {});
    req.end(SMALL);
  });
}

const upper = SMALL.toString().toUpperCase();
const CALLS = {
  'ok-small': (s) => whole(s, 'identity.mjs', SMALL, { check: (b) => b.equals(SMALL) }),
  'ok-upper': (s) => whole(s, 'uppercase.mjs', SMALL, { check: (b) => b.toString() === upper }),
  'ok-1mib': (s) => whole(s, 'identity.mjs', BIG, { check: (b) => b.equals(BIG) }),
  'fail-before': (s) => whole(s, 'misbehave.mjs', SMALL, { params: { mode: 'fail-before' } }),
  'fail-after': (s) => whole(s, 'misbehave.mjs', SMALL, { params: { mode: 'fail-after' } }),
  'timeout-stall': (s) => whole(s, 'timeouts.mjs', SMALL, { params: { mode: 'stall-after' } }),
  'timeout-spin': (s) => whole(s, 'timeouts.mjs', SMALL, { params: { mode: 'busy-loop' } }),
  'abort-upload': abortUpload,
  'abort-download': abortDownload,
  'reader-leaves': readerLeaves,
};

/**
 * `n` calls of the mix (kinds spread evenly, in a shuffled order) at a bounded concurrency.
 * Returns outcome counts per kind and each unexpected outcome as one line.
 */
export async function runSoak(s, n, concurrency = 8, onProgress) {
  const kinds = Array.from({ length: n }, (_, i) => WHEEL[i % WHEEL.length]);
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
  }
  const counts = {};
  const unexpected = [];
  const queue = new PQueue({ concurrency });
  let done = 0;
  for (const [i, kind] of kinds.entries()) {
    void queue.add(async () => {
      let timer;
      const deadline = new Promise((resolve) => (timer = setTimeout(() => resolve('hung (no end within the client deadline)'), CALL_DEADLINE_MS)));
      const got = await Promise.race([CALLS[kind](s), deadline]);
      clearTimeout(timer);
      // An error answer carries its body, shown only when the outcome was not expected.
      const { outcome, detail } = typeof got === 'string' ? { outcome: got } : got;
      (counts[kind] ??= {})[outcome] = (counts[kind][outcome] ?? 0) + 1;
      if (!KINDS[kind].expect.includes(outcome)) unexpected.push(`call ${i} ${kind}: ${outcome}${detail ? ` ${detail}` : ''}`);
      onProgress?.(++done);
    });
  }
  await queue.onIdle();
  return { counts, unexpected };
}

/**
 * One call held open: the body's first half goes and the answer's headers come back (the task runs
 * on a worker); the rest of the body goes only once `release` resolves.
 */
function heldCall(s, storlet, params, expected, release) {
  const body = BIG.subarray(0, 128 * 1024); // over 64 KiB: streamed, not read whole first
  let headersIn;
  const running = new Promise((r) => (headersIn = r));
  const done = new Promise((resolve) => {
    const req = http.request(requestHead(s, storlet, { params, length: body.length }), (res) => {
      headersIn();
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const out = Buffer.concat(chunks);
        resolve(res.statusCode === 200 && out.equals(expected(body)) ? '' : `${storlet}: ${res.statusCode} ${res.statusCode === 200 ? 'wrong body' : out.toString().slice(0, 200)}`);
      });
      res.on('error', () => resolve(`${storlet}: ${res.statusCode} broken`));
    });
    req.on('error', (err) => resolve(`${storlet}: ${err.message}`));
    req.write(body.subarray(0, 64 * 1024));
    void release.then(() => req.end(body.subarray(64 * 1024)));
  });
  void done.then(() => headersIn()); // a call that failed outright is not waited for
  return { running, done };
}

/**
 * Brings the idle pool of every daemon the mix uses to pool_size (4, the default), so that samples
 * compare like with like: a pool holds 0 to pool_size idle workers (threads), depending on what the
 * last calls did (a timed-out task's worker is terminated, the next one started lazily). Four calls
 * per storlet held at once need four workers each; released together, each pool keeps four.
 */
export async function fillPools(s, poolSize = 4) {
  // A round can be cut by the gateway stopping a daemon it deems wedged (its calls end 502):
  // that is worth a line, and another round.
  let failures = [];
  for (let round = 0; round < 3; round++) {
    failures = await fillPoolsOnce(s, poolSize);
    if (failures.length === 0) return;
    process.stderr.write(`soak: a pool-filling round failed: ${failures.join('; ')}\n`);
  }
  throw new Error(`pool-filling calls failed: ${failures.join('; ')}`);
}

async function fillPoolsOnce(s, poolSize) {
  let release;
  const gate = new Promise((r) => (release = r));
  const same = (b) => b;
  const up = (b) => Buffer.from(b.toString('latin1').toUpperCase(), 'latin1');
  const calls = [];
  for (const [storlet, params, expected] of [['identity.mjs', {}, same], ['uppercase.mjs', {}, up], ['misbehave.mjs', { mode: 'echo' }, same], ['timeouts.mjs', { mode: 'echo' }, same]]) {
    for (let i = 0; i < poolSize; i++) calls.push(heldCall(s, storlet, params, expected, gate));
  }
  await Promise.all(calls.map((c) => c.running));
  release();
  return (await Promise.all(calls.map((c) => c.done))).filter(Boolean);
}

/** What the process's fds name, pipes and sockets by kind only (their numbers change from call to call). */
function openFiles(pid) {
  const out = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(fs.readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/^(\w+):\[\d+\]$/, '$1'));
    } catch {
      // closed while we looked
    }
  }
  return out;
}

/** What `after` has open beyond `before` (from sampleAll), as `name × count`: where a leak lies. */
export function newlyOpen(before, after) {
  const left = new Map();
  for (const f of before.open) left.set(f, (left.get(f) ?? 0) + 1);
  const extra = new Map();
  for (const f of after.open) {
    if ((left.get(f) ?? 0) > 0) left.set(f, left.get(f) - 1);
    else extra.set(f, (extra.get(f) ?? 0) + 1);
  }
  return [...extra].map(([f, n]) => `${f} × ${n}`);
}

function sample(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    open: openFiles(pid),
    fds: fs.readdirSync(`/proc/${pid}/fd`).length,
    threads: fs.readdirSync(`/proc/${pid}/task`).length,
    rssMiB: +(Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024).toFixed(1),
  };
}

function children(pid) {
  const out = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/** The agent's pid: the server's child (process backend) or the container's first process (docker). */
export function agentPid(s) {
  if (s.backend === 'docker') return Number(execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', s.containerName], { encoding: 'utf8' }).trim());
  const kids = children(s.pid).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('factory'));
  if (kids.length !== 1) throw new Error(`expected one agent process under the server, found ${kids.length}`);
  return kids[0];
}

/**
 * fds, threads and RSS of the server and the agent, after a quiet moment (long enough for the
 * gateway and the agent to finish closing what the last calls left: cancelled tasks report done,
 * their fds close) and with every pool filled (fillPools).
 */
export async function sampleAll(s, quietMs = 3000) {
  await sleep(quietMs);
  await fillPools(s);
  await sleep(500); // the released workers' last messages and fd closes
  // Then until two readings 200 ms apart agree on fds and threads (a loaded machine may still be
  // closing something), for at most 10 s.
  const read = () => ({ server: sample(s.pid), agent: sample(agentPid(s)) });
  const key = (r) => `${r.server.fds}/${r.server.threads}/${r.agent.fds}/${r.agent.threads}`;
  let last = read();
  for (let i = 0; i < 50; i++) {
    await sleep(200);
    const now = read();
    if (key(now) === key(last)) return now;
    last = now;
  }
  return last;
}
