import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { createGateway } from '../gateway.js';
import { SAMPLES_DIR } from '../package-root.js';
import { ONE_SHOT_DEFAULTS, addCommonOptions, configFromFlags, readyWithNotice, type CommonFlags } from './common.js';

export const SAMPLE_STORLETS = ['identity.mjs', 'uppercase.mjs', 'metadata-echo.mjs', 'concat.mjs'];

async function text(body: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function ms(from: number): string {
  return `${(performance.now() - from).toFixed(1)} ms`;
}

export function registerDemo(program: Command): void {
  addCommonOptions(
    program
      .command('demo')
      .description('deploy the bundled sample storlets into a temp root and invoke one in a sandbox')
      .option('--storlet <name>', 'sample to invoke', 'uppercase.mjs'),
  ).action(async (flags: CommonFlags & { storlet: string }) => {
    const root = flags.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sandlet-demo-'));
    const config = configFromFlags({ ...flags, root }, ONE_SHOT_DEFAULTS);
    const gateway = createGateway(config);
    const out = (line = ''): boolean => process.stdout.write(`${line}\n`);
    try {
      await readyWithNotice(gateway);
      for (const name of SAMPLE_STORLETS) {
        await gateway.deploy(fs.readFileSync(path.join(SAMPLES_DIR, name)), {
          kind: 'storlet',
          name, language: 'js', main: name, interfaceVersion: '1.0', objectMetadata: 'no',
        });
      }
      out(`deployed ${SAMPLE_STORLETS.join(', ')} into ${config.store_dir}`);
      const sample = path.join(SAMPLES_DIR, 'sample.txt');
      out(`invoking ${flags.storlet} in scope "demo" (${gateway.backendName} backend) on ${sample}`);
      const invoke = async () => {
        const fh = await fs.promises.open(sample);
        try {
          const r = await gateway.invoke({ scope: 'demo', storlet: flags.storlet, input: fh, inputMetadata: { 'Content-Type': 'text/plain' }, params: { demo: 'yes' } });
          return { metadata: r.metadata, body: await text(r.body) };
        } finally {
          await fh.close();
        }
      };
      let t = performance.now();
      const first = await invoke();
      const cold = ms(t);
      t = performance.now();
      await invoke();
      const warm = ms(t);
      out('--- output ---');
      process.stdout.write(first.body);
      out('--- metadata ---');
      out(JSON.stringify(first.metadata));
      out('--- timings ---');
      out(`cold (start sandbox + daemon, invoke): ${cold}`);
      out(`warm (invoke only):                    ${warm}`);
      const log = fs.readFileSync(gateway.sandbox('demo').paths.hostLogPath(flags.storlet), 'utf8').trim();
      if (log) {
        out('--- storlet log ---');
        out(log);
      }
    } finally {
      // The demo's root is temporary: its sandboxes go with it.
      await gateway.close({ stopSandboxes: !flags.root });
      if (!flags.root) fs.rmSync(root, { recursive: true, force: true });
    }
  });
}
