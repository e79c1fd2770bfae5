import { SandletError } from '../errors.js';
import { validateDependencyName, validateStorletName } from '../names.js';
import { PYTHON_MAIN, STORLET_LANGUAGES, storletLanguage, type StorletLanguage } from '../agent/languages.js';

// Registration as Storlets checks it: mandatory language, interface version, object-metadata
// flag and main; a dependency never shares the storlet's name; no dependency listed twice.
// Per language: a js storlet is a module file (main: the file, optionally `:Export`); a python
// storlet is a single module `NAME.py` with main `NAME.Class` and language version 3 (as
// Storlets has it); an exec storlet is an executable file, its own main.

export const SUPPORTED_LANGUAGES = STORLET_LANGUAGES;
export const INTERFACE_VERSIONS = ['1.0'] as const;

export interface StorletRegistrationInput {
  name: string;
  language?: string;
  languageVersion?: string;
  interfaceVersion?: string;
  main?: string;
  dependencies?: string[] | string;
  objectMetadata?: boolean | string;
}

export interface StorletRegistration {
  kind: 'storlet';
  name: string;
  language: string;
  languageVersion?: string;
  interfaceVersion: string;
  main: string;
  dependencies: string[];
  objectMetadata: boolean;
  sha256: string;
  size: number;
  deployedAt: string;
}

export interface DependencyRegistrationInput {
  name: string;
  version?: string;
  /** Octal, as a string (`0755`) or a number (0o755). */
  permissions?: string | number;
}

export interface DependencyRegistration {
  kind: 'dependency';
  name: string;
  version: string;
  /** File mode in the storlet's dir; absent: read-only (0444). */
  permissions?: number;
  sha256: string;
  size: number;
  deployedAt: string;
}

/** A registration as validated, before content is attached. */
export type StorletMeta = Omit<StorletRegistration, 'sha256' | 'size' | 'deployedAt'>;
export type DependencyMeta = Omit<DependencyRegistration, 'sha256' | 'size' | 'deployedAt'>;

function fail(field: string, rule: string): never {
  throw new SandletError('EBADREGISTRATION', `registration: ${field}: ${rule}`);
}

function named(validate: (n: unknown) => string, field: string, value: unknown): string {
  try {
    return validate(value);
  } catch (err) {
    return fail(field, (err as Error).message);
  }
}

/** Checks a dependency registration; returns it normalised (without content fields). */
export function validateDependencyRegistration(
  input: DependencyRegistrationInput,
): DependencyMeta {
  const name = named(validateDependencyName, 'name', input.name);
  const version = (input.version ?? '').trim();
  if (!version) fail('dependency version', 'is mandatory');
  if (version.length > 64 || !/^[\x21-\x7e]+$/.test(version)) {
    fail('dependency version', `must be at most 64 printable characters without spaces, not ${JSON.stringify(version.slice(0, 80))}`);
  }
  if (input.permissions === undefined || input.permissions === '') return { kind: 'dependency', name, version };
  return { kind: 'dependency', name, version, permissions: parsePermissions(input.permissions) };
}

/** `0755`, `755`, `0o755` or 0o755 → 0o755. The owner keeps read and write; no special bits. */
export function parsePermissions(value: string | number): number {
  let mode: number;
  if (typeof value === 'number') mode = value;
  else {
    const m = /^(?:0o?)?([0-7]{3,4})$/i.exec(value.trim());
    if (!m) fail('dependency permissions', `must be octal such as 0644 or 0755, not ${JSON.stringify(value)}`);
    mode = parseInt(m[1]!, 8);
  }
  const shown = `0${mode.toString(8)}`;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) fail('dependency permissions', `${value} is not a file mode`);
  if (mode > 0o777) fail('dependency permissions', `${shown} sets setuid, setgid or sticky bits, which are not allowed`);
  if ((mode & 0o600) !== 0o600) fail('dependency permissions', `${shown} must keep read and write for the owner (0600)`);
  return mode;
}

