import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { openStore } from '../cache/open-store.js';
import { SandletError } from '../errors.js';
import { addCommonOptions, configFromFlags, type CommonFlags } from './common.js';

interface DeployFlags extends CommonFlags {
  name?: string;
  language: string;
  languageVersion?: string;
  main?: string;
  dependency?: string;
  interfaceVersion: string;
  objectMetadata: string;
  dependencyFile?: boolean;
  dependencyVersion?: string;
  permissions?: string;
  store?: string;
}

export function registerDeploy(program: Command): void {
  addCommonOptions(
    program
      .command('deploy')
      .description('validate a storlet (or dependency) registration and store it atomically')
      .argument('<file>', 'the storlet module or dependency file')
      .option('--name <name>', 'name to register under (default: the file name)')
      .option('--store <store>', 'local, or an object store URL such as http://swift:8080/v1/AUTH_acct (config storlet_store; token from SANDLET_STORE_TOKEN)')
      .option('--language <lang>', 'storlet language: js, python (the Storlets Python API) or exec (an executable file)', 'js')
      .option('--language-version <v>', 'storlet language version (python: 3)')
      .option('--main <spec>', 'main: js FILE or FILE:Export, python module.Class, exec the file (default: the storlet name)')
      .option('--dependency <list>', 'comma-separated dependencies, deployed beforehand')
      .option('--interface-version <v>', 'storlet interface version', '1.0')
      .option('--object-metadata <yes|no>', 'whether the storlet needs the object metadata', 'no')
      .option('--dependency-file', 'deploy FILE as a dependency rather than a storlet')
      .option('--dependency-version <v>', 'a dependency\'s version (mandatory with --dependency-file)')
      .option('--permissions <octal>', 'a dependency\'s file mode in the storlet dir, e.g. 0755 for an executable'),
  ).action(async (file: string, flags: DeployFlags) => {
    const config = configFromFlags(flags, {}, { storlet_store: flags.store });
    let content: Buffer;
    try {
      content = fs.readFileSync(file);
    } catch (err) {
      throw new SandletError('EBADREGISTRATION', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (!flags.dependencyFile && (flags.dependencyVersion !== undefined || flags.permissions !== undefined)) {
      throw new SandletError('EBADREGISTRATION', '--dependency-version and --permissions apply to dependencies: add --dependency-file');
    }
    const store = openStore(config);
    const name = flags.name ?? path.basename(file);
    const reg = await store.deploy(
      content,
      flags.dependencyFile
        ? { kind: 'dependency', name, version: flags.dependencyVersion, permissions: flags.permissions }
        : {
            kind: 'storlet',
            name,
            language: flags.language,
            languageVersion: flags.languageVersion,
            main: flags.main ?? name,
            interfaceVersion: flags.interfaceVersion,
            objectMetadata: flags.objectMetadata,
            dependencies: flags.dependency ?? [],
          },
    );
    process.stdout.write(`deployed ${reg.kind} ${reg.name} (${reg.size} bytes, sha256 ${reg.sha256.slice(0, 12)}…) to the ${store.description}\n`);
  });
}
