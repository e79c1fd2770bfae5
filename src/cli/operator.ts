// Operator commands: scopes, logs, daemons of a running server; `scopes stop --all` on a root, without one.
import { Option, type Command } from 'commander';
import { SandletError, oneLine } from '../errors.js';
import { createGateway } from '../gateway.js';
import { ONE_SHOT_DEFAULTS, addCommonOptions, configFromFlags, readyWithNotice, type CommonFlags } from './common.js';
import { table } from './format.js';
import { stdoutClosed } from './output.js';
import { EXIT, ServerCommandError, parseServer, request, requestJson, type ServerTarget } from './server-client.js';

interface ServerFlags {
  server?: string;
  json?: boolean;
}

type ScopeView = {
  scope: string;
  state: string;
  image: string | null;
  startedAt: string | null;
  uptimeSeconds: number;
  inFlight: number;
  daemons: string[];
  crashes: number;
  restarts: Record<string, number>;
  recentRestarts: { at: string; kind: string | null; reason: string }[];
  lastStop: { at: string; reason: string } | null;
  uptimeRatio: number;
  meanTimeToRecoverySeconds: number | null;
  backoffUntil: string | null;
};

const DEFAULT_SERVER = 'unix:/var/lib/sandlet/sandlet.sock';

function withServer(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <where>', 'unix:PATH or http(s)://HOST:PORT of `sandlet serve` (token: SANDLET_TOKEN)').env('SANDLET_SERVER').default(DEFAULT_SERVER))
    .option('--json', 'print JSON for scripts');
}

function target(flags: ServerFlags): ServerTarget {
  return parseServer(flags.server ?? DEFAULT_SERVER);
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
}

function restarts(r: Record<string, number>): string {
  return Object.entries(r).map(([k, n]) => `${k}:${n}`).join(' ') || '-';
}

const enc = encodeURIComponent;

