// Builds the engine image: stages a context with the built agent (dist/, the native addon, the
// agent's runtime modules) beside images/engine/Dockerfile and hands it to the engine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SandletError, oneLine } from '../errors.js';
import { PACKAGE_ROOT, PYTHON_HOST_SOURCE } from '../package-root.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../version.js';
import { inspectImage, type DockerClient } from './docker-engine.js';

export const DEFAULT_BASE_IMAGE = 'sandlet/base:bookworm';
/** What the agent imports at run time; their own dependencies follow. */
const AGENT_MODULES = ['msgpackr', 'p-queue', 'pino'];

/** The agent's runtime modules and everything they depend on (optional ones left out). */
export function agentModuleClosure(root = PACKAGE_ROOT): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    const manifest = path.join(root, 'node_modules', name, 'package.json');
    if (!fs.existsSync(manifest)) throw new SandletError('ESANDBOX', `module ${name} is not installed: run npm install`);
    seen.add(name);
    const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  AGENT_MODULES.forEach(visit);
  return [...seen].sort();
}

/**
 * Bundles the agent's two entry points (factory/daemon main, task worker) into one file each:
 * Node 18 then loads one file instead of ~100 modules, which cuts every agent process's start-up
 * by about a third. Returns false when esbuild is not installed (production installs).
 */
async function bundleAgent(outDir: string): Promise<boolean> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    return false;
  }
  await esbuild.build({
    entryPoints: {
      main: path.join(PACKAGE_ROOT, 'dist', 'agent', 'main.js'),
      'task-worker': path.join(PACKAGE_ROOT, 'dist', 'agent', 'task-worker.js'),
    },
    outdir: outDir,
    bundle: true,
    // The tiny entry stays tiny: factory and daemon code load as their own chunks.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    platform: 'node',
    format: 'esm',
    target: 'node18',
    // Bundled CommonJS modules call require(); ESM has none, so give them one.
    banner: { js: "import { createRequire as __sandletRequire } from 'node:module'; const require = __sandletRequire(import.meta.url);" },
    external: ['msgpackr-extract'],
    logLevel: 'error',
  });
  return true;
}

/** Stages the build context in a temp dir; the caller removes it. */
export async function stageContext(): Promise<string> {
  const dist = path.join(PACKAGE_ROOT, 'dist', 'agent', 'main.js');
  const addon = path.join(PACKAGE_ROOT, 'build', 'Release', 'sandlet_sbus.node');
  for (const f of [dist, addon]) {
    if (!fs.existsSync(f)) throw new SandletError('ESANDBOX', `${f} is missing: run npm install (or npm run build) first`);
  }
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlet-image-'));
  try {
    const agent = path.join(ctx, 'agent');
    fs.copyFileSync(path.join(PACKAGE_ROOT, 'images', 'engine', 'Dockerfile'), path.join(ctx, 'Dockerfile'));
    fs.mkdirSync(path.join(agent, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(addon, path.join(agent, 'build', 'Release', 'sandlet_sbus.node'));
    fs.writeFileSync(path.join(agent, 'package.json'), JSON.stringify({ name: 'sandlet-agent', version: AGENT_VERSION, type: 'module', private: true }));
    // Same layout either way: dist/agent/main.js and the addon at build/Release, two levels up.
    if (!(await bundleAgent(path.join(agent, 'dist', 'agent')))) {
      fs.cpSync(path.join(PACKAGE_ROOT, 'dist'), path.join(agent, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') });
      for (const mod of agentModuleClosure()) {
        fs.cpSync(path.join(PACKAGE_ROOT, 'node_modules', mod), path.join(agent, 'node_modules', mod), { recursive: true });
      }
    }
    // The Python storlet host sits beside the agent's code, where python-runtime looks for it.
    fs.mkdirSync(path.join(agent, 'dist', 'agent', 'python'), { recursive: true });
    fs.copyFileSync(PYTHON_HOST_SOURCE, path.join(agent, 'dist', 'agent', 'python', 'storlet_host.py'));
  } catch (err) {
    fs.rmSync(ctx, { recursive: true, force: true }); // no half-staged context left behind
    throw err;
  }
  return ctx;
}

function listFiles(dir: string, base = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, base), { withFileTypes: true })) {
    const rel = path.join(base, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

export interface BuildOptions {
  tag: string;
  base: string;
  /** One line per build step, for progress output. */
  onProgress?: (line: string) => void;
}

/** Builds the engine image; resolves to its id. */
export async function buildEngineImage(docker: DockerClient, opts: BuildOptions): Promise<string> {
  if (!(await inspectImage(docker, opts.base))) {
    const hint = opts.base === DEFAULT_BASE_IMAGE ? 'build it offline with scripts/build-base-image.sh' : 'pull or build it first';
    throw new SandletError('ESANDBOX', `base image ${opts.base} is missing: ${hint}`);
  }
  const ctx = await stageContext();
  try {
    const stream = await docker.buildImage(
      { context: ctx, src: listFiles(ctx) },
      { t: opts.tag, buildargs: { BASE_IMAGE: opts.base, AGENT_VERSION, PROTOCOL_VERSION: String(PROTOCOL_VERSION) }, rm: true, forcerm: true },
    );
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null, out: { error?: string }[]) => {
          const failed = err ?? out.find((o) => o.error)?.error;
          if (failed) reject(new SandletError('ESANDBOX', `image build failed: ${oneLine(failed)}`));
          else resolve();
        },
        (event: { stream?: string; status?: string }) => {
          const line = (event.stream ?? event.status ?? '').trim();
          if (line) opts.onProgress?.(line);
        },
      );
    });
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
  const built = await inspectImage(docker, opts.tag);
  if (!built) throw new SandletError('ESANDBOX', `image build reported success but ${opts.tag} is missing`);
  return built.id;
}
