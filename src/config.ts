import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { SandletError } from './errors.js';
import { didYouMean } from './util/did-you-mean.js';

const SIZE_RE = /^\d+(\.\d+)?\s*([kmgt]i?b?|b)?$/i;

/** `512m`, `1g`, `64k`, `1048576` → bytes (binary units, as Docker reads them). */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt])?/i.exec(value.trim());
  if (!m) throw new SandletError('EBADCONFIG', `${JSON.stringify(value)} is not a size`);
  const power = { k: 1, m: 2, g: 3, t: 4 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 0;
  return Math.round(Number(m[1]) * 1024 ** power);
}

// Environment values are strings: "false" must not coerce to true.
const flag = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  if (/^(true|yes|1|on)$/i.test(v.trim())) return true;
  if (/^(false|no|0|off)$/i.test(v.trim())) return false;
  return v;
}, z.boolean({ message: 'must be true or false' }));

/**
 * Sandbox backends. `storlets-agent` starts no sandbox: it drives OpenStack Storlets agents run by
 * someone else, one per scope (src/runtime/backends/storlets-agent.ts).
 */
export const BACKENDS = ['auto', 'docker', 'process', 'storlets-agent'] as const;

// Option names follow Storlets' gateway settings where one exists, so operators recognise them.
export const configSchema = z
  .object({
    backend: z.enum(BACKENDS).default('auto'),
    host_root: z.string().min(1).default('/var/lib/sandlet'),
    pipes_dir: z.string().min(1).optional(),
    storlets_dir: z.string().min(1).optional(),
    log_dir: z.string().min(1).optional(),
    store_dir: z.string().min(1).optional(),
    sbus_codec: z.enum(['msgpack', 'json']).default('msgpack'),
    sbus_timeout_ms: z.coerce.number().int().positive().default(5000),
    max_datagram_bytes: z.coerce.number().int().min(1024).max(4 * 1024 * 1024).default(64 * 1024),
    storlet_timeout_ms: z.coerce.number().int().positive().default(40_000),
    output_stall_timeout_ms: z.coerce.number().int().positive().default(60_000),
    max_metadata_bytes: z.coerce.number().int().positive().default(64 * 1024),
    storlet_log_max_bytes: z.coerce.number().int().min(1024).default(1024 * 1024),
    storlet_log_keep: z.coerce.number().int().min(0).max(100).default(1),
    storlet_daemon_thread_pool_size: z.coerce.number().int().min(1).max(256).default(4),
    storlet_daemon_log_level: z.string().default('info'),
    sandbox_ready_timeout_ms: z.coerce.number().int().positive().default(10_000),
    pipe_buffer_bytes: z.coerce.number().int().min(4096).default(1024 * 1024),
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),

    // Storlet store and the node's verified cache.
    storlet_store: z
      .string()
      .regex(/^(local|https?:\/\/\S+)$/, 'must be "local" or an http(s) URL such as http://swift:8080/v1/AUTH_acct')
      .default('local'),
    store_token: z.string().min(1).optional(),
    store_token_file: z.string().min(1).optional(),
    storlet_container: z.string().regex(/^[^/]{1,256}$/, 'must be a container name (no "/")').default('storlet'),
    storlet_dependency: z.string().regex(/^[^/]{1,256}$/, 'must be a container name (no "/")').default('dependency'),
    store_timeout_ms: z.coerce.number().int().positive().default(30_000),
    cache_dir: z.string().min(1).optional(),
    cache_max_bytes: z.string().regex(SIZE_RE, 'must be a size such as 512m or 1g').default('1g'),
    cache_ttl: z.coerce.number().min(0).default(10),

    // Docker backend. Names follow Storlets' docker gateway settings where one exists.
    docker_socket: z.string().min(1).default('/var/run/docker.sock'),
    default_container_image_name: z.string().min(1).default('sandlet/engine:latest'),
    image_namespace: z.string().regex(/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/, 'must be a lowercase image repository path').default('sandlet-tenant'),
    container_prefix: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must be a valid start of a container name').default('sandlet-'),
    sandbox_user: z.string().regex(/^\d+(:\d+)?$/, 'must be UID or UID:GID').default('1000:1000'),
    // runsc (gVisor) is the stronger tier; Docker must know it (--add-runtime runsc=..., README § gVisor).
    container_runtime: z.enum(['runc', 'runsc']).default('runc'),
    container_mem_limit: z.string().regex(SIZE_RE, 'must be a size such as 512m or 1g').default('512m'),
    container_cpu_period: z.coerce.number().int().min(1000).max(1_000_000).default(100_000),
    container_cpu_quota: z.coerce.number().int().min(0).default(0),
    container_cpuset_cpus: z.string().regex(/^[0-9,-]*$/).default(''),
    container_cpuset_mems: z.string().regex(/^[0-9,-]*$/).default(''),
    container_pids_limit: z.coerce.number().int().min(8).default(256),
    container_nofile_limit: z.coerce.number().int().min(64).default(4096),
    container_tmpfs_size: z.string().regex(SIZE_RE, 'must be a size such as 64m').default('64m'),
    restart_linux_container_timeout: z.coerce.number().int().min(0).default(3),
    max_containers_per_node: z.coerce.number().int().min(1).default(20),
    idle_timeout: z.coerce.number().int().min(0).default(900),
    stop_sandboxes_on_close: flag.default(false),

    // `sandlet serve`.
    listen_socket: z.string().optional(),
    listen_socket_mode: z.string().regex(/^0?[0-7]{3}$/, 'must be an octal mode such as 0660').default('0660'),
    listen_tcp: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:8080')
      .optional(),
    tokens_file: z.string().min(1).optional(),
    trust_unix_peers: z.enum(['none', 'invoke', 'operate', 'admin']).default('none'),
    drain_timeout_ms: z.coerce.number().int().min(0).default(30_000),
    max_connections: z.coerce.number().int().min(1).default(512),
    header_timeout_ms: z.coerce.number().int().min(1).default(10_000),
    body_idle_timeout_ms: z.coerce.number().int().min(1).default(30_000),

    // The front door: `sandlet serve --upstream URL` proxies an object store.
    upstream: z.string().regex(/^https?:\/\/[^\s?#]+$/, 'must be an http(s) URL such as http://127.0.0.1:8080').optional(),
    proxy_listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:8081')
      .default('127.0.0.1:8081'),
    upstream_timeout_ms: z.coerce.number().int().positive().default(60_000),
    storlet_log_container: z.string().regex(/^[^/]{1,256}$/, 'must be a container name (no "/")').default('storletlog'),

    // The S3 door on the same proxy: access points, the keys sandlet issues, its own upstream credentials.
    access_points_file: z.string().min(1).optional(),
    s3_keys_file: z.string().min(1).optional(),
    upstream_s3_access_key: z.string().min(1).optional(),
    upstream_s3_secret_key: z.string().min(1).optional(),
    upstream_s3_secret_key_file: z.string().min(1).optional(),
    s3_region: z.string().regex(/^[a-z0-9-]{1,32}$/, 'must be a region name such as us-east-1').default('us-east-1'),
    s3_virtual_host: z.string().regex(/^[A-Za-z0-9.-]+$/, 'must be a domain such as s3.example.com').optional(),
    s3_multipart_spool_max_bytes: z.string().regex(SIZE_RE, 'must be a size such as 10g').default('10g'),
    s3_multipart_ttl: z.coerce.number().positive().default(86_400),
  })
  .strict();

export type SandletConfigInput = z.input<typeof configSchema>;
export type SandletConfig = z.output<typeof configSchema> & {
  pipes_dir: string;
  storlets_dir: string;
  log_dir: string;
  store_dir: string;
  cache_dir: string;
  /** Empty: no Unix socket. */
  listen_socket: string;
  tokens_file: string;
  access_points_file: string;
  s3_keys_file: string;
};

/** Validates a config object; unset directories derive from host_root. */
export function resolveConfig(input: SandletConfigInput = {}): SandletConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0]!;
      throw new SandletError('EBADCONFIG', `config: unknown option ${key}${didYouMean(key, Object.keys(configSchema.shape))}`);
    }
    const where = issue.path.join('.') || '(top level)';
    throw new SandletError('EBADCONFIG', `config: ${where}: ${issue.message}`);
  }
  const c = parsed.data;
  if (c.backend === 'storlets-agent' && c.sbus_codec !== 'json') {
    throw new SandletError('EBADCONFIG', 'config: backend storlets-agent drives OpenStack Storlets agents, which read JSON only: set sbus_codec: json');
  }
  const root = path.resolve(c.host_root);
  return {
    ...c,
    host_root: root,
    pipes_dir: path.resolve(c.pipes_dir ?? path.join(root, 'pipes')),
    storlets_dir: path.resolve(c.storlets_dir ?? path.join(root, 'storlets')),
    log_dir: path.resolve(c.log_dir ?? path.join(root, 'logs')),
    store_dir: path.resolve(c.store_dir ?? path.join(root, 'store')),
    cache_dir: path.resolve(c.cache_dir ?? path.join(root, 'cache')),
    listen_socket: c.listen_socket === '' ? '' : path.resolve(c.listen_socket ?? path.join(root, 'sandlet.sock')),
    tokens_file: path.resolve(c.tokens_file ?? path.join(root, 'tokens.json')),
    access_points_file: path.resolve(c.access_points_file ?? path.join(root, 'access-points.json')),
    s3_keys_file: path.resolve(c.s3_keys_file ?? path.join(root, 's3-keys.json')),
  };
}

