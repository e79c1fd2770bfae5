import { describe, expect, it } from 'vitest';
import { validateStorletRegistration } from '../../src/cache/registration.js';

const ok = { name: 'rot13.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'rot13.mjs' };

describe('storlet registration', () => {
  it('normalises a valid registration', () => {
    expect(validateStorletRegistration({ ...ok, main: 'rot13.mjs:Rot13', dependencies: 'a.txt, b.bin', objectMetadata: 'YES' })).toEqual({
      kind: 'storlet', name: 'rot13.mjs', language: 'js', interfaceVersion: '1.0', main: 'rot13.mjs:Rot13', dependencies: ['a.txt', 'b.bin'], objectMetadata: true,
    });
  });

  it.each([
    [{ language: undefined }, 'registration: language: is mandatory'],
    [{ language: 'java' }, 'registration: language: "java" is not supported (supported: js)'],
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
