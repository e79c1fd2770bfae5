// npm run bench:s3: an identity access point beside the upstream S3 API (Swift's s3api), in one
// run, interleaved.
//   1 GiB GetObject: direct to the upstream, through an identity access point
//   1 KiB GetObject p50/p99 for both
//   targets: access point ≥ 80 % of direct throughput and ≤ 2 ms added p50
// Both paths are presigned GETs (SigV4 query auth) on keep-alive connections from a client process
// of its own, so the client's work is the same and the difference is sandlet's: verifying the signature, reading the
// upstream with its own signed request, and streaming the object through the storlet.
// Needs Debian's Swift (see README, "Storlets on Swift"). Options (env): BENCH_N (1 KiB GETs per
// path, default 1000), BENCH_WARM (1 KiB GETs per path before those,
// default 2000), BENCH_BIG_MB (default 1024), BENCH_ROUNDS (timed big GETs per path, default 5,
// after one untimed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createGateway } from '../dist/index.js';
import { resolveConfig } from '../dist/config.js';
import { SAMPLES_DIR } from '../dist/package-root.js';
import { startFrontDoor } from '../dist/proxy/front-door.js';
import { createAccessPoint } from '../dist/proxy/s3/access-points.js';
import { createS3Key } from '../dist/proxy/s3/s3-keys.js';
import { startSwift, SWIFT_USERS } from '../scripts/local-swift.mjs';
import { BIG_ROUNDS, bestRates, startClientProcess, WARM_GETS } from './client-process-driver.js';

// The SDK's notice that its 2027 releases need Node 22 (the lockfile pins one that runs on 20).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const N = Number(process.env.BENCH_N ?? 1000);
const BIG = Number(process.env.BENCH_BIG_MB ?? 1024) * 1024 * 1024;
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const ms = (v) => `${v.toFixed(3)} ms`;
const upstreamKey = { accessKeyId: SWIFT_USERS.admin.user, secretAccessKey: SWIFT_USERS.admin.key };

const swift = await startSwift({ logs: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-bench-'));
const config = resolveConfig({
  host_root: root, backend: process.env.BENCH_BACKEND ?? 'process', log_level: 'warn', upstream: swift.url, proxy_listen: '127.0.0.1:0', cache_ttl: 60,
  upstream_s3_access_key: upstreamKey.accessKeyId, upstream_s3_secret_key: upstreamKey.secretAccessKey,
});
const gw = createGateway(config, { logger: pino({ level: 'warn' }) });
const door = await startFrontDoor({ gateway: gw, config, registry: new Registry(), logger: gw.logger });
const client = startClientProcess();
const clients = [];
const s3 = (endpoint, credentials) => {
  // Checksums only when required: Swift 2.30's s3api refuses the aws-chunked uploads they bring.
  const c = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
  clients.push(c);
  return c;
};

try {
  await gw.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), { kind: 'storlet', name: 'identity.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'identity.mjs', dependencies: [] });
  createAccessPoint(config.access_points_file, { name: 'same', bucket: 'bench', storlet: 'identity.mjs' });
  const k = createS3Key(config.s3_keys_file, ['same']);
  const direct = s3(swift.url, upstreamKey);
  const viaDoor = s3(door.url, { accessKeyId: k.id, secretAccessKey: k.secret });
  await direct.send(new CreateBucketCommand({ Bucket: 'bench' }));
  await direct.send(new PutObjectCommand({ Bucket: 'bench', Key: 'small', Body: Buffer.alloc(1024, 120) }));
  const chunk = Buffer.alloc(1024 * 1024, 97);
  let left = BIG;
  const big = new Readable({ read() { if (left <= 0) return this.push(null); left -= chunk.length; this.push(chunk); } });
  await direct.send(new PutObjectCommand({ Bucket: 'bench', Key: 'big', Body: big, ContentLength: BIG }));

  const presign = (client, Bucket, Key) => getSignedUrl(client, new GetObjectCommand({ Bucket, Key }), { expiresIn: 3600 });
  const urls = {
    direct: { small: await presign(direct, 'bench', 'small'), big: await presign(direct, 'bench', 'big') },
    'access point': { small: await presign(viaDoor, 'same', 'small'), big: await presign(viaDoor, 'same', 'big') },
  };
  // Timed requests come from a client process of its own (bench/client-process.js), as real
  // clients do: sandlet's process then does only sandlet's work.
  const targets = (size) => Object.values(urls).map((u) => ({ url: u[size], headers: {} }));
  await client.series(targets('small'), 200); // warm: daemon, sockets
  const best = await bestRates(client, Object.fromEntries(Object.entries(urls).map(([name, u]) => [name, { url: u.big, headers: {} }])), BIG);
  await client.series(targets('small'), WARM_GETS); // past V8's warm-up (client-process-driver.js)
  const series = await client.series(targets('small'), N);
  const times = Object.fromEntries(Object.keys(urls).map((name, k) => [name, series[k]]));
  const lat = Object.fromEntries(Object.entries(times).map(([name, v]) => {
    const s = [...v].sort((a, b) => a - b);
    return [name, { p50: quantile(s, 0.5), p99: quantile(s, 0.99) }];
  }));
  const pct = (100 * best['access point']) / best.direct;
  const added = lat['access point'].p50 - lat.direct.p50;
  if (process.env.BENCH_JSON) {
    process.stdout.write(`${JSON.stringify({ bigBytes: BIG, mbps: best, latency: lat })}\n`);
  } else {
    console.log(`S3 access point (${gw.backendName} backend), ${(BIG / 2 ** 20).toFixed(0)} MiB GetObject x ${BIG_ROUNDS} (best, after 1 untimed), ${N} x 1 KiB GetObject after ${WARM_GETS} warm-up, interleaved`);
    console.log(`  direct to the upstream s3api (baseline)  ${best.direct.toFixed(0)} MB/s   1 KiB p50 ${ms(lat.direct.p50)}  p99 ${ms(lat.direct.p99)}`);
    console.log(`  identity access point                    ${best['access point'].toFixed(0)} MB/s = ${pct.toFixed(0)} % (target ≥ 80 %)   p50 ${ms(lat['access point'].p50)} (+${ms(added)}, target ≤ 2 ms)  p99 ${ms(lat['access point'].p99)}`);
  }
} finally {
  client.close();
  for (const c of clients) c.destroy();
  await door.close();
  await gw.close({ stopSandboxes: true });
  await swift.stop();
  fs.rmSync(root, { recursive: true, force: true });
}
