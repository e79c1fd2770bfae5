// `sandlet s3-key create|ls|revoke`: the S3 keys clients of the access points sign with, in the
// configured root's S3 keys file (mode 0600; a running server applies changes without a restart).
import type { Command } from 'commander';
import { SandletError } from '../errors.js';
import { createS3Key, listS3Keys, revokeS3Key } from '../proxy/s3/s3-keys.js';
import { configFromFlags, type CommonFlags } from './common.js';
import { table } from './format.js';

type FileFlags = CommonFlags & { s3KeysFile?: string };

function withFile(cmd: Command): Command {
  return cmd
    .option('--s3-keys-file <file>', 'the S3 keys file (config s3_keys_file)')
    .option('--root <dir>', 'host root (config host_root)')
    .option('--config <file>', 'YAML or JSON config file');
}

const fileOf = (flags: FileFlags): string => configFromFlags(flags, {}, { s3_keys_file: flags.s3KeysFile }).s3_keys_file;

export function registerS3Key(program: Command): void {
  const key = program.command('s3-key').description('S3 keys for the access points (SigV4 access key id and secret)');
  withFile(
    key
      .command('create')
      .description('issue a key for some access points and print it, once (as shell exports, or --json)')
      .requiredOption('--access-points <list>', 'the access points it may use, comma-separated')
      .option('--note <text>', 'a note stored beside the key')
      .option('--json', 'print JSON for scripts'),
  ).action((flags: FileFlags & { accessPoints: string; note?: string; json?: boolean }) => {
    const file = fileOf(flags);
    const k = createS3Key(file, flags.accessPoints.split(',').map((s) => s.trim()).filter(Boolean), flags.note);
    process.stderr.write(`sandlet: S3 key ${k.id} for ${k.accessPoints.join(', ')} added to ${file}; its secret is shown only now\n`);
    if (flags.json) process.stdout.write(`${JSON.stringify({ accessKeyId: k.id, secretAccessKey: k.secret, accessPoints: k.accessPoints })}\n`);
    else process.stdout.write(`export AWS_ACCESS_KEY_ID=${k.id}\nexport AWS_SECRET_ACCESS_KEY=${k.secret}\n`);
  });
  withFile(key.command('ls').description('list the keys (never their secrets)').option('--json', 'print JSON for scripts')).action((flags: FileFlags & { json?: boolean }) => {
    const all = listS3Keys(fileOf(flags));
    if (flags.json) return void process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    process.stdout.write(table(['ACCESS KEY ID', 'ACCESS POINTS', 'CREATED', 'NOTE'], all.map((k) => [k.id, k.accessPoints.join(','), k.created, k.note ?? ''])));
  });
  withFile(key.command('revoke').description('remove a key; clients using it are refused at once').argument('<id>')).action((id: string, flags: FileFlags) => {
    if (!revokeS3Key(fileOf(flags), id)) throw new SandletError('EBADNAME', `no S3 key ${id}`);
    process.stderr.write(`sandlet: S3 key ${id} revoked\n`);
  });
}
