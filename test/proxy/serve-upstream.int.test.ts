import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { stopChild } from '../helpers/proc.js';
import { BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';
import { requireSwift, skipSwift, startSwift, type TestSwift } from '../helpers/swift.js';

const run = promisify(execFile);

// The README's "Storlets on Swift" commands, as a new user runs them: the real `sandlet serve
// --upstream` in front of a real Swift, driven by the `swift` CLI from the samples directory.
describe.skipIf(skipSwift)('sandlet serve --upstream (README: Storlets on Swift)', () => {
  let swift: TestSwift;
  let serve: ChildProcess;
  let proxy: string;
  const root = tempDir();
  const work = tempDir();
  let env: NodeJS.ProcessEnv;
  const sh = async (cmd: string): Promise<string> => (await run('bash', ['-c', cmd], { cwd: work.dir, env, encoding: 'utf8' })).stdout;

  beforeAll(async () => {
    requireSwift();
    swift = await startSwift();
    serve = spawn(process.execPath, [BIN, 'serve', '--upstream', swift.url, '--proxy-listen', '127.0.0.1:0', '--backend', 'process', '--root', root.dir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    serve.stderr!.setEncoding('utf8');
    proxy = await new Promise<string>((resolve, reject) => {
      serve.stderr!.on('data', (d: string) => {
        err += d;
        const m = /(http:\/\/127\.0\.0\.1:\d+) \(front door/.exec(err);
        if (m) resolve(m[1]!);
      });
      serve.once('exit', (code) => reject(new Error(`sandlet serve exited ${code}: ${err}`)));
    });
    env = { ...process.env, ST_AUTH: `${proxy}/auth/v1.0`, ST_USER: 'test:tester', ST_KEY: 'testing' };
    fs.copyFileSync(path.join(SAMPLES_DIR, 'uppercase.mjs'), path.join(work.dir, 'uppercase.mjs'));
    fs.copyFileSync(path.join(SAMPLES_DIR, 'sample.txt'), path.join(work.dir, 'sample.txt'));
  });
  afterAll(async () => {
    await stopChild(serve);
    await swift?.stop();
    root.cleanup();
    work.cleanup();
  });

  it('deploys with swift upload, runs on download and on upload', async () => {
    await sh(`swift upload storlet uppercase.mjs -H 'X-Object-Meta-Storlet-Language: js' -H 'X-Object-Meta-Storlet-Interface-Version: 1.0' -H 'X-Object-Meta-Storlet-Object-Metadata: no' -H 'X-Object-Meta-Storlet-Main: uppercase.mjs'`);
    const sample = fs.readFileSync(path.join(work.dir, 'sample.txt'), 'utf8');
    const out = await sh(`swift upload data sample.txt && swift download data sample.txt -o - --header 'X-Run-Storlet: uppercase.mjs'`);
    expect(out).toContain(sample.toUpperCase());
    await sh(`swift upload data sample.txt -H 'X-Run-Storlet: uppercase.mjs' --ignore-checksum`);
    expect(await sh('swift download data sample.txt -o -')).toBe(sample.toUpperCase());
  });

  it('runs a storlet over segmented objects (SLO and DLO) that the swift CLI uploaded', async () => {
    await sh(`swift upload storlet uppercase.mjs -H 'X-Object-Meta-Storlet-Language: js' -H 'X-Object-Meta-Storlet-Interface-Version: 1.0' -H 'X-Object-Meta-Storlet-Object-Metadata: no' -H 'X-Object-Meta-Storlet-Main: uppercase.mjs'`);
    // 3 MiB and a bit, in 1 MiB segments: four segments, the last one short.
    const text = Buffer.alloc(3 * 1024 * 1024 + 123);
    for (let i = 0; i < text.length; i++) text[i] = 97 + (i % 26);
    fs.writeFileSync(path.join(work.dir, 'big.txt'), text);
    const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');
    const want = md5(text.toString('latin1').toUpperCase());
    await sh(`swift upload data big.txt --use-slo --segment-size 1048576 --object-name slo.txt`);
    await sh(`swift upload data big.txt --segment-size 1048576 --object-name dlo.txt`);
    for (const name of ['slo.txt', 'dlo.txt']) {
      expect(await sh(`swift download data ${name} -o - | md5sum`)).toContain(md5(text));
      expect(await sh(`swift download data ${name} -o - --header 'X-Run-Storlet: uppercase.mjs' | md5sum`)).toContain(want);
    }
  });

  it('stops on SIGTERM, leaving no listener behind', async () => {
    serve.kill('SIGTERM');
    const [code] = await once(serve, 'exit');
    expect(code).toBe(0);
    await expect(fetch(`${proxy}/info`)).rejects.toThrow();
  });
});
