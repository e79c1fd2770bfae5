// A local single-node OpenStack Swift, for tests, benchmarks and trying sandlet out: memcached, one
// account, container and object server and a proxy with tempauth and s3api, all on loopback,
// everything under one temp dir, one replica. Debian's Swift (2.30) is used as installed; nothing
// under /etc/swift is read or written.
//   node scripts/local-swift.mjs      starts one and prints its URL and users; Ctrl-C stops it
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LAUNCHER = fileURLToPath(new URL('./swift-launcher.py', import.meta.url));

/** The tempauth users every test Swift has: `account:user` → key, with their role. */
export const SWIFT_USERS = {
  admin: { user: 'test:tester', key: 'testing', account: 'AUTH_test' },
  /** Same account, no `.admin`: reads only what container ACLs grant. */
  reader: { user: 'test:reader', key: 'reading', account: 'AUTH_test' },
  other: { user: 'test2:tester2', key: 'testing2', account: 'AUTH_test2' },
};


/** Why a Swift cannot be started here, or undefined when it can. */
export function swiftUnavailable() {
  for (const bin of ['/usr/bin/swift-proxy-server', '/usr/bin/swift-object-server', '/usr/bin/swift-ring-builder', '/usr/bin/memcached', '/usr/bin/swift']) {
    if (!existsSync(bin)) return `${bin} is missing (apt-get install swift swift-proxy swift-account swift-container swift-object memcached python3-swiftclient)`;
  }
  return undefined;
}


