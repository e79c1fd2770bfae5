import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config.js';
import { SandletError, oneLine } from '../errors.js';
import { createGateway } from '../gateway.js';
import { SAMPLES_DIR } from '../package-root.js';
import { connectDocker, pingEngine } from '../runtime/docker-engine.js';
import { buildEngineImage, DEFAULT_BASE_IMAGE } from '../runtime/engine-image.js';

interface ImageFlags {
  config?: string;
  runtime?: string;
}

export function registerImage(program: Command): void {
  const image = program.command('image').description('build and check engine images');

  image
    .command('build')
    .description('build the engine image from the built agent (base: the offline sandlet/base:bookworm, or --base)')
    .option('--tag <tag>', 'image tag (default: default_container_image_name)')
    .option('--base <image>', 'base image with node >= 18', DEFAULT_BASE_IMAGE)
    .option('--config <file>', 'YAML or JSON config file')
    .action(async (flags: ImageFlags & { tag?: string; base: string }) => {
      const config = loadConfig(flags.config);
      const tag = flags.tag ?? config.default_container_image_name;
      const docker = connectDocker(config.docker_socket);
      await pingEngine(docker, config.docker_socket);
      const started = Date.now();
      const id = await buildEngineImage(docker, {
        tag,
        base: flags.base,
        onProgress: (line) => {
          if (/^(Step|Successfully)/.test(line)) process.stdout.write(`  ${line}\n`);
        },
      });
      process.stdout.write(`built ${tag} (${id.slice(7, 19)}) on ${flags.base} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    });

  image
    .command('check')
    .description('start a throwaway sandbox from IMAGE, PING it, run the identity sample, report version, start-up time and hardening')
    .argument('<image>', 'engine image to check')
    .option('--config <file>', 'YAML or JSON config file (its container limits apply)')
    .option('--runtime <runtime>', 'OCI runtime to check it under: runc or runsc (default: the config\'s container_runtime)')
    .action(async (imageRef: string, flags: ImageFlags) => {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlet-check-'));
      const base = loadConfig(flags.config);
      // One name per check: checks run side by side (CI jobs, several images) never share a container.
      const run = randomBytes(4).toString('hex');
      const config = loadConfig(flags.config, {
        host_root: root,
        backend: 'docker',
        default_container_image_name: imageRef,
        // A namespace no tenant image lives in: the check runs IMAGE itself.
        image_namespace: `sandlet-check-${run}`,
        container_prefix: `${base.container_prefix}check-${run}-`,
        ...(flags.runtime ? { container_runtime: flags.runtime as 'runc' | 'runsc' } : {}),
      });
      const gateway = createGateway(config, { logger: pino({ level: 'silent' }) });
      const out = (k: string, v: string): boolean => process.stdout.write(`${k.padEnd(18)} ${v}\n`);
      try {
        await gateway.ready();
        await gateway.deploy(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), {
          kind: 'storlet',
          name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no',
        });
        const sandbox = gateway.sandbox('check');
        let t = performance.now();
        await sandbox.ensureRunning();
        const startup = performance.now() - t;
        const version = sandbox.agentVersion as { agent?: string; protocol?: number } | undefined;
        if (!version?.agent) throw new SandletError('ESANDBOX', `the factory in ${imageRef} answered PING without a sandlet version`);
        out('image', imageRef);
        out('agent', `${version.agent} (protocol ${version.protocol})`);
        out('start-up', `${startup.toFixed(0)} ms (container start → factory answers PING)`);
        const text = `sandlet image check ${new Date().toISOString()}\n`;
        t = performance.now();
        const r = await gateway.invoke({ scope: 'check', storlet: 'identity.mjs', input: Buffer.from(text) });
        let body = '';
        for await (const c of r.body) body += String(c);
        if (body !== text) throw new SandletError('ESANDBOX', `identity returned ${JSON.stringify(body.slice(0, 80))}, not its input`);
        out('identity', `ok in ${(performance.now() - t).toFixed(0)} ms (daemon start + invocation)`);
        const info = await connectDocker(config.docker_socket).getContainer(sandbox.describe().id!).inspect();
        const h = info.HostConfig;
        out('user', info.Config.User || '(image default)');
        out('runtime', String(h.Runtime ?? 'runc'));
        out('network', String(h.NetworkMode));
        out('read-only root', String(h.ReadonlyRootfs));
        out('capabilities', `dropped ${(h.CapDrop ?? []).join(',')}`);
        out('security', (h.SecurityOpt ?? []).join(','));
        const nproc = h.Ulimits?.find((u) => u.Name === 'nproc')?.Soft; // runsc: gVisor enforces the pids limit (src/runtime/backends/docker.ts)
        out('limits', `pids ${nproc === undefined ? h.PidsLimit : `${nproc} (in gVisor; host backstop ${h.PidsLimit})`}, memory ${h.Memory} (swap ${h.MemorySwap}), cpu period ${h.CpuPeriod} quota ${h.CpuQuota || 'none'}, nofile ${h.Ulimits?.find((u) => u.Name === 'nofile')?.Soft}`);
        out('mounts', (h.Binds ?? []).join(' '));
        if (!h.ReadonlyRootfs || !(h.CapDrop ?? []).includes('ALL') || h.NetworkMode !== 'none') {
          throw new SandletError('ESANDBOX', 'the sandbox is missing part of its hardening');
        }
        out('result', 'ok');
      } catch (err) {
        throw new SandletError('ESANDBOX', `image check of ${imageRef} failed: ${oneLine(err)}`);
      } finally {
        await gateway.close({ stopSandboxes: true });
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
}
