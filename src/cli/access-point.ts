// `sandlet access-point create|ls|rm`: the access points of the S3 door, in the configured root's
// access points file (a running server applies changes without a restart).
import type { Command } from 'commander';
import { SandletError } from '../errors.js';
import { createAccessPoint, listAccessPoints, removeAccessPoint } from '../proxy/s3/access-points.js';
import { collectPair, configFromFlags, type CommonFlags } from './common.js';
import { table } from './format.js';

type FileFlags = CommonFlags & { accessPointsFile?: string };

function withFile(cmd: Command): Command {
  return cmd
    .option('--access-points-file <file>', 'the access points file (config access_points_file)')
    .option('--root <dir>', 'host root (config host_root)')
    .option('--config <file>', 'YAML or JSON config file');
}

const fileOf = (flags: FileFlags): string => configFromFlags(flags, {}, { access_points_file: flags.accessPointsFile }).access_points_file;

export function registerAccessPoint(program: Command): void {
  const ap = program.command('access-point').description('S3 access points: a bucket name S3 clients use, bound to an upstream bucket and a storlet');
  withFile(
    ap
      .command('create')
      .description('bind NAME to an upstream bucket and a storlet with fixed params')
      .argument('<name>', 'the access point name (a bucket name: 3-63 of a-z 0-9 . -)')
      .requiredOption('--bucket <bucket>', 'the upstream bucket')
      .requiredOption('--storlet <name>', 'the storlet to run (from the configured store)')
      .option('--param <k=v>', 'a fixed storlet param (repeatable)', collectPair, {})
      .option('--scope <scope>', 'the sandbox scope the storlet runs in (default: the access point name)')
      .option('--on <ops>', 'what it serves, comma-separated: get (reads, listings), put (PutObject, multipart uploads), delete (DeleteObject)', 'get')
      .option('--range <mode>', 'output: a Range applies to the output; storlet: the storlet gets it as its input range', 'output')
      .option('--replace', 'replace an access point of the same name'),
  ).action((name: string, flags: FileFlags & { bucket: string; storlet: string; param: Record<string, string>; scope?: string; on: string; range: string; replace?: boolean }) => {
    const file = fileOf(flags);
    const a = createAccessPoint(file, { name, bucket: flags.bucket, storlet: flags.storlet, params: flags.param, scope: flags.scope, on: flags.on, range: flags.range }, flags.replace);
    process.stderr.write(`sandlet: access point ${a.name} → bucket ${a.bucket}, storlet ${a.storlet} in scope ${a.scope} (${a.on.join(', ')}) saved to ${file}\n`);
  });
  withFile(ap.command('ls').description('list the access points').option('--json', 'print JSON for scripts')).action((flags: FileFlags & { json?: boolean }) => {
    const all = listAccessPoints(fileOf(flags));
    if (flags.json) return void process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    process.stdout.write(table(['NAME', 'BUCKET', 'STORLET', 'SCOPE', 'ON', 'RANGE', 'PARAMS'], all.map((a) => [a.name, a.bucket, a.storlet, a.scope, a.on.join(','), a.range, Object.entries(a.params).map(([k, v]) => `${k}=${v}`).join(' ') || '-'])));
  });
  withFile(ap.command('rm').description('remove an access point').argument('<name>')).action((name: string, flags: FileFlags) => {
    if (!removeAccessPoint(fileOf(flags), name)) throw new SandletError('EBADNAME', `no access point ${name}`);
    process.stderr.write(`sandlet: access point ${name} removed\n`);
  });
}
