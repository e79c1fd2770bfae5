import type { Command } from 'commander';
import { createGateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { startServer } from '../server/server.js';
import { addCommonOptions, configFromFlags, type CommonFlags } from './common.js';

export function registerServe(program: Command): void {
  addCommonOptions(
    program
      .command('serve')
      .description('run the HTTP API for object-store middleware and operators (Unix socket and/or TCP)')
      .option('--listen-socket <path>', 'Unix socket to listen on (config listen_socket; "" for none)')
      .option('--listen-tcp <host:port>', 'TCP address to listen on (config listen_tcp)')
      .option('--stop-sandboxes', 'stop every sandbox when the server stops (default: leave them for the next server to adopt)'),
  ).action(async (flags: CommonFlags & { listenSocket?: string; listenTcp?: string; stopSandboxes?: boolean }) => {
    const config = configFromFlags(flags, {}, { listen_socket: flags.listenSocket, listen_tcp: flags.listenTcp });
    const logger = createLogger(config.log_level);
    const gateway = createGateway(config, { logger });
    await gateway.ready();
    const server = await startServer({ gateway, config, logger });
    process.stderr.write(`sandlet: serving on ${server.addresses.join(', ')} (${gateway.backendName} backend)\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        process.stderr.write(`sandlet: ${signal}: draining (up to ${config.drain_timeout_ms} ms)\n`);
        void server.close({ stopSandboxes: flags.stopSandboxes }).then(({ drained }) => {
          process.stderr.write(`sandlet: stopped${drained ? '' : ' (drain deadline passed)'}\n`);
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  });
}
