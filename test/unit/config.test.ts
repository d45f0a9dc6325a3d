import { describe, expect, it } from 'vitest';
import { defaultMirrorSchema, parseConfig, tableFilter } from '../../src/config/load';
import { MirrorError } from '../../src/core/errors';

const tenant = (over: Record<string, unknown> = {}) => ({
  id: 'acme',
  source: { kind: 'postgres', url: 'postgres://u:${SRC_PW}@db:5432/app' },
  mirror: { kind: 'postgres', url: 'postgres://u:p@partner:5432/dw' },
  ...over,
});

function errorOf(fn: () => unknown): MirrorError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MirrorError) return err;
    throw err;
  }
  throw new Error('expected a MirrorError');
}

describe('tenant configuration', () => {
  it('applies defaults and parses durations and sizes', () => {
    const [t] = parseConfig({ tenants: [tenant({ pollInterval: '2s', batchBytes: '1MB', retention: '3d' })] }, { SRC_PW: 'secret' });
    expect(t).toMatchObject({
      id: 'acme', pollInterval: 2000, batchBytes: 1024 * 1024, retention: 3 * 86_400_000, onSourceRestore: 'repopulate',
      tables: { include: ['*'], exclude: [] }, mirror: { schema: 'tenant_acme' },
    });
    expect(t!.source.url).toBe('postgres://u:secret@db:5432/app');
  });

  it('names the tenant and the field in one message', () => {
    const err = errorOf(() => parseConfig({ tenants: [tenant({ pollInterval: 'soon' })] }, { SRC_PW: 'x' }, 'tenants.yaml'));
    expect(err.type).toBe('BadConfig');
    expect(err.message).toMatch(/tenants\.yaml: tenant "acme": pollInterval: not a duration: "soon"/);
  });

  it('reports a missing environment variable by name, never a value', () => {
    const err = errorOf(() => parseConfig({ tenants: [tenant()] }, {}));
    expect(err.message).toMatch(/tenant "acme": source\.url: environment variable SRC_PW is not set/);
  });

  it('rejects unknown fields, bad kinds, bad ids and duplicates', () => {
    expect(errorOf(() => parseConfig({ tenants: [tenant({ colour: 'red' })] }, { SRC_PW: 'x' })).message).toMatch(/colour/);
    expect(errorOf(() => parseConfig({ tenants: [tenant({ source: { kind: 'oracle', url: 'x' } })] }, {})).message).toMatch(/source\.kind/);
    expect(errorOf(() => parseConfig({ tenants: [tenant({ id: '../etc' })] }, { SRC_PW: 'x' })).message).toMatch(/id:/);
    expect(errorOf(() => parseConfig({ tenants: [tenant(), tenant()] }, { SRC_PW: 'x' })).message).toMatch(/defined twice/);
    expect(errorOf(() => parseConfig({ tenants: [] })).message).toMatch(/at least one tenant/);
  });

  it('filters tables by include and exclude globs', () => {
    const names = ['orders', 'sales.lines', 'tmp_x', 'sales.audit', 'hr.people'];
    expect(names.filter(tableFilter({ include: ['*'], exclude: ['tmp_*', 'sales.audit'] }))).toEqual(['orders', 'sales.lines', 'hr.people']);
    expect(names.filter(tableFilter({ include: ['sales.*'], exclude: ['sales.audit'] }))).toEqual(['sales.lines']);
  });

  it('derives a plain default mirror schema from the tenant id', () => {
    expect(defaultMirrorSchema('Acme-EU.1')).toBe('tenant_acme_eu_1');
  });
});
