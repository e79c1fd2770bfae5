// Registrations as Swift stores them: object user metadata, `X-Object-Meta-Storlet-*`. The names
// are Storlets' own, so storlets uploaded for Storlets register the same way here.
import type { DependencyMeta, DependencyRegistrationInput, StorletMeta, StorletRegistrationInput } from './registration.js';

const P = 'x-object-meta-storlet-';

/** Digest sandlet adds at deploy, so content is verified by sha256 rather than only by ETag. */
export const SHA256_HEADER = `${P}sha256`;

export function storletHeaders(meta: StorletMeta): Record<string, string> {
  return {
    [`${P}language`]: meta.language,
    ...(meta.languageVersion ? { [`${P}language-version`]: meta.languageVersion } : {}),
    [`${P}interface-version`]: meta.interfaceVersion,
    [`${P}dependency`]: meta.dependencies.join(','),
    [`${P}object-metadata`]: meta.objectMetadata ? 'yes' : 'no',
    [`${P}main`]: meta.main,
  };
}

export function dependencyHeaders(meta: DependencyMeta): Record<string, string> {
  return {
    [`${P}dependency-version`]: meta.version,
    ...(meta.permissions !== undefined ? { [`${P}dependency-permissions`]: `0${meta.permissions.toString(8)}` } : {}),
  };
}

type Get = (name: string) => string | null;

export function storletInputFromHeaders(name: string, get: Get): StorletRegistrationInput {
  return {
    name,
    language: get(`${P}language`) ?? undefined,
    languageVersion: get(`${P}language-version`) ?? undefined,
    interfaceVersion: get(`${P}interface-version`) ?? undefined,
    dependencies: get(`${P}dependency`) ?? '',
    objectMetadata: get(`${P}object-metadata`) ?? undefined,
    main: get(`${P}main`) ?? undefined,
  };
}

export function dependencyInputFromHeaders(name: string, get: Get): DependencyRegistrationInput {
  return {
    name,
    version: get(`${P}dependency-version`) ?? undefined,
    permissions: get(`${P}dependency-permissions`) ?? undefined,
  };
}
