// Python and exec storlets through the whole gateway (catalog, scope install, sandbox, SBus) on
// both backends: the process backend runs the host's Debian python3, the Docker backend the
// engine image's (SANDLET_TEST_IMAGE picks the image).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandletConfigInput } from './../src/config.js';
import { createGateway, type Gateway } from '../src/gateway.js';
import { LABEL_ROOT } from '../src/runtime/backends/docker.js';
import { SAMPLES_DIR } from '../src/package-root.js';
import { collect } from './helpers/streams.js';
import { docker, ENGINE_IMAGE, requireDocker, runId, skipDocker, TEST_RUNTIME } from './helpers/docker.js';
import { FIXTURES, localStore } from './helpers/gateway.js';
import { eventually } from './helpers/agent.js';
import { openFds } from './helpers/fs.js';

const id = runId();
const backends = [
  { backend: 'process' as const, skip: false },
  { backend: 'docker' as const, skip: skipDocker },
];

describe.each(backends)('python and exec storlets on the $backend backend', ({ backend, skip }) => {
  let gw: Gateway;
  let root = '';
  const text = async (body: NodeJS.ReadableStream) => (await collect(body)).toString();
  const invoke = (storlet: string, input: string, params: Record<string, string> = {}, inputMetadata: Record<string, string> = {}) =>
    gw.invoke({ scope: `lang-${id}`, storlet, input: Buffer.from(input), params, inputMetadata });

  beforeAll(async () => {
    if (skip) return;
    if (backend === 'docker') requireDocker();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sl-lang-'));
    const config: SandletConfigInput = {
      backend,
      host_root: root,
      storlet_timeout_ms: 4000,
      ...(backend === 'docker'
        ? { default_container_image_name: ENGINE_IMAGE, container_prefix: `sllang-${id}-`, image_namespace: `sandlet-test-${id}`, container_pids_limit: 64, sandbox_ready_timeout_ms: 20_000, container_runtime: TEST_RUNTIME }
        : {}),
    };
    gw = createGateway(config, { logger: pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' }) });
    const store = localStore(gw);
    const reg = { interfaceVersion: '1.0', objectMetadata: 'no' };
    store.deployDependency(fs.readFileSync(path.join(FIXTURES, 'shout.sh')), { name: 'shout.sh', version: '1', permissions: '0755' });
    store.deployStorlet(fs.readFileSync(path.join(FIXTURES, 'py_probe.py')), { ...reg, name: 'py_probe.py', language: 'python', languageVersion: '3', main: 'py_probe.Probe', dependencies: ['shout.sh'] });
    store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, 'uppercase.py')), { ...reg, name: 'uppercase.py', language: 'python', main: 'uppercase.UpperStorlet' });
    store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, 'gzip.sh')), { ...reg, name: 'gzip.sh', language: 'exec', main: 'gzip.sh' });
    store.deployStorlet(Buffer.from('#!/bin/sh\necho "cannot do it" >&2\nexit 7\n'), { ...reg, name: 'fails.sh', language: 'exec', main: 'fails.sh' });
    // A fork bomb: bounded by the sandbox's pids limit, and gone with its process group at the timeout.
    store.deployStorlet(Buffer.from('#!/bin/bash\nb() { b | b & }\nb\nsleep 1000\n'), { ...reg, name: 'bomb.sh', language: 'exec', main: 'bomb.sh' });
    await gw.ready();
  });
  afterAll(async () => {
    if (skip) return;
    await gw?.close({ stopSandboxes: true });
    if (backend === 'docker') {
      const mine = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL_ROOT}=${path.join(root, 'pipes')}`] }) });
      for (const c of mine) await docker.getContainer(c.Id).remove({ force: true });
    }
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it.skipIf(skip)('runs a Python storlet written for Storlets, with its metadata and log', async () => {
    const r = await invoke('uppercase.py', 'abc\ndef\n', {}, { color: 'red' });
    expect(await text(r.body)).toBe('ABC\nDEF\n');
    expect(r.metadata).toEqual({ color: 'red', 'transformed-by': 'uppercase.py' });
  });

  it.skipIf(skip)('runs a dependency with subprocess, from storlet_execution_path', async () => {
    const r = await invoke('py_probe.py', 'loud', { mode: 'subprocess' });
    expect(await text(r.body)).toBe('LOUD');
  });

  it.skipIf(skip)('fails with ESTORLET and the exception before output; the body errors after', async () => {
    await expect(invoke('py_probe.py', '', { mode: 'raise-early' })).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('ValueError: no good input second line') });
    const late = await invoke('py_probe.py', '', { mode: 'raise-late' });
    await expect(text(late.body)).rejects.toThrow(/failed midway/);
  });

  it.skipIf(skip)('times out a busy Python loop and serves the next call', async () => {
    await expect(invoke('py_probe.py', '', { mode: 'busy' })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(await text((await invoke('py_probe.py', 'after', { mode: 'identity' })).body)).toBe('after');
  });

  it.skipIf(skip)('runs the gzip exec sample and fails an exec storlet with its last stderr line', async () => {
    const r = await invoke('gzip.sh', 'zip me '.repeat(100), {}, { color: 'red', 'Content-Length': '700' });
    expect(gunzipSync(await collect(r.body)).toString()).toBe('zip me '.repeat(100));
    expect(r.metadata).toEqual({ color: 'red' });
    await expect(invoke('fails.sh', '')).rejects.toMatchObject({ code: 'ESTORLET', message: expect.stringContaining('fails.sh exited with code 7: cannot do it') });
  });

  it.skipIf(skip)('keeps the gateway\'s fds flat over many Python and exec invocations, failures included', async () => {
    const round = async (i: number) => {
      if (i % 10 === 0) await invoke('fails.sh', '').catch(() => undefined);
      else if (i % 10 === 5) await invoke('py_probe.py', '', { mode: 'raise-early' }).catch(() => undefined);
      else await collect((await invoke(i % 2 ? 'py_probe.py' : 'gzip.sh', `n${i}`, { mode: 'identity' })).body);
    };
    for (let i = 0; i < 10; i++) await round(i);
    const before = openFds().length;
    for (let i = 0; i < 80; i++) await round(i);
    // At most as many: a Docker API keep-alive socket may close meanwhile, never may one leak.
    await eventually(() => expect(openFds().length).toBeLessThanOrEqual(before));
  });

  // Only a sandbox bounds a fork bomb: the process backend has no pids limit, so the test is
  // defined for Docker only (no skip to count).
  if (backend === 'docker') it.skipIf(skip)('bounds a fork bomb by the pids limit; the timeout kills it all', async () => {
    await expect(invoke('bomb.sh', '')).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(await text((await invoke('gzip.sh', '')).body)).not.toBe(undefined);
    expect(await text((await invoke('uppercase.py', 'still here')).body)).toBe('STILL HERE');
  });
});
