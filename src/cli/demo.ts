import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { createGateway } from '../gateway.js';
import { SAMPLES_DIR } from '../package-root.js';
import { ONE_SHOT_DEFAULTS, addCommonOptions, configFromFlags, readyWithNotice, type CommonFlags } from './common.js';

/** The bundled samples the demo deploys: one or more of each language, with their mains. */
export const SAMPLE_STORLETS: { name: string; language: 'js' | 'python' | 'exec'; main: string }[] = [
  { name: 'identity.mjs', language: 'js', main: 'identity.mjs' },
  { name: 'uppercase.mjs', language: 'js', main: 'uppercase.mjs' },
  { name: 'metadata-echo.mjs', language: 'js', main: 'metadata-echo.mjs' },
  { name: 'concat.mjs', language: 'js', main: 'concat.mjs' },
  { name: 'identity.py', language: 'python', main: 'identity.IdentityStorlet' },
  { name: 'uppercase.py', language: 'python', main: 'uppercase.UpperStorlet' },
  { name: 'gzip.sh', language: 'exec', main: 'gzip.sh' },
];

/** The output as text, or a note of its size when it is binary (gzip.sh's). */
async function text(body: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  const bytes = Buffer.concat(chunks);
  const decoded = bytes.toString('utf8');
  return bytes.includes(0) || decoded.includes('\ufffd') ? `(${bytes.length} bytes of binary output)\n` : decoded;
}

function ms(from: number): string {
  return `${(performance.now() - from).toFixed(1)} ms`;
}

export function registerDemo(program: Command): void {
  addCommonOptions(
    program
      .command('demo')
      .description('deploy the bundled sample storlets into a temp root and invoke one in a sandbox')
      .option('--storlet <name>', `sample to invoke: ${SAMPLE_STORLETS.map((s) => s.name).join(', ')}`, 'uppercase.mjs'),
  ).action(async (flags: CommonFlags & { storlet: string }) => {
    const root = flags.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sandlet-demo-'));
    const config = configFromFlags({ ...flags, root }, ONE_SHOT_DEFAULTS);
    const gateway = createGateway(config);
    const out = (line = ''): boolean => process.stdout.write(`${line}\n`);
    try {
      await readyWithNotice(gateway);
      for (const { name, language, main } of SAMPLE_STORLETS) {
        await gateway.deploy(fs.readFileSync(path.join(SAMPLES_DIR, name)), {
          kind: 'storlet',
          name, language, main, interfaceVersion: '1.0', objectMetadata: 'no',
        });
      }
      out(`deployed ${SAMPLE_STORLETS.map((s) => `${s.name} (${s.language})`).join(', ')} into ${config.store_dir}`);
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
