// The Docker backend on a real engine: hardening as inspected and as seen from inside, limits,
// failures, flapping, adoption, and nothing left behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandletConfigInput } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { CONTAINER_LOG, LABEL_ROOT, pidsLimits } from '../../src/runtime/backends/docker.js';
import { collect } from '../helpers/streams.js';
import { deploy, FIXTURES, SAMPLES } from '../helpers/gateway.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { docker, ENGINE_IMAGE, requireDocker, runId, skipDocker, TEST_RUNTIME } from '../helpers/docker.js';

const id = runId();

// By tag, never by id: a tag may name the shared engine image, which must survive.
async function removeTestImages(): Promise<void> {
  for (const img of await docker.listImages({ filters: JSON.stringify({ reference: [`sandlet-test-${id}/*`] }) })) {
    for (const tag of img.RepoTags ?? []) {
      if (tag.startsWith(`sandlet-test-${id}/`)) await docker.getImage(tag).remove().catch(() => {});
    }
  }
}
// Made in beforeAll: a skipped or filtered-out suite runs no afterAll to remove it.
let root = '';
const config: SandletConfigInput = {
  backend: 'docker',
  container_prefix: `sltest-${id}-`,
  default_container_image_name: ENGINE_IMAGE,
  container_runtime: TEST_RUNTIME,
  image_namespace: `sandlet-test-${id}`,
  container_mem_limit: '256m',
  container_pids_limit: 128,
  storlet_timeout_ms: 30_000, // a fork bomb under gVisor spawns slowly on a loaded machine
  sandbox_ready_timeout_ms: 20_000,
};
const gvisor = TEST_RUNTIME === 'runsc';
const runscKnown = skipDocker ? false : 'runsc' in ((await docker.info()) as { Runtimes?: Record<string, unknown> }).Runtimes!;
const logger = pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' });
const text = async (body: NodeJS.ReadableStream): Promise<string> => (await collect(body)).toString();

function newGateway(extra: SandletConfigInput = {}): Gateway {
  const gw = createGateway({ ...config, ...extra }, { logger });
  for (const name of SAMPLES) deploy(gw, path.join(SAMPLES_DIR, name));
  for (const name of ['misbehave.mjs', 'probe.mjs', 'bad-syntax.mjs']) deploy(gw, path.join(FIXTURES, name));
  return gw;
}

