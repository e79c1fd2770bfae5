import fs from 'node:fs';
import type { SandletConfig } from '../config.js';
import { SandletError } from '../errors.js';
import { HttpStore } from './http-store.js';
import { LocalStore } from './local-store.js';
import type { StorletStore } from './storlet-store.js';

type StoreConfig = Pick<SandletConfig, 'storlet_store' | 'store_dir' | 'store_token' | 'store_token_file' | 'storlet_container' | 'storlet_dependency' | 'store_timeout_ms'>;

/** The store the config names: `local` (under store_dir) or an object store URL. */
export function openStore(config: StoreConfig): StorletStore {
  if (config.storlet_store === 'local') return new LocalStore(config.store_dir);
  return new HttpStore({
    url: config.storlet_store,
    token: storeToken(config),
    storletContainer: config.storlet_container,
    dependencyContainer: config.storlet_dependency,
    timeoutMs: config.store_timeout_ms,
  });
}

// A token file keeps the secret out of config files and process listings.
function storeToken(config: StoreConfig): string | undefined {
  if (config.store_token) return config.store_token;
  if (!config.store_token_file) return undefined;
  try {
    const token = fs.readFileSync(config.store_token_file, 'utf8').trim();
    if (!token) throw new SandletError('EBADCONFIG', `store_token_file ${config.store_token_file} is empty`);
    return token;
  } catch (err) {
    if (err instanceof SandletError) throw err;
    throw new SandletError('EBADCONFIG', `cannot read store_token_file ${config.store_token_file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}
