import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path'; import pino from 'pino';
import { createGateway } from '../dist/index.js';
import { SAMPLES_DIR } from '../dist/package-root.js';
const root = fs.mkdtempSync('/tmp/slb-');
const gw = createGateway({ host_root: root }, { logger: pino({ level: 'warn' }) });
gw.store.deployStorlet(fs.readFileSync(path.join(SAMPLES_DIR, 'identity.mjs')), { name: 'identity.mjs', language: 'js', main: 'identity.mjs', interfaceVersion: '1.0', objectMetadata: 'no' });
const kib = Buffer.alloc(1024);
const T = { invoke: 0, body: 0 }; const N = 3000;
for (let i = 0; i < N + 300; i++) {
  const t0 = performance.now();
  const r = await gw.invoke({ scope: 'b', storlet: 'identity.mjs', input: kib });
  const t1 = performance.now();
  for await (const _ of r.body);
  const t2 = performance.now();
  if (i >= 300) { T.invoke += t1 - t0; T.body += t2 - t1; }
}
console.log('invoke→metadata avg', (T.invoke / N).toFixed(3), 'body avg', (T.body / N).toFixed(3));
await gw.close();