async function ourContainers(): Promise<{ Id: string; State: string; Names: string[] }[]> {
  return docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_ROOT}=${path.join(root, 'pipes')}`] }) });
}

describe.skipIf(skipDocker)('docker backend', () => {
  let gw: Gateway;
  const probe = async (scope: string, mode: string, params: Record<string, string> = {}) => {
    const r = await gw.invoke({ scope, storlet: 'probe.mjs', params: { mode, ...params }, input: Buffer.from('') });
    return JSON.parse(await text(r.body)) as Record<string, unknown>;
  };

  beforeAll(async () => {
    requireDocker();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-'));
    config.host_root = root;
    gw = newGateway();
    await gw.ready();
  });
  afterAll(async () => {
    await gw?.close({ stopSandboxes: true });
    for (const c of await ourContainers()) await docker.getContainer(c.Id).remove({ force: true });
    await removeTestImages();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('runs every sample in a container', async () => {
    const r1 = await gw.invoke({ scope: 'alpha', storlet: 'uppercase.mjs', input: Buffer.from('in a box') });
    expect(await text(r1.body)).toBe('IN A BOX');
    const r2 = await gw.invoke({ scope: 'alpha', storlet: 'concat.mjs', input: Buffer.from('a'), extraInputs: [Buffer.from('b')], params: { separator: '+' } });
    expect(await text(r2.body)).toBe('a+b');
    const r3 = await gw.invoke({ scope: 'alpha', storlet: 'metadata-echo.mjs', input: Buffer.from(''), inputMetadata: { k: 'v' }, params: { p: '1' } });
    expect(r3.metadata).toEqual({ k: 'v', 'Param-p': '1' });
    await text(r3.body);
    const fh = await fs.promises.open(path.join(SAMPLES_DIR, 'sample.txt'));
    try {
      const r4 = await gw.invoke({ scope: 'alpha', storlet: 'identity.mjs', input: fh, range: { start: 0, end: 7 } });
      expect(await text(r4.body)).toBe('Storlets');
    } finally {
      await fh.close();
    }
    expect(gw.sandbox('alpha').describe()).toMatchObject({ state: 'running', image: ENGINE_IMAGE });
  });

  it('creates the container with every hardening option', async () => {
    const info = await docker.getContainer(gw.sandbox('alpha').describe().id!).inspect();
    const h = info.HostConfig;
    expect(info.Name).toBe(`/sltest-${id}-alpha`);
    expect(info.Config.User).toBe('1000:1000');
    expect(info.Config.Labels).toMatchObject({ 'io.sandlet.managed': 'true', 'io.sandlet.scope': 'alpha', 'io.sandlet.image': ENGINE_IMAGE });
    expect(h.NetworkMode).toBe('none');
    expect(h.ReadonlyRootfs).toBe(true);
    expect(h.Runtime).toBe(TEST_RUNTIME);
    expect(h.LogConfig).toEqual(CONTAINER_LOG);
    expect(h.CapDrop).toEqual(['ALL']);
    expect(h.SecurityOpt).toEqual(['no-new-privileges:true']);
    // Under gVisor its kernel counts the pids (RLIMIT_NPROC); the host cgroup is a backstop with room for gVisor's own threads.
    expect(h.PidsLimit).toBe(gvisor ? pidsLimits('runsc', 128).cgroup : 128);
    expect(h.Memory).toBe(256 * 1024 * 1024);
    expect(h.MemorySwap).toBe(256 * 1024 * 1024);
    expect(h.CpuPeriod).toBe(100_000);
    expect(h.Ulimits).toEqual([{ Name: 'nofile', Soft: 4096, Hard: 4096 }, ...(gvisor ? [{ Name: 'nproc', Soft: 128, Hard: 128 }] : [])]);
    expect(Object.keys(h.Tmpfs ?? {})).toEqual(['/tmp']);
    expect(h.Binds).toEqual([`${path.join(root, 'pipes', 'alpha')}:/mnt/channels:ro`, `${path.join(root, 'storlets', 'alpha')}:/home/storlet:ro`]);
  });

  it('keeps storlets off the network', async () => {
    const r = await probe('alpha', 'network');
    expect(r.public).not.toBe('connected');
    expect(r.gatewayHost).not.toBe('connected');
  });

  it('lets storlets write only under /tmp', async () => {
    // gVisor checks permissions before the mount's read-only flag: EACCES where runc says EROFS.
    const refused = gvisor ? 'EACCES' : 'EROFS';
    expect(await probe('alpha', 'writes')).toEqual({ root: refused, opt: refused, storlets: refused, tmp: 'ok' });
  });

  it('runs storlets as non-root with no capabilities and no-new-privileges', async () => {
    // gVisor's /proc/self/status has no NoNewPrivs line (README § gVisor tier); Docker set it all the same.
    expect(await probe('alpha', 'identity')).toEqual({ uid: 1000, capEff: '0000000000000000', capPrm: '0000000000000000', noNewPrivs: gvisor ? undefined : '1' });
  });

  it("never shows a scope another scope's pipes or storlets", async () => {
    await text((await gw.invoke({ scope: 'beta', storlet: 'identity.mjs', input: Buffer.from('b') })).body);
    const seen = await probe('alpha', 'view', { otherPath: path.join(root, 'storlets', 'beta') });
    expect(seen.otherScope).toBe(false);
    expect(seen.storlets).not.toContain('beta');
    // The channel dir is the gateway's: the sandbox may reach its socket but not even list it.
    expect(seen.channels).toBe('EACCES');
    expect(fs.readdirSync(path.join(root, 'pipes', 'beta'))).not.toContain('probe.mjs');
  });

  it('caps a fork bomb with the pids limit; the gateway and the sandbox survive', async () => {
    // Under gVisor too: its kernel enforces the limit itself (README § gVisor tier).
    await probe('alpha', 'identity'); // started (its first start is a record too), so a count compares
    const restarts = gw.sandbox('alpha').restarts.length;
    const r = await probe('alpha', 'forkbomb');
    expect(r.error).toBe('EAGAIN');
    expect(r.spawned as number).toBeLessThan(128);
    expect(gw.sandbox('alpha').restarts.length).toBe(restarts);
    expect(await text((await gw.invoke({ scope: 'alpha', storlet: 'identity.mjs', input: Buffer.from('still here') })).body)).toBe('still here');
  });

  it('OOM-kills a memory hog with a clear error, and the next call succeeds', async () => {
    await probe('alpha', 'identity');
    const restartsBefore = gw.sandbox('alpha').restarts.length;
    await expect(probe('alpha', 'memhog')).rejects.toThrow(/storlet probe\.mjs failed: .*(ran out of memory \(container_mem_limit 256m\))/);
    const again = async () => text((await gw.invoke({ scope: 'alpha', storlet: 'identity.mjs', input: Buffer.from('after oom') })).body);
    expect(await again()).toBe('after oom');
    // The scope's daemons share the agent's process: under runc the OOM kill takes the sandbox,
    // which restarts. Under gVisor the host's OOM killer picks among gVisor's own processes: it
    // may take the sandbox (the engine then reports an exit, not an OOM kill) or only the thread
    // the storlet ran on (README § gVisor tier); the call's error names the limit either way.
    const restarts = gw.sandbox('alpha').restarts;
    if (!gvisor) expect(restarts.at(-1)).toMatchObject({ kind: 'crash', reason: 'sandbox died: was killed by the OOM killer (container_mem_limit)' });
    else if (restarts.length > restartsBefore) expect(restarts.at(-1)).toMatchObject({ kind: 'crash' });
  });

  // runc only (defined, not skipped, per runtime): under gVisor its own memory counts toward the limit.
  if (!gvisor) it('ends a storlet that fills its heap by its thread alone: the sandbox and its other daemons live on', async () => {
    expect(await text((await gw.invoke({ scope: 'heap', storlet: 'identity.mjs', input: Buffer.from('before') })).body)).toBe('before');
    const container = gw.sandbox('heap').describe().id;
    // Half of container_mem_limit (256m) per task thread. gVisor's own memory counts against the
    // limit too: there the container's limit is reached first (README § gVisor tier).
    await expect(probe('heap', 'heaphog')).rejects.toThrow(/storlet probe\.mjs failed: .*it ran out of memory \(heap limit 128 MB\)/);
    expect(await text((await gw.invoke({ scope: 'heap', storlet: 'identity.mjs', input: Buffer.from('after') })).body)).toBe('after');
    expect(await probe('heap', 'identity')).toBeTruthy();
    expect(gw.sandbox('heap').describe().id).toBe(container);
    expect(gw.sandbox('heap').restarts).toHaveLength(1);
  });

  it('errors an invocation whose container is killed, then recovers', async () => {
    const r = await gw.invoke({ scope: 'victim', storlet: 'misbehave.mjs', params: { mode: 'stall-after' }, input: Buffer.from('x') });
    const before = gw.sandbox('victim').describe().id!;
    const body = collect(r.body);
    await docker.getContainer(before).kill();
    await expect(body).rejects.toThrow(/storlet misbehave\.mjs failed after \d+ bytes of output/);
    expect(await text((await gw.invoke({ scope: 'victim', storlet: 'identity.mjs', input: Buffer.from('back') })).body)).toBe('back');
    expect(gw.sandbox('victim').describe().id).not.toBe(before);
    expect(gw.sandbox('victim').restarts.map((r) => r.reason)).toEqual(['first use', expect.stringMatching(/^sandbox died/)]);
  });

  it('runs a tenant image when the scope has one, and backs off a flapping sandbox', async () => {
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-img-'));
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${ENGINE_IMAGE}\nENTRYPOINT ["/bin/sh", "-c", "echo tenant image refuses to run >&2; exit 3", "--"]\n`);
    const stream = await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { t: `sandlet-test-${id}/flappy:latest` });
    await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(null))));
    fs.rmSync(ctx, { recursive: true, force: true });
    const call = () => gw.invoke({ scope: 'flappy', storlet: 'identity.mjs', input: Buffer.from('') });
    await expect(call()).rejects.toThrow(/sandbox of scope flappy exited with code 3 before it was ready; last agent log lines: tenant image refuses to run/);
    await expect(call()).rejects.toThrow(/exited with code 3 before it was ready/);
    // The back-off runs from the crash; on a slow engine the removal that follows it may outlast
    // it, and the next call starts (and loses) another container first.
    let refused: unknown;
    for (let tries = 0; tries < 4; tries++) {
      refused = await call().then(() => undefined, (err: unknown) => err);
      if (/^scope flappy is backing off/.test(String((refused as Error)?.message))) break;
      expect(String((refused as Error)?.message)).toMatch(/exited with code 3 before it was ready/);
    }
    expect((refused as Error).message).toMatch(/^scope flappy is backing off after \d+ crashes; next try in \d+(\.\d)? s/);
  });

  // A tenant image may ask for the stronger runtime; under runsc there is nothing stronger to ask for.
  // Defined for the runc run only; in CI a Docker without runsc fails it rather than skipping it.
  if (!gvisor) it.skipIf(!runscKnown && !process.env.CI)('runs a scope under runsc when its tenant image asks for it, and never the reverse', async () => {
    const build = async (scope: string, runtime: string) => {
      const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-img-'));
      fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${ENGINE_IMAGE}\nLABEL io.sandlet.container-runtime=${runtime}\n`);
      const stream = await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { t: `sandlet-test-${id}/${scope}:latest` });
      await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(null))));
      fs.rmSync(ctx, { recursive: true, force: true });
    };
    await build('strong', 'runsc');
    expect(await text((await gw.invoke({ scope: 'strong', storlet: 'identity.mjs', input: Buffer.from('g') })).body)).toBe('g');
    expect((await docker.getContainer(gw.sandbox('strong').describe().id!).inspect()).HostConfig.Runtime).toBe('runsc');
    await gw.sandbox('strong').stop('test');
    const strict = newGateway({ host_root: fs.mkdtempSync(path.join(os.tmpdir(), 'sl-')), container_runtime: 'runsc' });
    await build('weak', 'runc');
    try {
      expect(await text((await strict.invoke({ scope: 'weak', storlet: 'identity.mjs', input: Buffer.from('w') })).body)).toBe('w');
      expect((await docker.getContainer(strict.sandbox('weak').describe().id!).inspect()).HostConfig.Runtime).toBe('runsc');
    } finally {
      await strict.close({ stopSandboxes: true });
      fs.rmSync(strict.config.host_root, { recursive: true, force: true });
    }
  });

  it('names the missing default image and the command that builds it', async () => {
    const other = createGateway({ ...config, host_root: fs.mkdtempSync(path.join(os.tmpdir(), 'sl-')), default_container_image_name: `sandlet-test-${id}/missing:1` }, { logger });
    deploy(other, path.join(SAMPLES_DIR, 'identity.mjs'));
    await expect(other.invoke({ scope: 'nope', storlet: 'identity.mjs', input: Buffer.from('') })).rejects.toThrow(
      `default image sandlet-test-${id}/missing:1 is missing: build it with \`sandlet image build --tag sandlet-test-${id}/missing:1\``,
    );
    await other.close({ stopSandboxes: true });
    fs.rmSync(other.config.host_root, { recursive: true, force: true });
  });

  it('leaves sandboxes running on close; the next gateway adopts them and removes the rest', async () => {
    const first = newGateway();
    await text((await first.invoke({ scope: 'keep', storlet: 'identity.mjs', input: Buffer.from('1') })).body);
    await text((await first.invoke({ scope: 'drop', storlet: 'identity.mjs', input: Buffer.from('1') })).body);
    const kept = first.sandbox('keep').describe().id!;
    const dropped = first.sandbox('drop').describe().id!;
    await first.close();
    await docker.getContainer(dropped).stop({ t: 1 }); // stopped: not adoptable
    const second = newGateway();
    await second.ready();
    expect(second.sandbox('keep').describe()).toMatchObject({ state: 'running', id: kept });
    expect(await text((await second.invoke({ scope: 'keep', storlet: 'identity.mjs', input: Buffer.from('adopted') })).body)).toBe('adopted');
    expect(second.sandbox('keep').describe().id).toBe(kept);
    await expect(docker.getContainer(dropped).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await second.close({ stopSandboxes: true });
  });

  it('on one root, a process-backend gateway refuses a scope Docker runs (touching nothing); stopAll() stops what an earlier gateway left, keeping agent logs', async () => {
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-'));
    const sharedContainers = async () =>
      docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_ROOT}=${path.join(shared, 'pipes')}`] }) });
    try {
      const first = newGateway({ host_root: shared });
      for (const scope of ['dock', 'other']) await text((await first.invoke({ scope, storlet: 'identity.mjs', input: Buffer.from('1') })).body);
      const dockId = first.sandbox('dock').describe().id!;
      await first.close(); // Docker sandboxes are left for adoption
      const pipeDir = path.join(shared, 'pipes', 'dock');
      const before = fs.readdirSync(pipeDir).sort();

      const processGw = createGateway({ host_root: shared, backend: 'process' }, { logger });
      deploy(processGw, path.join(SAMPLES_DIR, 'identity.mjs'));
      await expect(processGw.invoke({ scope: 'dock', storlet: 'identity.mjs', input: Buffer.from('') })).rejects.toMatchObject({
        code: 'ESANDBOX',
        message: expect.stringMatching(/^scope dock has a sandbox this gateway did not start/),
      });
      await processGw.close({ stopSandboxes: true });
      expect(fs.readdirSync(pipeDir).sort()).toEqual(before);
      expect((await docker.getContainer(dockId).inspect()).State.Running).toBe(true);

      // An operator's stop-all from a fresh gateway: every sandbox of the root, adopted by label.
      const operator = newGateway({ host_root: shared });
      expect(await operator.stopAll()).toEqual([{ scope: 'dock' }, { scope: 'other' }]);
      expect(await sharedContainers()).toEqual([]);
      // The agent's own log outlives its container.
      expect(fs.readFileSync(path.join(shared, 'logs', 'dock', 'agent.log'), 'utf8')).toMatch(/factory/i);
      expect(await operator.stopAll()).toEqual([]);
      await operator.close();
    } finally {
      for (const c of await sharedContainers()) await docker.getContainer(c.Id).remove({ force: true });
      fs.rmSync(shared, { recursive: true, force: true });
    }
  });

  it('leaves no container or pipe dir behind when asked to stop', async () => {
    const gw2 = newGateway();
    await text((await gw2.invoke({ scope: 'tidy', storlet: 'identity.mjs', input: Buffer.from('t') })).body);
    await gw2.close({ stopSandboxes: true });
    const names = (await ourContainers()).map((c) => c.Names[0]);
    expect(names).not.toContain(`/sltest-${id}-tidy`);
    expect(fs.existsSync(path.join(root, 'pipes', 'tidy'))).toBe(false);
  });
});

describe.skipIf(skipDocker)('docker sandbox lifecycle', () => {
  let lcRoot = ''; // made in beforeAll, as root is
  const image = `sandlet-test-${id}/engine:latest`;
  const gateways: Gateway[] = [];
  const make = (extra: SandletConfigInput): Gateway => {
    const gw = newGateway({ host_root: fs.mkdtempSync(path.join(lcRoot, 'g')), default_container_image_name: image, ...extra });
    gateways.push(gw);
    return gw;
  };
  const run = async (gw: Gateway, scope: string, input = 'x') =>
    text((await gw.invoke({ scope, storlet: 'identity.mjs', input: Buffer.from(input) })).body);
  /**
   * Resolves when the container stops: the engine's own event, no polling. One the gateway has
   * stopped and removed already answers 404, which is stopped too.
   */
  const stopped = (containerId: string) =>
    docker
      .getContainer(containerId)
      .wait()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404) throw err;
      });

  beforeAll(async () => {
    requireDocker();
    lcRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-'));
    await docker.getImage(ENGINE_IMAGE).tag({ repo: `sandlet-test-${id}/engine`, tag: 'latest' });
  });
  afterAll(async () => {
    for (const gw of gateways) await gw.close({ stopSandboxes: true });
    // The retag test moves this run's tags to new images: none may outlive the run.
    await removeTestImages();
    if (lcRoot) fs.rmSync(lcRoot, { recursive: true, force: true });
  });

  it('starts exactly one container for 20 concurrent first invocations of a cold scope', async () => {
    const gw = make({});
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => run(gw, 'cold', `n${i}`)));
    expect(outs).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
    expect(gw.sandbox('cold').restarts).toHaveLength(1);
    const mine = (await docker.listContainers({ all: true, filters: JSON.stringify({ name: [`sltest-${id}-cold`] }) })).filter(
      (c) => c.Labels[LABEL_ROOT] === gw.config.pipes_dir,
    );
    expect(mine).toHaveLength(1);
  });

  it('at capacity stops the least recently used idle sandbox, and refuses only when all are busy', async () => {
    const gw = make({ max_containers_per_node: 2, storlet_timeout_ms: 20_000 });
    await run(gw, 'one');
    await run(gw, 'two');
    await run(gw, 'one'); // 'two' is now the least recently used
    const twoId = gw.sandbox('two').describe().id!;
    await run(gw, 'three');
    // Evicted, and with nothing in flight its record is released (per-scope state stays bounded).
    expect(gw.findSandbox('two')).toBeUndefined();
    await expect(docker.getContainer(twoId).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(gw.sandbox('one').state).toBe('running');
    // Both live sandboxes busy: a third scope is refused, clearly.
    const busy = await Promise.all(['one', 'three'].map((scope) =>
      gw.invoke({ scope, storlet: 'misbehave.mjs', params: { mode: 'stall-after' }, input: Buffer.from('x') })));
    await expect(run(gw, 'four')).rejects.toThrow('all 2 sandboxes are busy (max_containers_per_node 2); scope four cannot start now');
    for (const b of busy) b.body.destroy();
  });

  it('restarts a sandbox that stops answering (paused: EXECUTE unanswered) instead of leaving it wedged', async () => {
    const gw = make({ sbus_timeout_ms: 3000 }); // also what the new sandbox gets to answer in
    expect(await run(gw, 'frozen', 'before')).toBe('before');
    const frozenId = gw.sandbox('frozen').describe().id!;
    await docker.getContainer(frozenId).pause();
    try {
      await expect(run(gw, 'frozen')).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(/^no reply to SBUS_CMD_EXECUTE/) });
      expect(await run(gw, 'frozen', 'after')).toBe('after');
      expect(gw.sandbox('frozen').describe().id).not.toBe(frozenId);
      await expect(docker.getContainer(frozenId).inspect()).rejects.toMatchObject({ statusCode: 404 });
      // Nor its containerd shim: under runsc, removing it while paused would have left that behind.
      await expect.poll(() => processesMentioning(frozenId), { timeout: 10_000 }).toEqual([]);
    } finally {
      await docker.getContainer(frozenId).unpause().catch(() => {});
    }
  });

  it('stops a sandbox idle for idle_timeout', async () => {
    const gw = make({ idle_timeout: 1 });
    await run(gw, 'sleepy');
    const containerId = gw.sandbox('sleepy').describe().id!;
    await stopped(containerId);
    // Stopped idle: its record is released once the stop is done.
    await expect.poll(() => gw.findSandbox('sleepy'), { timeout: 20_000 }).toBeUndefined();
    expect(await run(gw, 'sleepy', 'woken')).toBe('woken');
  });

  it('restarts a sandbox on its next idle moment when its image tag moves to a new image', async () => {
    const gw = make({});
    await run(gw, 'fresh');
    const before = gw.sandbox('fresh').describe().id!;
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-img-'));
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${ENGINE_IMAGE}\nLABEL io.sandlet.test.rebuilt=${id}\n`);
    const stream = await docker.buildImage({ context: ctx, src: ['Dockerfile'] }, { t: image });
    await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(null))));
    fs.rmSync(ctx, { recursive: true, force: true });
    await stopped(before);
    expect(await run(gw, 'fresh', 'new image')).toBe('new image');
    const info = await docker.getContainer(gw.sandbox('fresh').describe().id!).inspect();
    expect(info.Config.Labels['io.sandlet.test.rebuilt']).toBe(id);
    expect(gw.sandbox('fresh').restarts.at(-1)?.reason).toBe(`image ${image} changed`);
  });

  it('restarts the daemon when the storlet is deployed again, and runs the new code', async () => {
    const gw = make({});
    const file = path.join(lcRoot, 'versioned.mjs');
    const write = (v: string) =>
      fs.writeFileSync(file, `export async function invoke({ inputs, output }) { inputs[0].stream.resume(); output.setMetadata({}); output.stream.end('${v}'); }`);
    write('v1');
    deploy(gw, file);
    expect(await text((await gw.invoke({ scope: 'ver', storlet: 'versioned.mjs', input: Buffer.from('') })).body)).toBe('v1');
    write('v2');
    deploy(gw, file);
    expect(await text((await gw.invoke({ scope: 'ver', storlet: 'versioned.mjs', input: Buffer.from('') })).body)).toBe('v2');
    expect(gw.sandbox('ver').restarts).toHaveLength(1); // the daemon restarted, not the container
  });
});

/** Host processes whose command line holds `text` (a container id: its containerd shim names it). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(text)) found.push(`${pid}: ${cmd.slice(0, 120)}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
