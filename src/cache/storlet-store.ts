// Where storlets and their dependencies come from. The gateway never runs content straight from a
// store: it goes through the verified cache (content-cache.ts) first.
import type { Readable } from 'node:stream';
import type {
  DependencyMeta,
  DependencyRegistration,
  DependencyRegistrationInput,
  StorletMeta,
  StorletRegistration,
  StorletRegistrationInput,
} from './registration.js';

export type ItemKind = 'storlet' | 'dependency';

export type DeployInput =
  | ({ kind: 'storlet' } & StorletRegistrationInput)
  | ({ kind: 'dependency' } & DependencyRegistrationInput);

/** What a store says about an item, without its content. */
export type StoreItem = {
  /** Changes whenever the content may have changed (a digest, or ETag + length + Last-Modified). */
  stamp: string;
  /** What the content must match; a store may not know every field. */
  expected: { sha256?: string; md5?: string; size?: number };
} & ({ kind: 'storlet'; meta: StorletMeta } | { kind: 'dependency'; meta: DependencyMeta });

/**
 * Request headers that authenticate one caller to the store (the Swift front door: the caller's
 * own credentials, so the store's ACLs decide). A store that needs none ignores them.
 */
export type StoreAuth = Record<string, string>;

export interface StorletStore {
  /** For messages: `local store /path` or the URL. */
  readonly description: string;
  /** The item's registration and freshness stamp. ENOSTORLET when absent, ESTORE when unreachable. */
  stat(kind: ItemKind, name: string, auth?: StoreAuth): Promise<StoreItem>;
  /** The item and a stream of its content. */
  open(kind: ItemKind, name: string, auth?: StoreAuth): Promise<{ item: StoreItem; body: Readable }>;
  /** Validates and stores an item; a storlet's dependencies must be deployed already. */
  deploy(content: Buffer, input: DeployInput): Promise<StorletRegistration | DependencyRegistration>;
}