/**
 * `SANDLET_*` variables that are not config options but that sandlet's tools read. Any other
 * `SANDLET_*` variable is refused, as an unknown key in a config file is.
 */
export const TOOL_ENV_VARS: Record<string, string> = {
  SANDLET_TOKEN: 'bearer token of the operator commands',
  SANDLET_SERVER: 'where the operator commands find `sandlet serve`',
  SANDLET_NODE18: "Debian's Node 18, for the tests that run the agent on it",
  SANDLET_TEST_IMAGE: 'the engine image Docker tests run',
  SANDLET_TEST_RUNTIME: 'the OCI runtime(s) Docker tests run sandboxes under: runc (default), runsc, or runc,runsc',
  SANDLET_TEST_LOG: 'log level of the tests\' gateways',
  SANDLET_NATIVE_ADDON: 'path of the SBus addon to load instead of build/Release',
  SANDLET_REBUILD_BASE: 'scripts/build-base-image.sh rebuilds an existing base image',
  SANDLET_STORLETS_SRC: 'an OpenStack Storlets source tree (libsbus built): the opt-in test against the real Storlets agent runs',
};

const envName = (option: string): string => `SANDLET_${option.toUpperCase()}`;

/** `SANDLET_STORLET_TIMEOUT_MS=5000` overrides `storlet_timeout_ms`; an unknown `SANDLET_*` name is refused. */
export function envOverrides(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const options = new Map(Object.keys(configSchema.shape).map((key) => [envName(key), key]));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SANDLET_') || name in TOOL_ENV_VARS) continue;
    const key = options.get(name);
    // Only the name is shown: the value may be a secret.
    if (!key) throw new SandletError('EBADCONFIG', `environment: ${name} is not a sandlet setting${didYouMean(name, [...options.keys(), ...Object.keys(TOOL_ENV_VARS)])}`);
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

/**
 * Reads a YAML or JSON config file (if given), then applies environment overrides, then `flags`
 * (those set). `defaults` are a command's own defaults: below the file and the environment.
 */
export function loadConfig(file: string | undefined, flags: Record<string, unknown> = {}, defaults: Record<string, unknown> = {}): SandletConfig {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new SandletError('EBADCONFIG', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      fromFile = (YAML.parse(text) as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw new SandletError('EBADCONFIG', `config file ${file} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) {
      throw new SandletError('EBADCONFIG', `config file ${file} must hold a mapping of options`);
    }
  }
  const set = (r: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
  return resolveConfig({ ...set(defaults), ...fromFile, ...envOverrides(), ...set(flags) } as SandletConfigInput);
}