/** Checks a storlet registration; returns it normalised (without content fields). */
export function validateStorletRegistration(
  input: StorletRegistrationInput,
): StorletMeta {
  const name = named(validateStorletName, 'name', input.name);
  if (!input.language) fail('language', 'is mandatory');
  const language = storletLanguage(input.language);
  if (!language) {
    fail('language', `${JSON.stringify(input.language)} is not supported (supported: ${SUPPORTED_LANGUAGES.join(', ')})`);
  }
  if (language === 'js' && !/\.(mjs|js|cjs)$/.test(name)) fail('name', `a js storlet is a module file: ${JSON.stringify(name)} must end in .mjs, .js or .cjs`);
  if (language === 'python' && !/^[A-Za-z_][A-Za-z0-9_]*\.py$/.test(name)) {
    fail('name', `a python storlet is a module file: ${JSON.stringify(name)} must be a Python module name ending in .py`);
  }
  const languageVersion = input.languageVersion?.trim() || undefined;
  if (language === 'python' && languageVersion !== undefined && !/^3(\.\d+)*$/.test(languageVersion)) {
    fail('language version', `python storlets run on Python 3: ${JSON.stringify(languageVersion)} is not 3 or 3.x`);
  }
  const interfaceVersion = input.interfaceVersion ?? '';
  if (!interfaceVersion) fail('interface version', 'is mandatory');
  if (!(INTERFACE_VERSIONS as readonly string[]).includes(interfaceVersion)) {
    fail('interface version', `${JSON.stringify(interfaceVersion)} is not supported (supported: ${INTERFACE_VERSIONS.join(', ')})`);
  }
  if (input.objectMetadata === undefined || input.objectMetadata === '') fail('object metadata', 'is mandatory (yes or no)');
  let objectMetadata: boolean;
  if (typeof input.objectMetadata === 'boolean') objectMetadata = input.objectMetadata;
  else if (/^(yes|true)$/i.test(input.objectMetadata)) objectMetadata = true;
  else if (/^(no|false)$/i.test(input.objectMetadata)) objectMetadata = false;
  else fail('object metadata', `must be yes or no, not ${JSON.stringify(input.objectMetadata)}`);
  const main = input.main ?? '';
  if (!main) fail('main', 'is mandatory');
  validateMain(language, name, main);
  const raw = input.dependencies ?? [];
  const list = (typeof raw === 'string' ? raw.split(',') : raw).map((d) => d.trim()).filter((d) => d !== '');
  const dependencies: string[] = [];
  for (const dep of list) {
    named(validateDependencyName, 'dependency', dep);
    if (dep === name) fail('dependency', `${JSON.stringify(dep)} has the storlet's own name`);
    if (dependencies.includes(dep)) fail('dependency', `${JSON.stringify(dep)} is listed twice`);
    dependencies.push(dep);
  }
  return {
    kind: 'storlet',
    name,
    language,
    ...(languageVersion ? { languageVersion } : {}),
    interfaceVersion,
    main,
    dependencies,
    objectMetadata,
  };
}

function validateMain(language: StorletLanguage, name: string, main: string): void {
  if (language === 'python') {
    const module = name.slice(0, -'.py'.length);
    const m = PYTHON_MAIN.exec(main);
    // `NAME.py` itself would read as a class named py: a main left at its default, the file name.
    if (!m || m[1] !== module || main === name) fail('main', `must be ${module}.ClassName, the storlet class in ${name} (got ${JSON.stringify(main)})`);
    return;
  }
  if (language === 'exec') {
    if (main !== name) fail('main', `an exec storlet is its own main: ${name} (got ${JSON.stringify(main)})`);
    return;
  }
  const [file, exportName, ...more] = main.split(':');
  if (more.length > 0 || file !== name) {
    fail('main', `must be the storlet's own module file, optionally with an export: ${name} or ${name}:ExportName (got ${JSON.stringify(main)})`);
  }
  if (exportName !== undefined && !/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(exportName)) {
    fail('main', `${JSON.stringify(exportName)} is not a valid export name`);
  }
}
