import type { Command } from 'commander';
import { SandletError } from '../errors.js';
import { createGateway, type Gateway } from '../gateway.js';
import { createLogger } from '../log.js';
import { selectBackend } from '../runtime/select-backend.js';
import { bindFrontDoor } from '../proxy/front-door.js';
import { bindListeners, type Listeners } from '../server/listeners.js';
import { startServer, type SandletServer } from '../server/server.js';
import { addCommonOptions, configFromFlags, type CommonFlags } from './common.js';

export function registerServe(program: Command): void {
  addCommonOptions(
    program
      .command('serve')
      .description('run the HTTP API for object-store middleware and operators (Unix socket and/or TCP)')
      .option('--listen-socket <path>', 'Unix socket to listen on (config listen_socket; "" for none)')
      .option('--listen-tcp <host:port>', 'TCP address to listen on (config listen_tcp)')
      .option('--upstream <url>', 'object store to put a front door before, e.g. a Swift proxy http://127.0.0.1:8080 (config upstream)')
      .option('--proxy-listen <host:port>', 'where the front door listens (config proxy_listen; default 127.0.0.1:8081)')
      .option('--stop-sandboxes', 'stop every sandbox when the server stops (default: leave them for the next server to adopt)'),
  ).action(async (flags: CommonFlags & { listenSocket?: string; listenTcp?: string; upstream?: string; proxyListen?: string; stopSandboxes?: boolean }) => {
    const config = configFromFlags(flags, {}, { listen_socket: flags.listenSocket, listen_tcp: flags.listenTcp, upstream: flags.upstream, proxy_listen: flags.proxyListen });
    const logger = createLogger(config.log_level);
    // Addresses first: a second server on an address in use fails here, before it adopts (or
    // removes) the first one's sandboxes or touches its socket file.
    const listeners = await bindListeners(config, logger);
    let frontDoorListeners: Listeners | undefined;
    try {
      if (config.upstream) frontDoorListeners = await bindFrontDoor(config, logger);
    } catch (err) {
      listeners.close();
      throw err;
    }
    let gateway: Gateway | undefined;
    let server: SandletServer;
    try {
      // A server never runs storlets unisolated by accident: `auto` must find Docker; the process
      // backend only when asked for by name.
      const selected = await selectBackend(config, logger);
      if (config.backend === 'auto' && selected.fallbackReason) {
        throw new SandletError('ESANDBOX', `sandlet serve will not run storlets without isolation: ${selected.fallbackReason}. Fix Docker, or pass --backend process (config backend: process) to run them on the host on purpose`);
      }
      gateway = createGateway(config, { logger, backend: selected.backend });
      await gateway.ready();
      server = await startServer({ gateway, config, logger, listeners, ...(frontDoorListeners ? { frontDoorListeners } : {}) });
    } catch (err) {
      listeners.close();
      frontDoorListeners?.close();
      await gateway?.close();
      throw err;
    }
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
