import { describe, expect, it } from 'vitest';
import { validateScopeName, validateStorletName } from '../src/names.js';

describe('names', () => {
  it('accepts ordinary names', () => {
    expect(validateScopeName('AUTH_tenant-1.prod')).toBe('AUTH_tenant-1.prod');
    expect(validateStorletName('identity.mjs')).toBe('identity.mjs');
  });

  it.each([
    ['..', /not allowed/],
    ['.', /not allowed/],
    ['../etc', /may only hold/],
    ['a/b', /may only hold/],
    ['a\0b', /may only hold/],
    ['', /non-empty/],
    ['x'.repeat(64), /longer than 63/],
    ['-x', /must start with a letter or digit/],
  ])('rejects scope %j', (name, re) => {
    expect(() => validateScopeName(name)).toThrow(re);
  });

  it('rejects non-strings with a clear message', () => {
    expect(() => validateStorletName(undefined)).toThrow('storlet name must be a non-empty string');
    expect(() => validateStorletName('../../x')).toThrow(`storlet name "../../x" may only hold letters, digits, '_', '.' and '-'`);
  });
});
