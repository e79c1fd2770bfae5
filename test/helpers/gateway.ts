import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { LocalStore } from '../../src/cache/local-store.js';
import type { SandletConfigInput } from '../../src/config.js';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { tempDir } from './fs.js';

export const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'storlets');
export const SAMPLES = ['identity.mjs', 'uppercase.mjs', 'metadata-echo.mjs', 'concat.mjs'];

/** A gateway on the process backend in a temp root, with the samples and fixtures deployed. */
export function testGateway(config: SandletConfigInput = {}): { gateway: Gateway; root: string; close: () => Promise<void> } {
  const { dir, cleanup } = tempDir();
  const gateway = createGateway({ host_root: dir, backend: 'process', ...config }, { logger: pino({ level: process.env.SANDLET_TEST_LOG ?? 'silent' }) });
  for (const name of SAMPLES) deploy(gateway, path.join(SAMPLES_DIR, name));
  for (const name of ['misbehave.mjs', 'bad-syntax.mjs', 'no-invoke.mjs']) deploy(gateway, path.join(FIXTURES, name));
  return {
    gateway,
    root: dir,
    close: async () => {
      await gateway.close({ stopSandboxes: true });
      cleanup();
    },
  };
}

/** Deploys into the gateway's local store; the next invocation of that name asks the store again. */
export function deploy(gateway: Gateway, file: string, extra: { main?: string; dependencies?: string[]; name?: string } = {}): void {
  const name = extra.name ?? path.basename(file);
  localStore(gateway).deployStorlet(fs.readFileSync(file), {
    name,
    language: 'js',
    interfaceVersion: '1.0',
    objectMetadata: 'no',
    main: extra.main ?? name,
    dependencies: extra.dependencies ?? [],
  });
  gateway.catalog.invalidate('storlet', name);
}

export function localStore(gateway: Gateway): LocalStore {
  if (!(gateway.store instanceof LocalStore)) throw new Error('this test needs the local store');
  return gateway.store;
}

/** A storlet whose output is `tag` (padded with a comment to `pad` extra bytes). */
export function versionedStorlet(tag: string, pad = 0): Buffer {
  return Buffer.from(
    `// ${'x'.repeat(pad)}\nexport async function invoke({ inputs, output }) { inputs[0].stream.resume(); output.setMetadata({}); output.stream.end(${JSON.stringify(tag)}); }\n`,
  );
}
