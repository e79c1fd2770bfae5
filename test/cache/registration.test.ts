import { describe, expect, it } from 'vitest';
import { parsePermissions, validateDependencyRegistration, validateStorletRegistration } from '../../src/cache/registration.js';

const ok = { name: 'rot13.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'rot13.mjs' };

describe('storlet registration', () => {
  it('normalises a valid registration', () => {
    expect(validateStorletRegistration({ ...ok, main: 'rot13.mjs:Rot13', dependencies: 'a.txt, b.bin', objectMetadata: 'YES' })).toEqual({
      kind: 'storlet', name: 'rot13.mjs', language: 'js', interfaceVersion: '1.0', main: 'rot13.mjs:Rot13', dependencies: ['a.txt', 'b.bin'], objectMetadata: true,
    });
  });

  it.each([
    [{ language: undefined }, 'registration: language: is mandatory'],
    [{ language: 'java' }, 'registration: language: "java" is not supported (supported: js, python, exec)'],
    [{ interfaceVersion: undefined }, 'registration: interface version: is mandatory'],
    [{ interfaceVersion: '2.0' }, 'registration: interface version: "2.0" is not supported'],
    [{ objectMetadata: undefined }, 'registration: object metadata: is mandatory'],
    [{ objectMetadata: 'maybe' }, 'registration: object metadata: must be yes or no'],
    [{ main: undefined }, 'registration: main: is mandatory'],
    [{ main: 'other.mjs' }, "registration: main: must be the storlet's own module file"],
    [{ main: 'rot13.mjs:1bad' }, 'registration: main: "1bad" is not a valid export name'],
    [{ name: 'rot13.py', main: 'rot13.py' }, 'registration: name: a js storlet is a module file'],
    [{ name: '../x.mjs' }, 'registration: name: storlet name "../x.mjs" may only hold'],
    [{ dependencies: ['rot13.mjs'] }, `registration: dependency: "rot13.mjs" has the storlet's own name`],
    [{ dependencies: ['a', 'b', 'a'] }, 'registration: dependency: "a" is listed twice'],
    [{ dependencies: ['../a'] }, 'registration: dependency: dependency name "../a" may only hold'],
  ])('rejects %j', (change, message) => {
    expect(() => validateStorletRegistration({ ...ok, ...change } as never)).toThrow(message);
  });
});

describe('dependency registration', () => {
  it('normalises version and octal permissions', () => {
    expect(validateDependencyRegistration({ name: 'tool.sh', version: ' 1.2 ', permissions: '0755' })).toEqual({ kind: 'dependency', name: 'tool.sh', version: '1.2', permissions: 0o755 });
    expect(validateDependencyRegistration({ name: 'a.txt', version: '1', permissions: '600' }).permissions).toBe(0o600);
    expect(validateDependencyRegistration({ name: 'a.txt', version: '1' })).toEqual({ kind: 'dependency', name: 'a.txt', version: '1' });
    expect(parsePermissions('0o644')).toBe(0o644);
  });

  it.each([
    [{ version: undefined }, 'registration: dependency version: is mandatory'],
    [{ version: 'has space' }, 'registration: dependency version: must be at most 64 printable characters'],
    [{ permissions: 'rwxr-xr-x' }, 'registration: dependency permissions: must be octal such as 0644 or 0755, not "rwxr-xr-x"'],
    [{ permissions: '0955' }, 'registration: dependency permissions: must be octal'],
    [{ permissions: '0444' }, 'registration: dependency permissions: 0444 must keep read and write for the owner (0600)'],
    [{ permissions: '0500' }, 'registration: dependency permissions: 0500 must keep read and write for the owner'],
    [{ permissions: '4755' }, 'registration: dependency permissions: 04755 sets setuid, setgid or sticky bits'],
    [{ name: '..' }, 'registration: name: dependency name ".." is not allowed'],
  ])('rejects %j', (change, message) => {
    expect(() => validateDependencyRegistration({ name: 'tool.sh', version: '1', ...change } as never)).toThrow(message);
  });
});