async function freePort(kind = 'tcp') {
  if (kind === 'udp4') {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    const { port } = sock.address();
    sock.close();
    return port;
  }
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** The interpreter of the Swift scripts' shebang: a python3 earlier on PATH may not import swift. */
function swiftPython() {
  const first = readFileSync('/usr/bin/swift-proxy-server', 'utf8').split('\n', 1)[0];
  const m = /^#!\s*(\S+)/.exec(first);
  return m ? m[1] : '/usr/bin/python3';
}

function run(cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/** The [DEFAULT] lines every server of the test Swift shares. */
const defaults = (dir, port, logPort) => `bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = root
swift_dir = ${dir}
log_udp_host = 127.0.0.1
log_udp_port = ${logPort}`;

const serverConf = (dir, port, logPort, app) => `[DEFAULT]
devices = ${dir}/srv
mount_check = false
${defaults(dir, port, logPort)}
log_level = INFO

[pipeline:main]
pipeline = ${app}

[app:${app}]
use = egg:swift#${app.replace('-server', '')}
`;

/**
 * Starts a local Swift. Its servers log over UDP to this process, which keeps the lines for
 * settled(), count() and logs(). A benchmark passes `{ logs: false }`: the lines then go to a
 * port nobody reads and the servers write no copy to stderr, so no log line reaches the event
 * loop of the sandlet it measures (in production Swift logs to syslog, not into sandlet).
 */
export async function startSwift({ logs = true } = {}) {
  const why = swiftUnavailable();
  if (why) throw new Error(`cannot start a local Swift: ${why}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'sl-swift-'));
  const children = [];
  const lines = [];
  const stderr = [];
  let syslog;
  let logPort;
  if (logs) {
    syslog = createSocket('udp4');
    syslog.on('message', (msg) => {
      lines.push(msg.toString().replace(/^<\d+>/, '').trimEnd());
      // Dropped in batches: shift() per line moves the whole array each time.
      if (lines.length > 25_000) lines.splice(0, 5_000);
    });
    syslog.bind(0, '127.0.0.1');
    await once(syslog, 'listening');
    logPort = syslog.address().port;
  } else {
    logPort = await freePort('udp4');
  }

  let stopping;
  const stop = () => (stopping ??= (async () => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }));
    syslog?.close();
    rmSync(dir, { recursive: true, force: true });
  })());

  try {
    const [proxyPort, accountPort, containerPort, objectPort, memcachePort] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    mkdirSync(path.join(dir, 'srv', 'd1'), { recursive: true });
    writeFileSync(path.join(dir, 'swift.conf'), [
      '[swift-hash]', 'swift_hash_path_suffix = sandlet-test', '',
      '[storage-policy:0]', 'name = gold', 'default = yes', '',
      // Room for the storlet registration headers and a few user ones.
      '[swift-constraints]', 'max_meta_overall_size = 4096', '',
    ].join('\n'));
    for (const [ring, port] of [['account', accountPort], ['container', containerPort], ['object', objectPort]]) {
      const builder = path.join(dir, `${ring}.builder`);
      await run('/usr/bin/swift-ring-builder', [builder, 'create', '4', '1', '1']);
      await run('/usr/bin/swift-ring-builder', [builder, 'add', `r1z1-127.0.0.1:${port}/d1`, '100']);
      await run('/usr/bin/swift-ring-builder', [builder, 'rebalance']);
    }
    writeFileSync(path.join(dir, 'account-server.conf'), serverConf(dir, accountPort, logPort, 'account-server'));
    writeFileSync(path.join(dir, 'container-server.conf'), serverConf(dir, containerPort, logPort, 'container-server'));
    writeFileSync(path.join(dir, 'object-server.conf'), serverConf(dir, objectPort, logPort, 'object-server'));
    const u = SWIFT_USERS;
    writeFileSync(path.join(dir, 'proxy-server.conf'), `[DEFAULT]
${defaults(dir, proxyPort, logPort)}

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# One object node: after a single error the proxy would avoid it for 60 s.
error_suppression_interval = 0

[filter:tempauth]
use = egg:swift#tempauth
user_${u.admin.user.replace(':', '_')} = ${u.admin.key} .admin
user_${u.reader.user.replace(':', '_')} = ${u.reader.key}
user_${u.other.user.replace(':', '_')} = ${u.other.key} .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachePort}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
`);

    const spawnChild = (cmd, args) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      // stderr repeats the log lines (verbose) and holds tracebacks: kept apart from the syslog lines counted.
      child.stderr.on('data', (d) => {
        stderr.push(d.toString().trimEnd());
        if (stderr.length > 200) stderr.shift();
      });
      children.push(child);
      return child;
    };
    // memcached refuses to run as root without -u.
    spawnChild('/usr/bin/memcached', ['-u', 'root', '-l', '127.0.0.1', '-p', String(memcachePort), '-U', '0', '-m', '16']);
    const python = swiftPython();
    const conf = path.join(dir, 'swift.conf');
    for (const server of ['account-server', 'container-server', 'object-server', 'proxy-server']) {
      spawnChild(python, [LAUNCHER, conf, path.join(dir, `${server}.conf`), server, logs ? 'verbose' : 'quiet']);
    }
    const url = `http://127.0.0.1:${proxyPort}`;
    await waitHealthy(url, children, stderr);
    // Requests the proxy logged, as `METHOD path` counts: settled() waits until every request made
    // before it has been logged (Swift logs over UDP, after answering).
    const unlogged = () => new Error('this Swift was started with { logs: false }: its log lines are not kept');
    const settled = async () => {
      if (!logs) throw unlogged();
      const marker = `sandlet-settled-${Math.random().toString(36).slice(2)}`;
      await (await fetch(`${url}/info?${marker}`)).arrayBuffer();
      const deadline = Date.now() + 10_000;
      while (!lines.some((l) => l.includes(marker))) {
        if (Date.now() > deadline) throw new Error('Swift did not log a request within 10 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const count = (method, path) => {
      if (!logs) throw unlogged();
      return lines.filter((l) => l.includes(` ${method} ${path} HTTP/1.`) || l.includes(` ${method} ${path}?`)).length;
    };
    return { url, dir, logs: () => [...lines, ...stderr], settled, count, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}


/** Ready once the proxy and a full auth + account round trip answer (every server is then up). */
async function waitHealthy(url, children, lines) {
  const deadline = Date.now() + 30_000;
  let last = '';
  const died = new Promise((_, reject) => {
    for (const child of children) {
      child.once('exit', (code, signal) => reject(new Error(`a Swift server exited (${signal ?? code}) while starting: ${lines.slice(-5).join(' | ')}`)));
    }
  });
  died.catch(() => {});
  while (Date.now() < deadline) {
    try {
      const auth = await fetch(`${url}/auth/v1.0`, { headers: { 'X-Auth-User': SWIFT_USERS.admin.user, 'X-Auth-Key': SWIFT_USERS.admin.key } });
      const token = auth.headers.get('x-auth-token');
      if (auth.status === 200 && token) {
        // Every server answers: the account (HEAD), container (PUT) and object server (PUT); the probe is removed again.
        const h = { 'X-Auth-Token': token };
        const base = `${url}/v1/${SWIFT_USERS.admin.account}/sandlet-ready`;
        const c = await fetch(base, { method: 'PUT', headers: h });
        const o = c.status < 300 ? await fetch(`${base}/probe`, { method: 'PUT', headers: h, body: 'ok' }) : c;
        if (o.status === 201) {
          await fetch(`${base}/probe`, { method: 'DELETE', headers: h });
          await fetch(base, { method: 'DELETE', headers: h });
          return;
        }
        last = `probe PUT ${o.status}`;
      } else {
        last = `auth ${auth.status}`;
      }
    } catch (err) {
      last = err.message;
    }
    // Readiness has no event to wait on: the servers bind in their own time. Poll briefly.
    await Promise.race([new Promise((r) => setTimeout(r, 100)), died]);
  }
  throw new Error(`test Swift not ready after 30 s (${last}): ${lines.slice(-5).join(' | ')}`);
}

/** A token for a tempauth user, from the proxy. */
export async function swiftToken(url, who) {
  const res = await fetch(`${url}/auth/v1.0`, { headers: { 'X-Auth-User': who.user, 'X-Auth-Key': who.key } });
  const token = res.headers.get('x-auth-token');
  if (res.status !== 200 || !token) throw new Error(`auth as ${who.user} failed: ${res.status}`);
  return token;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const swift = await startSwift();
  console.log(`Swift proxy: ${swift.url}   (auth: ${swift.url}/auth/v1.0)`);
  for (const [role, u] of Object.entries(SWIFT_USERS)) console.log(`  ${role}: -U ${u.user} -K ${u.key}   account ${u.account}`);
  console.log(`data under ${swift.dir}; Ctrl-C stops it and removes it`);
  const quit = () => void swift.stop().then(() => process.exit(0));
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
}
