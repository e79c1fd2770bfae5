import { describe, expect, it } from 'vitest';
import { validateStorletRegistration } from '../../src/cache/registration.js';

const py = { name: 'simple_storlet.py', language: 'python', interfaceVersion: '1.0', objectMetadata: 'no', main: 'simple_storlet.SimpleStorlet' };
const exec = { name: 'gzip.sh', language: 'exec', interfaceVersion: '1.0', objectMetadata: 'no', main: 'gzip.sh' };

describe('python and exec storlet registration (Storlets rules for Python)', () => {
  it('accepts module.Class for a python storlet, language version 3 or 3.x, and normalises aliases', () => {
    expect(validateStorletRegistration({ ...py, languageVersion: '3' })).toMatchObject({ language: 'python', languageVersion: '3', main: 'simple_storlet.SimpleStorlet' });
    expect(validateStorletRegistration({ ...py, language: 'Python', languageVersion: '3.11' })).toMatchObject({ language: 'python', languageVersion: '3.11' });
    expect(validateStorletRegistration(py)).not.toHaveProperty('languageVersion');
    expect(validateStorletRegistration(exec)).toMatchObject({ language: 'exec', main: 'gzip.sh' });
    expect(validateStorletRegistration({ ...exec, name: 'convert', main: 'convert' })).toMatchObject({ name: 'convert' });
  });

  it.each([
    [{ ...py, main: 'simple_storlet' }, 'registration: main: must be simple_storlet.ClassName'],
    [{ ...py, main: 'simple_storlet.py' }, 'registration: main: must be simple_storlet.ClassName'],
    [{ ...py, main: 'other.SimpleStorlet' }, 'registration: main: must be simple_storlet.ClassName'],
    [{ ...py, main: 'simple_storlet.sub.SimpleStorlet' }, 'registration: main: must be simple_storlet.ClassName'],
    [{ ...py, name: 'simple-storlet.py', main: 'simple-storlet.S' }, 'registration: name: a python storlet is a module file'],
    [{ ...py, name: 'simple.mjs' }, 'registration: name: a python storlet is a module file'],
    [{ ...py, languageVersion: '2.7' }, 'registration: language version: python storlets run on Python 3'],
    [{ ...exec, main: 'other.sh' }, 'registration: main: an exec storlet is its own main: gzip.sh'],
  ])('rejects %j', (input, message) => {
    expect(() => validateStorletRegistration(input)).toThrow(message);
  });
});
