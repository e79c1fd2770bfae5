// A real Swift (with its s3api) behind sandlet's front door, with access points and S3 keys, for
// the S3 door's tests and benchmark-like checks: real clients talk to `door.url`.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import pino from 'pino';
import { Registry } from 'prom-client';
import { resolveConfig, type SandletConfig, type SandletConfigInput } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { startFrontDoor, type FrontDoor } from '../../src/proxy/front-door.js';
import { createAccessPoint, type AccessPointInput } from '../../src/proxy/s3/access-points.js';
import { createS3Key } from '../../src/proxy/s3/s3-keys.js';
import { tempDir } from './fs.js';
import { deploy, FIXTURES } from './gateway.js';
import { requireSwift, skipSwift, startSwift, SWIFT_USERS, type TestSwift } from './swift.js';

const run = promisify(execFile);

const awsReason = existsSync('/usr/bin/aws') ? undefined : '/usr/bin/aws is missing (apt-get install awscli)';
/** S3 door tests need a Swift (with s3api) and Debian's aws CLI; in CI they must run. */
export const skipS3 = skipSwift || (awsReason !== undefined && !process.env.CI);
export function requireS3(): void {
  requireSwift();
  if (awsReason) throw new Error(`S3 tests are required in CI: ${awsReason}`);
}

/** The S3 error code (and status) of a failed SDK call. */
export async function s3Error(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('the request succeeded');
}

/** Swift's s3api credentials of the tempauth admin user (its S3 key is `account:user`). */
export const UPSTREAM_KEY = { accessKeyId: SWIFT_USERS.admin.user, secretAccessKey: SWIFT_USERS.admin.key };

export interface S3Env {
  swift: TestSwift;
  gateway: Gateway;
  door: FrontDoor;
  config: SandletConfig;
  root: string;
  registry: Registry;
  accessPoint(input: Omit<AccessPointInput, 'bucket'> & { bucket?: string }): void;
  key(accessPoints: string[]): { accessKeyId: string; secretAccessKey: string };
  /** An SDK client with its defaults, on the door (or another endpoint). */
  client(creds: { accessKeyId: string; secretAccessKey: string }, extra?: Partial<S3ClientConfig>, endpoint?: string): S3Client;
  /** Debian's `aws` CLI with these credentials, on the door. */
  aws(creds: { accessKeyId: string; secretAccessKey: string }, ...args: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * `logs`: every log line (debug and up) is kept there, for tests that check what is logged.
 * `completeKeepAliveMs`: when a CompleteMultipartUpload starts its keep-alive 200.
 */
export async function startS3Env(extra: SandletConfigInput = {}, opts: { logs?: string[]; completeKeepAliveMs?: number } = {}): Promise<S3Env> {
  const swift = await startSwift();
  const { dir: root, cleanup } = tempDir();
  const config = resolveConfig({
    host_root: root,
    backend: 'process',
    upstream: swift.url,
    proxy_listen: '127.0.0.1:0',
    upstream_s3_access_key: UPSTREAM_KEY.accessKeyId,
    upstream_s3_secret_key: UPSTREAM_KEY.secretAccessKey,
    ...extra,
  });
  const logs = opts.logs;
  const logger = logs ? pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) }) : pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' });
  const gateway = createGateway(config, { logger });
  for (const name of ['identity.mjs', 'uppercase.mjs', 'metadata-echo.mjs']) deploy(gateway, path.join(SAMPLES_DIR, name));
  deploy(gateway, path.join(FIXTURES, 'misbehave.mjs'));
  const registry = new Registry();
  const door = await startFrontDoor({ gateway, config, registry, logger: gateway.logger, ...(opts.completeKeepAliveMs !== undefined ? { s3CompleteKeepAliveMs: opts.completeKeepAliveMs } : {}) });
  const clients: S3Client[] = [];
  const client = (creds: { accessKeyId: string; secretAccessKey: string }, more: Partial<S3ClientConfig> = {}, endpoint = door.url): S3Client => {
    const c = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: creds, ...more });
    clients.push(c);
    return c;
  };
  const upstream = client(UPSTREAM_KEY, {}, swift.url);
  for (const b of ['data', 'uploads']) await upstream.send(new CreateBucketCommand({ Bucket: b }));
  return {
    swift,
    gateway,
    door,
    config,
    root,
    registry,
    accessPoint: (input) => void createAccessPoint(config.access_points_file, { bucket: 'data', ...input }),
    key: (aps) => {
      const k = createS3Key(config.s3_keys_file, aps);
      return { accessKeyId: k.id, secretAccessKey: k.secret };
    },
    client,
    aws: async (creds, ...args) => {
      const { stdout } = await run('/usr/bin/aws', ['--endpoint-url', door.url, '--region', 'us-east-1', ...args], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: root, AWS_ACCESS_KEY_ID: creds.accessKeyId, AWS_SECRET_ACCESS_KEY: creds.secretAccessKey, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    },
    close: async () => {
      for (const c of clients) c.destroy();
      await door.close();
      await gateway.close({ stopSandboxes: true });
      await swift.stop();
      cleanup();
    },
  };
}
