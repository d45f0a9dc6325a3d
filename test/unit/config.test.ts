import { describe, expect, it } from 'vitest';
import { defaultMirrorSchema, loadConfigFile, mirrorHooks, parseConfig, tableFilter } from '../../src/config/load';
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

  it('takes source.tracking for PostgreSQL sources (trigger by default, or logical) and refuses it for SQL Server', () => {
    const env = { SRC_PW: 'x' };
    expect(parseConfig({ tenants: [tenant()] }, env)[0]!.source).toMatchObject({ kind: 'postgres', tracking: 'trigger' });
    const logical = tenant({ source: { kind: 'postgres', url: 'postgres://u:p@db/app', tracking: 'logical' } });
    expect(parseConfig({ tenants: [logical] }, env)[0]!.source.tracking).toBe('logical');
    const typo = tenant({ source: { kind: 'postgres', url: 'postgres://u:p@db/app', tracking: 'wal' } });
    expect(errorOf(() => parseConfig({ tenants: [typo] }, env)).message).toMatch(/tenant "acme": source\.tracking: .*trigger.*logical/);
    const mssql = tenant({ source: { kind: 'mssql', url: 'mssql://sa:p@sql1/db', tracking: 'logical' } });
    expect(errorOf(() => parseConfig({ tenants: [mssql] }, env)).message).toMatch(/source\.tracking: applies to PostgreSQL sources only/);
  });

  it('filters tables by include and exclude globs', () => {
    const names = ['orders', 'sales.lines', 'tmp_x', 'sales.audit', 'hr.people'];
    expect(names.filter(tableFilter({ include: ['*'], exclude: ['tmp_*', 'sales.audit'] }))).toEqual(['orders', 'sales.lines', 'hr.people']);
    expect(names.filter(tableFilter({ include: ['sales.*'], exclude: ['sales.audit'] }))).toEqual(['sales.lines']);
  });

  it('names the literal prefixes every admitted table starts with, only when each include pattern has one', () => {
    expect(tableFilter({ include: ['t001.*'], exclude: [] }).prefixes).toEqual(['t001.']);
    expect(tableFilter({ include: ['sales.*', 'orders', 'hr.p?ople'], exclude: ['x'] }).prefixes).toEqual(['sales.', 'orders', 'hr.p']);
    for (const unbounded of [['*'], ['sales.*', '*.lines'], ['!tmp_*'], ['{a,b}.x'], ['[ab].x'], ['\\*x'], ['"t001"*'], ['./t001.*']]) {
      expect({ unbounded, prefixes: tableFilter({ include: unbounded, exclude: [] }).prefixes }).toEqual({ unbounded, prefixes: undefined });
    }
    // picomatch drops a glob's leading quotes ("t001"* admits t001x): a prefix stops before any quote.
    expect(tableFilter({ include: ['"t001"*'], exclude: [] })('t001x')).toBe(true);
    expect(tableFilter({ include: ['t0"01"*'], exclude: [] }).prefixes).toEqual(['t0']);
    // The prefixes never admit less than the globs do.
    const names = ['sales.lines', 'sales.audit', 'salesx.y', 'orders', 'orders_old', 'hr.people', 'hr.pxople', 'other'];
    const filter = tableFilter({ include: ['sales.*', 'orders', 'hr.p?ople'], exclude: [] });
    for (const n of names.filter(filter)) expect(filter.prefixes!.some((p) => n.startsWith(p))).toBe(true);
  });

  it('derives a default mirror schema from the tenant id that no other id shares', () => {
    expect(defaultMirrorSchema('acme')).toBe('tenant_acme');
    expect(defaultMirrorSchema('Acme-EU.1')).toMatch(/^tenant_acme_eu_1_[0-9a-f]{8}$/);
    expect(defaultMirrorSchema('a.b')).not.toBe(defaultMirrorSchema('a-b'));
    expect(defaultMirrorSchema('a.b')).not.toBe(defaultMirrorSchema('a_b'));
    expect(defaultMirrorSchema('x'.repeat(63) + '.y').length).toBeLessThanOrEqual(63);
  });

  it('refuses two tenants that would share one mirror schema, naming both', () => {
    const mirror = (schema?: string) => ({ kind: 'postgres', url: 'postgres://a:b@Partner:5432/dw', ...(schema ? { schema } : {}) });
    const other = { ...tenant({ id: 'globex', mirror: { ...mirror('shared'), url: 'postgres://other:pw@partner/dw' } }) };
    const err = errorOf(() => parseConfig({ tenants: [tenant({ mirror: mirror('shared') }), other] }, { SRC_PW: 'x' }));
    expect(err.message).toMatch(/tenants "acme" and "globex" would share the mirror schema "shared" of one database/);
    expect(err.message).not.toContain('pw');
    // Ids that used to map to one default schema now get their own.
    const [a, b] = parseConfig({ tenants: [tenant({ id: 'a.b', mirror: mirror() }), tenant({ id: 'a-b', mirror: mirror() })] }, { SRC_PW: 'x' });
    expect(a!.mirror.schema).not.toBe(b!.mirror.schema);
    // The same schema name in another database is fine.
    expect(() => parseConfig({ tenants: [tenant({ mirror: mirror('s') }), tenant({ id: 'b', mirror: { kind: 'postgres', url: 'postgres://a:b@partner:5432/other', schema: 's' } })] }, { SRC_PW: 'x' })).not.toThrow();
  });

  it('reports a tenants file that is not YAML without quoting its lines (they may hold a password)', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'tm-config-')), 'tenants.yaml');
    writeFileSync(file, 'tenants:\n  - id: acme\n    source: { kind: postgres, url: postgres://u:hunter2@db/app\n    mirror: [\n');
    const err = errorOf(() => loadConfigFile(file, {}));
    expect(err.message).toMatch(/is not valid YAML: .*line \d+/);
    expect(err.message).not.toContain('hunter2');
  });

  it('reads mirror hooks and the log retention, with defaults', () => {
    const [plain] = parseConfig({ tenants: [tenant()] }, { SRC_PW: 'x' });
    expect(plain!.mirror).toMatchObject({ hooks: [], logRetention: 30 * 86_400_000 });
    const hooks = [
      { tables: ['orders', 'sales.*'], afterCreate: 'CREATE INDEX IF NOT EXISTS o_c ON {{table}} (customer_id)' },
      { afterCreate: 'GRANT SELECT ON {{ table }} TO reporting', afterPopulate: 'ANALYZE {{table}}' },
    ];
    const [t] = parseConfig({ tenants: [tenant({ mirror: { kind: 'postgres', url: 'postgres://u:p@partner/dw', hooks, logRetention: '7d' } })] }, { SRC_PW: 'x' });
    expect(t!.mirror.logRetention).toBe(7 * 86_400_000);
    const select = mirrorHooks(t!.mirror.hooks);
    expect(select('afterCreate', 'orders').map((h) => h.label)).toEqual(['mirror.hooks[1].afterCreate', 'mirror.hooks[2].afterCreate']);
    expect(select('afterCreate', 'customers').map((h) => h.label)).toEqual(['mirror.hooks[2].afterCreate']);
    expect(select('afterPopulate', 'sales.q1')).toEqual([{ label: 'mirror.hooks[2].afterPopulate', sql: 'ANALYZE {{table}}' }]);
  });

  it('refuses a hook with no SQL, or with a placeholder it does not know', () => {
    const withHooks = (hooks: unknown[]) => () => parseConfig({ tenants: [tenant({ mirror: { kind: 'postgres', url: 'postgres://u:p@partner/dw', hooks } })] }, { SRC_PW: 'x' });
    expect(errorOf(withHooks([{ tables: ['*'] }])).message).toMatch(/mirror\.hooks\.0: a hook needs afterCreate or afterPopulate/);
    expect(errorOf(withHooks([{ afterCreate: 'GRANT SELECT ON {{tabel}} TO r' }])).message).toMatch(/mirror\.hooks\.0\.afterCreate: unknown placeholder/);
    expect(errorOf(withHooks([{ afterCreate: 'x', before: 'y' }])).message).toMatch(/before/);
  });
});