export function registerOperator(program: Command): void {
  const scopes = program.command('scopes').description('see and drive the scopes of a running server');

  withServer(scopes.command('ls').description('every scope the server has a sandbox for')).action(async (flags: ServerFlags) => {
    const { scopes: list } = await requestJson<{ scopes: ScopeView[] }>(target(flags), 'GET', '/v1/scopes');
    if (flags.json) return out(JSON.stringify(list, null, 2));
    out(table(['SCOPE', 'STATE', 'UPTIME', 'IN-FLIGHT', 'DAEMONS', 'RESTARTS'], list.map((s) => [s.scope, s.state, s.state === 'running' ? duration(s.uptimeSeconds) : '-', String(s.inFlight), String(s.daemons.length), restarts(s.restarts)])));
  });

  withServer(scopes.command('status').description('one scope in detail').argument('<scope>')).action(async (scope: string, flags: ServerFlags) => {
    const s = await requestJson<ScopeView>(target(flags), 'GET', `/v1/scopes/${enc(scope)}`);
    if (flags.json) return out(JSON.stringify(s, null, 2));
    const rows: [string, string][] = [
      ['scope', s.scope],
      ['state', s.state + (s.backoffUntil ? ` (backing off until ${s.backoffUntil})` : '')],
      ['image', s.image ?? '-'],
      ['started at', s.startedAt ?? '-'],
      ['uptime', s.state === 'running' ? duration(s.uptimeSeconds) : '-'],
      ['in flight', String(s.inFlight)],
      ['daemons', s.daemons.join(', ') || '-'],
      ['restarts', restarts(s.restarts)],
      ['uptime ratio', `${(s.uptimeRatio * 100).toFixed(2)}%`],
      ['mean recovery', s.meanTimeToRecoverySeconds === null ? '-' : `${s.meanTimeToRecoverySeconds.toFixed(2)} s`],
      ['last stop', s.lastStop ? `${s.lastStop.at} ${s.lastStop.reason}` : '-'],
    ];
    out(rows.map(([k, v]) => `${k.padEnd(14)} ${v}`).join('\n'));
    if (s.recentRestarts.length > 0) {
      out('\nrecent starts:');
      out(table(['AT', 'KIND', 'REASON'], s.recentRestarts.map((r) => [r.at, r.kind ?? '-', r.reason])));
    }
  });

  withServer(
    scopes
      .command('restart')
      .description('restart a scope (or every running scope) now, or at its next idle moment')
      .argument('[scope]')
      .option('--all', 'every running scope of the server (each is tried; failures are reported, then the exit is non-zero)')
      .option('--when-idle', 'restart once no invocation is in flight')
      .option('--reason <text>', 'recorded with the restart'),
  ).action(async (scope: string | undefined, flags: ServerFlags & { all?: boolean; whenIdle?: boolean; reason?: string }) => {
    if (!scope === !flags.all) throw new ServerCommandError('name a scope or pass --all (not both)', EXIT.usage);
    const t = target(flags);
    // Dead, starting and stopped scopes start at their next invocation anyway: --all restarts what runs.
    const names = flags.all ? (await requestJson<{ scopes: ScopeView[] }>(t, 'GET', '/v1/scopes')).scopes.filter((s) => s.state === 'running').map((s) => s.scope) : [scope!];
    const q = new URLSearchParams({ when: flags.whenIdle ? 'idle' : 'now', ...(flags.reason ? { reason: flags.reason } : {}) });
    const results: unknown[] = [];
    const failures: ServerCommandError[] = [];
    for (const name of names) {
      try {
        const r = await requestJson<Record<string, unknown>>(t, 'POST', `/v1/scopes/${enc(name)}/restart?${q}`);
        results.push(r);
        if (!flags.json) out(flags.whenIdle && r.restart ? `${name}: restart at its next idle moment` : `${name}: restarted (${String(r.state)})`);
      } catch (err) {
        if (!flags.all || !(err instanceof ServerCommandError)) throw err;
        failures.push(err);
        results.push({ scope: name, error: err.message });
        process.stderr.write(`sandlet: ${name}: restart failed: ${oneLine(err)}\n`);
      }
    }
    if (flags.json) out(JSON.stringify(results, null, 2));
    else if (names.length === 0) out('no running scope to restart');
    if (failures.length > 0) {
      // One kind of failure keeps its exit code (e.g. 5: unavailable); a mix is 1.
      const codes = new Set(failures.map((f) => f.exitCode));
      throw new ServerCommandError(`${failures.length} of ${names.length} restarts failed`, codes.size === 1 ? failures[0]!.exitCode : EXIT.error);
    }
  });

  withServer(
    addCommonOptions(
      scopes
        .command('stop')
        .description('stop a scope\'s sandbox through the server (it starts again on the next invocation), or with --all every sandbox of a root, without a server')
        .argument('[scope]')
        .option('--all', 'stop every sandbox of the configured root (--root/--config), Docker ones left by earlier processes included; needs no server')
        .option('--reason <text>', 'recorded with the stop'),
    ),
  ).action(async (scope: string | undefined, flags: ServerFlags & CommonFlags & { all?: boolean; reason?: string }) => {
    if (!scope === !flags.all) throw new ServerCommandError('name a scope or pass --all (not both)', EXIT.usage);
    if (flags.all) return stopAllLocal(flags);
    if (flags.root || flags.config || flags.backend) throw new ServerCommandError('--root, --config and --backend go with --all (a named scope is stopped through the server)', EXIT.usage);
    const q = flags.reason ? `?${new URLSearchParams({ reason: flags.reason })}` : '';
    const r = await requestJson<ScopeView>(target(flags), 'POST', `/v1/scopes/${enc(scope!)}/stop${q}`);
    out(flags.json ? JSON.stringify(r, null, 2) : `${scope}: ${r.state}`);
  });

  const daemons = program.command('daemons').description('storlet daemons of a running server');
  withServer(daemons.command('stop').description('stop one storlet daemon of a scope (it starts again on the next invocation)').argument('<scope>').argument('<storlet>')).action(
    async (scope: string, storlet: string, flags: ServerFlags) => {
      const r = await requestJson<Record<string, unknown>>(target(flags), 'POST', `/v1/scopes/${enc(scope)}/daemons/${enc(storlet)}/stop`);
      out(flags.json ? JSON.stringify(r) : `${scope}: stopped the daemon of ${storlet}`);
    },
  );

  withServer(
    program
      .command('logs')
      .description('a storlet\'s invocation log in a scope')
      .argument('<scope>')
      .argument('<storlet>')
      .option('-n, --tail <lines>', 'lines from the end', '100')
      .option('-f, --follow', 'keep printing what is appended'),
  ).action(async (scope: string, storlet: string, flags: ServerFlags & { tail: string; follow?: boolean }) => {
    if (!/^\d+$/.test(flags.tail)) throw new SandletError('EBADNAME', `--tail must be a number of lines, not ${JSON.stringify(flags.tail)}`);
    const q = new URLSearchParams({ tail: flags.tail, ...(flags.follow ? { follow: '1' } : {}) });
    const res = await request(target(flags), 'GET', `/v1/scopes/${enc(scope)}/logs/${enc(storlet)}?${q}`);
    // A followed log never ends by itself: a reader that went away (`| head`) ends it.
    const stop = (): void => void res.destroy();
    stdoutClosed.addEventListener('abort', stop, { once: true });
    res.pipe(process.stdout);
    await new Promise<void>((resolve) => res.on('end', resolve).on('close', resolve));
    stdoutClosed.removeEventListener('abort', stop);
  });
}

/**
 * `scopes stop --all`: a gateway on the configured root adopts what earlier processes left (Docker
 * sandboxes that answer; it removes those that do not) and stops every one, each reported.
 */
async function stopAllLocal(flags: ServerFlags & CommonFlags & { reason?: string }): Promise<void> {
  const gateway = createGateway(configFromFlags(flags, ONE_SHOT_DEFAULTS));
  try {
    await readyWithNotice(gateway);
    const results = await gateway.stopAll();
    if (flags.json) out(JSON.stringify(results, null, 2));
    else {
      for (const r of results) if (!r.error) out(`${r.scope}: stopped`);
      if (results.length === 0) out(`no sandbox runs under ${gateway.config.pipes_dir} (${gateway.backendName} backend)`);
    }
    const failed = results.filter((r) => r.error);
    for (const f of failed) process.stderr.write(`sandlet: ${f.scope}: stop failed: ${f.error}\n`);
    if (failed.length > 0) throw new ServerCommandError(`${failed.length} of ${results.length} sandboxes failed to stop`, EXIT.error);
  } finally {
    await gateway.close();
  }
}
