import type { Command } from 'commander';
import { createToken } from '../server/tokens.js';
import { configFromFlags, type CommonFlags } from './common.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('bearer tokens for `sandlet serve`');
  token
    .command('create')
    .description('add a token to the tokens file (only its scrypt hash is stored) and print it, once')
    .requiredOption('--role <role>', 'invoke, operate or admin')
    .option('--scopes <list>', 'invoke tokens only: the scopes it may invoke in, comma-separated')
    .option('--tokens-file <file>', 'the tokens file (config tokens_file)')
    .option('--note <text>', 'a note stored beside the hash (who or what the token is for)')
    .option('--root <dir>', 'host root (config host_root)')
    .option('--config <file>', 'YAML or JSON config file')
    .action(async (flags: CommonFlags & { role: string; scopes?: string; tokensFile?: string; note?: string }) => {
      const config = configFromFlags(flags, {}, { tokens_file: flags.tokensFile });
      const scopes = flags.scopes?.split(',').map((s) => s.trim()).filter(Boolean);
      const { token: value, entry } = await createToken(config.tokens_file, flags.role, scopes, flags.note);
      process.stderr.write(`sandlet: token ${entry.id} (${entry.role}${entry.scopes ? ` in ${entry.scopes.join(', ')}` : ''}) added to ${config.tokens_file}; it is shown only now\n`);
      process.stdout.write(`${value}\n`);
    });
}
