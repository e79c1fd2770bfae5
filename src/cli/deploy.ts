import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { LocalStore } from '../cache/local-store.js';
import { SandletError } from '../errors.js';
import { addCommonOptions, configFromFlags, type CommonFlags } from './common.js';

interface DeployFlags extends CommonFlags {
  name?: string;
  language: string;
  main?: string;
  dependency?: string;
  interfaceVersion: string;
  objectMetadata: string;
  dependencyFile?: boolean;
}

export function registerDeploy(program: Command): void {
  addCommonOptions(
    program
      .command('deploy')
      .description('validate a storlet (or dependency) registration and store it atomically')
      .argument('<file>', 'the storlet module or dependency file')
      .option('--name <name>', 'name to register under (default: the file name)')
      .option('--language <lang>', 'storlet language', 'js')
      .option('--main <spec>', 'main module, FILE or FILE:Export (default: the storlet name)')
      .option('--dependency <list>', 'comma-separated dependencies, deployed beforehand')
      .option('--interface-version <v>', 'storlet interface version', '1.0')
      .option('--object-metadata <yes|no>', 'whether the storlet needs the object metadata', 'no')
      .option('--dependency-file', 'deploy FILE as a dependency rather than a storlet'),
  ).action((file: string, flags: DeployFlags) => {
    const config = configFromFlags(flags);
    let content: Buffer;
    try {
      content = fs.readFileSync(file);
    } catch (err) {
      throw new SandletError('EBADREGISTRATION', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    const store = new LocalStore(config.store_dir);
    const name = flags.name ?? path.basename(file);
    const reg = flags.dependencyFile
      ? store.deployDependency(content, name)
      : store.deployStorlet(content, {
          name,
          language: flags.language,
          main: flags.main ?? name,
          interfaceVersion: flags.interfaceVersion,
          objectMetadata: flags.objectMetadata,
          dependencies: flags.dependency ?? [],
        });
    process.stdout.write(`deployed ${reg.kind} ${reg.name} (${reg.size} bytes, sha256 ${reg.sha256.slice(0, 12)}…) in ${store.root}\n`);
  });
}
