import { describe, expect, it } from 'vitest';
import { tenantImage, validateScopeName, validateStorletName } from '../src/names.js';

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
    // Valid path components but not Docker references: one rule on every backend.
    ['tenant-', /must end with a letter or digit/],
    ['tenant_', /must end with a letter or digit/],
    ['a..b', /separate letters and digits/],
    ['a___b', /separate letters and digits/],
    ['a._b', /separate letters and digits/],
  ])('rejects scope %j', (name, re) => {
    expect(() => validateScopeName(name)).toThrow(re);
  });

  it('accepts what Docker takes as a reference component, in any case', () => {
    for (const name of ['AUTH_abc123', 'a__b', 'a--b', 'a.b-c_d', 'Tenant1', '7']) expect(validateScopeName(name)).toBe(name);
  });

  it('derives the tenant image from the scope by one rule: lowercased, under the namespace', () => {
    expect(tenantImage('sandlet-tenant', 'AUTH_Acme')).toBe('sandlet-tenant/auth_acme:latest');
    expect(() => tenantImage('sandlet-tenant', 'tenant-')).toThrow(/EBADNAME|must end/);
  });

  it('rejects non-strings with a clear message', () => {
    expect(() => validateStorletName(undefined)).toThrow('storlet name must be a non-empty string');
    expect(() => validateStorletName('../../x')).toThrow(`storlet name "../../x" may only hold letters, digits, '_', '.' and '-'`);
  });
});
