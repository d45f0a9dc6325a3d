/**
 * Issue 13: what a first run against a real SQL Server would have hit, one describe per defect, each checked on
 * the T-SQL or value conversion it changes. What needs the driver (permissions, waiting, warnings, the order of
 * requests) is in mssql-fake-driver.test.ts; what needs a server, in test/integration/mssql.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { continuityBreak } from '../../activities/decide';
import { FailureType, MirrorError } from '../../src/core/errors';
import { decodeLine } from '../../src/core/copy-text';
import { schemaStep } from '../../src/core/mirror-common';
import type { ExistingTable } from '../../src/core/schema-compat';
import type { ColumnSchema, LogicalType, SourceFingerprint, TableSchema } from '../../src/core/types';
import { toFingerprint } from '../../src/mssql/catalog';
import { CLUSTERED_KEY_BYTES, KEY_COLLATION, keyMisfit, keyPlan, mirrorDeclarations, storedSchema } from '../../src/mssql/mirror-keys';
import { createTableSql, deleteStagedKeysSql, insertFromLoadSql } from '../../src/mssql/mirror-sql';
import { changeLines, changesSql, keyValueExpr, MIN_VALID_VERSION_SQL, rowsSql, TABLE_TRACKING_SQL } from '../../src/mssql/snapshot';
import { retentionWarning } from '../../src/mssql/tracking';
import { readExpr } from '../../src/mssql/tsql';
import { declarationFacts, mssqlTypeToLogical } from '../../src/mssql/types';
import { byteaToMssqlHex } from '../../src/mssql/values';

const col = (name: string, type: LogicalType, nullable = false): ColumnSchema => ({ name, type, nullable });

function table(name: string, columns: ColumnSchema[], primaryKey: string[]): TableSchema {
  return { name, source: { schema: 'public', table: name }, columns, primaryKey };
}

const TEXT: LogicalType = { kind: 'string' };
const BYTEA: LogicalType = { kind: 'binary' };

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** An existing mirror table exactly as createTableSql would have declared it (what readTable reads back). */
function existingFrom(t: TableSchema): ExistingTable {
  const decls = mirrorDeclarations(t);
  return {
    columns: t.columns.map((c, i) => ({ name: c.name, type: mssqlTypeToLogical(declarationFacts(decls[i]!)), nullable: c.nullable && !t.primaryKey.includes(c.name) })),
    primaryKey: t.primaryKey,
  };
}

describe('1. key columns get bounded types that fit a 900-byte clustered key', () => {
  it('bounds a text key to nvarchar(450) and a bytea key to varbinary(900)', () => {
    expect(createTableSql('m', 't', table('t', [col('k', TEXT), col('v', TEXT, true)], ['k']))).toContain(
      `[k] nvarchar(450) COLLATE ${KEY_COLLATION} NOT NULL,\n  [v] nvarchar(max) NULL`,
    );
    expect(createTableSql('m', 'b', table('b', [col('k', BYTEA)], ['k']))).toContain('[k] varbinary(900) NOT NULL');
  });

  it('gives variable-length key columns what the fixed-width ones leave', () => {
    const t = table('t', [col('tenant', { kind: 'int32' }), col('at', { kind: 'timestamp', precision: 6 }), col('code', TEXT)], ['tenant', 'at', 'code']);
    // int 4 + datetime2(6) 8 = 12 bytes fixed: 888 bytes = 444 UTF-16 units for the string.
    expect(mirrorDeclarations(t)).toEqual(['int', 'datetime2(6)', 'nvarchar(444)']);
    const sized = table('s', [col('k', { kind: 'string', length: 1000 }), col('b', { kind: 'binary', length: 2000 })], ['k', 'b']);
    expect(mirrorDeclarations(sized)).toEqual(['nvarchar(450)', 'varbinary(900)']);
    // A short sized key keeps its size.
    expect(mirrorDeclarations(table('v', [col('k', { kind: 'string', length: 20 })], ['k']))).toEqual(['nvarchar(20)']);
  });

  it('refuses, as TableFailed (that table alone waits) naming the table, a key no row could fit or SQL Server cannot index', () => {
    const fixed = caught(() => keyPlan(table('wide', [col('k', { kind: 'string', length: 500, fixed: true })], ['k'])));
    expect(fixed).toBeInstanceOf(MirrorError);
    expect((fixed as MirrorError).type).toBe(FailureType.TableFailed);
    expect((fixed as MirrorError).message).toMatch(/table wide: its primary key needs at least 1000 bytes.*900/);
    const xml = caught(() => createTableSql('m', 'x', table('x', [col('k', { kind: 'xml' })], ['k'])));
    expect((xml as MirrorError).type).toBe(FailureType.TableFailed);
    expect((xml as MirrorError).message).toContain('cannot index');
  });

  it('reports a key value that cannot fit by column and size, never by value', () => {
    const t = table('t', [col('a', TEXT), col('b', TEXT), col('v', TEXT, true)], ['a', 'b']);
    const plan = keyPlan(t);
    const secret = 'S'.repeat(451);
    const tooLong = keyMisfit(t, plan, [secret, 'x', null]);
    expect(tooLong).toMatch(/column a has 451 UTF-16 characters, more than the mirror's nvarchar\(450\)/);
    expect(tooLong).not.toContain('SSSS');
    // Each fits its column, together they exceed the key: 2 × 300 units = 1200 bytes.
    expect(keyMisfit(t, plan, ['x'.repeat(300), 'y'.repeat(300), null])).toMatch(/needs 1200 bytes, more than the 900/);
    expect(keyMisfit(t, plan, ['x'.repeat(225), 'y'.repeat(225), 'z'.repeat(100_000)])).toBeNull();
    // A change line carries its op first.
    expect(keyMisfit(t, plan, ['U', secret, 'x', null], 1)).not.toBeNull();
    const b = table('b', [col('k', BYTEA)], ['k']);
    expect(keyMisfit(b, keyPlan(b), [byteaToMssqlHex('\\x' + 'ab'.repeat(900))])).toBeNull();
    expect(keyMisfit(b, keyPlan(b), [byteaToMssqlHex('\\x' + 'ab'.repeat(901))])).toMatch(/901 bytes/);
    expect(CLUSTERED_KEY_BYTES).toBe(900);
  });

  it('compares an existing bounded mirror table with the received schema as unchanged (no endless replace)', () => {
    const t = table('t', [col('k', TEXT), col('b', BYTEA), col('v', TEXT, true)], ['k', 'b']);
    expect(schemaStep(existingFrom(t), storedSchema(t), { keyTypeFixed: true })).toEqual({ step: 'unchanged' });
  });
});

describe('2. staged values join the mirror keys in the key column collation', () => {
  it('names the key collation on the staged side of a string key comparison', () => {
    const t = table('t', [col('k', TEXT), col('n', { kind: 'int64' }), col('v', TEXT, true)], ['k', 'n']);
    expect(deleteStagedKeysSql('m', 't', t, '#staging')).toBe(
      `DELETE m FROM [m].[t] AS m\nWHERE EXISTS (SELECT 1 FROM #staging AS l WHERE m.[k] = l.[c0] COLLATE ${KEY_COLLATION} AND DATALENGTH(m.[k]) = DATALENGTH(l.[c0]) AND m.[n] = CAST(l.[c1] AS bigint))`,
    );
    // A fixed-width key is padded on both sides: its length says nothing.
    const fixed = table('f', [col('k', { kind: 'string', length: 4, fixed: true })], ['k']);
    expect(deleteStagedKeysSql('m', 'f', fixed, '#staging')).toContain(`m.[k] = l.[c0] COLLATE ${KEY_COLLATION})`);
    // Inserting is an assignment: the column's collation applies without naming it.
    expect(insertFromLoadSql('m', 't', t, '#load', false)).not.toContain('COLLATE');
  });
});

describe('3. keys compare by code point on both sides', () => {
  it("does not let a staged 'x ' delete the mirror's 'x' (SQL Server's = ignores trailing spaces)", () => {
    const t = table('t', [col('k', TEXT)], ['k']);
    expect(deleteStagedKeysSql('m', 't', t, '#staging')).toContain('AND DATALENGTH(m.[k]) = DATALENGTH(l.[c0])');
  });

  it('declares string keys (and text forms used as keys) with a binary collation, other columns as the database does', () => {
    const t = table('t', [col('k', { kind: 'string', length: 10, fixed: true }), col('e', { kind: 'native', dialect: 'postgres', name: 'mood' }), col('v', TEXT, true)], ['k', 'e']);
    const text = createTableSql('m', 't', t);
    // nchar(10) takes 20 bytes: 880 are left, 440 UTF-16 units.
    expect(text).toContain(`[k] nchar(10) COLLATE ${KEY_COLLATION} NOT NULL`);
    expect(text).toContain(`[e] nvarchar(440) COLLATE ${KEY_COLLATION} NOT NULL`);
    expect(text).toContain('[v] nvarchar(max) NULL');
  });

  const orders = table('orders', [col('code', { kind: 'string', length: 20 }), col('n', { kind: 'int32' }), col('note', TEXT, true)], ['code', 'n']);

  it('upserts the key as the row spells it, and deletes the spelling Change Tracking recorded when it differs', () => {
    // [op, c0 code, c1 n, c2 note, k0 recorded code, k1 recorded n]: a case-only key update under a CI collation.
    const lines = changeLines(orders, ['U', 'ABC', '7', 'hello', 'abc', '7']).split('\n').filter(Boolean).map(decodeLine);
    expect(lines).toEqual([
      ['D', 'abc', '7', null],
      ['U', 'ABC', '7', 'hello'],
    ]);
    expect(changeLines(orders, ['U', 'x ', '1', null, 'x', '1']).split('\n').filter(Boolean).map(decodeLine)[0]).toEqual(['D', 'x', '1', null]);
  });

  it('emits one line when the spelling is the same, and a delete with the recorded key for a row that is gone', () => {
    expect(changeLines(orders, ['U', 'abc', '7', 'hello', 'abc', '7']).split('\n').filter(Boolean).map(decodeLine)).toEqual([['U', 'abc', '7', 'hello']]);
    expect(changeLines(orders, ['D', null, null, null, 'abc', '7']).split('\n').filter(Boolean).map(decodeLine)).toEqual([['D', 'abc', '7', null]]);
  });

  it('reads the key from the row, and the recorded key after the columns', () => {
    const text = changesSql(orders);
    expect(text).toContain('CAST(t.[code] AS nvarchar(max)) AS [c0]');
    expect(text).toContain('CAST(ct.[code] AS nvarchar(max)) AS [k0]');
    expect(text.indexOf('[c2]')).toBeLessThan(text.indexOf('[k0]'));
  });
});

describe('5. a missing VIEW CHANGE TRACKING grant is told apart from expired tracking', () => {
  it('reads the permission beside the min valid version', () => {
    expect(MIN_VALID_VERSION_SQL).toContain("HAS_PERMS_BY_NAME(@object, N'OBJECT', N'VIEW CHANGE TRACKING') AS can_view_tracking");
    expect(MIN_VALID_VERSION_SQL).toContain('USER_NAME() AS user_name');
  });
});

describe('6. the fingerprint degrades per component and still catches a restore', () => {
  const full = { database_name: 'crm', create_date: '2024-01-01T10:00:00.123', database_guid: 'AB-CD', recovery_fork_guid: 'EF-01' };

  it('reads components the login may not see as unavailable', () => {
    expect(toFingerprint(full)).toEqual({ database_name: 'crm', create_date: '2024-01-01T10:00:00.123', database_guid: 'ab-cd', recovery_fork_guid: 'ef-01' });
    expect(toFingerprint({ ...full, database_guid: null, recovery_fork_guid: null })).toEqual({
      database_name: 'crm',
      create_date: '2024-01-01T10:00:00.123',
      database_guid: 'unavailable',
      recovery_fork_guid: 'unavailable',
    });
  });

  it('detects RESTORE … WITH REPLACE by create_date for a least-privilege login, by the recovery fork for one with VIEW ANY DATABASE', () => {
    const source = (fp: SourceFingerprint) => ({ sourceVersion: '100', fingerprint: fp, minValidVersion: '1' });
    const limited = toFingerprint({ ...full, database_guid: null, recovery_fork_guid: null });
    const restoredLimited = { ...limited, create_date: '2024-06-01T08:00:00.000' };
    expect(continuityBreak('90', limited, source(restoredLimited))?.type).toBe(FailureType.SourceRestored);
    expect(continuityBreak('90', limited, source(limited))).toBeNull();
    const privileged = toFingerprint(full);
    expect(continuityBreak('90', privileged, source({ ...privileged, recovery_fork_guid: 'ff-02' }))?.detail).toContain('recovery_fork_guid');
    // A grant added or revoked later is no evidence of a restore.
    expect(continuityBreak('90', privileged, source(limited))).toBeNull();
  });
});

describe('7. a shorter database retention warns instead of altering the database', () => {
  it('names the retention and the statement a DBA can run, and says nothing when it is long enough', () => {
    const warning = retentionWarning('crm]x', 2 * 24 * 60, { amount: 7, unit: 'DAYS' });
    expect(warning).toContain('change tracking retention of database [crm]]x] is 2880 minutes, shorter than the tenant\'s 10080');
    expect(warning).toContain('ALTER DATABASE [crm]]x] SET CHANGE_TRACKING (CHANGE_RETENTION = 7 DAYS)');
    expect(retentionWarning('crm', 7 * 24 * 60, { amount: 7, unit: 'DAYS' })).toBeNull();
    expect(retentionWarning('crm', 30 * 24 * 60, { amount: 7, unit: 'DAYS' })).toBeNull();
  });
});

describe('8. the table tracking incarnation is part of the table fingerprint', () => {
  it('reads begin_version and the change tracking side table', () => {
    expect(TABLE_TRACKING_SQL).toContain('CONVERT(varchar(20), ctt.begin_version) AS begin_version');
    expect(TABLE_TRACKING_SQL).toContain('it.internal_type = 209');
    expect(TABLE_TRACKING_SQL).toContain('WHERE ctt.object_id = OBJECT_ID(@object)');
  });

  it('reads tracking re-enabled on an idle database as expired, and a population at LSN = begin_version as continuous', () => {
    const db = { database_name: 'crm', create_date: 'd', database_guid: 'g', recovery_fork_guid: 'f' };
    const populated = { ...db, 'table.trackingBegin': '42', 'table.trackingSideTable': '1001@2024-01-01T00:00:00' };
    // Idle: version, min valid version and LSN all 42.
    const now = (fp: SourceFingerprint) => ({ sourceVersion: '42', fingerprint: fp, minValidVersion: '42' });
    expect(continuityBreak('42', populated, now(populated))).toBeNull();
    const reenabled = continuityBreak('42', populated, now({ ...populated, 'table.trackingSideTable': '1002@2024-01-02T00:00:00' }));
    expect(reenabled?.type).toBe(FailureType.TrackingExpired);
    expect(continuityBreak('42', populated, now({ ...populated, 'table.trackingBegin': '43' }))?.type).toBe(FailureType.TrackingExpired);
  });
});

describe('9. a resumed population compares every key in its declared type', () => {
  const t = table('t', [col('at', { kind: 'timestamp', precision: 3 }), col('id', { kind: 'int32' }), col('code', { kind: 'string', length: 5 })], ['at', 'id', 'code']);
  const declared = new Map([['at', 'datetime'], ['id', 'int'], ['code', 'varchar(5)']]);

  it('casts a datetime key parameter to datetime, not datetime2(3)', () => {
    expect(keyValueExpr({ kind: 'timestamp', precision: 3 }, '@k0', 'datetime')).toBe('CAST(CAST(@k0 AS datetime2(3)) AS datetime)');
    const text = rowsSql(t, true, (c) => declared.get(c));
    expect(text).toContain('WHERE t.[at] >= CAST(CAST(@k0 AS datetime2(3)) AS datetime) AND (t.[at] > CAST(CAST(@k0 AS datetime2(3)) AS datetime)');
    expect(text).toContain('t.[id] > CAST(CAST(@k1 AS int) AS int)');
    expect(text).toContain('t.[code] > CAST(@k2 AS varchar(5))');
    expect(text).not.toMatch(/[^(]CAST\(@k0 AS datetime2\(3\)\)\)? [<>=]/);
  });

  it('casts smallmoney, smalldatetime and rowversion keys to what they are', () => {
    expect(keyValueExpr({ kind: 'decimal', precision: 10, scale: 4 }, '@k0', 'smallmoney')).toBe('CAST(CAST(@k0 AS decimal(10,4)) AS smallmoney)');
    expect(keyValueExpr({ kind: 'timestamp', precision: 0 }, '@k0', 'smalldatetime')).toBe('CAST(CAST(@k0 AS datetime2(0)) AS smalldatetime)');
    expect(keyValueExpr({ kind: 'binary', length: 8, fixed: true }, '@k0', 'timestamp')).toBe('CAST(CONVERT(varbinary(max), @k0, 1) AS binary(8))');
  });
});

describe('10. CLR user types and clustered columnstore tables', () => {
  it('reads a user-defined CLR type with ToString(), not CAST', () => {
    const type = mssqlTypeToLogical({ typeName: 'Point', maxLength: -1, precision: 0, scale: 0, clr: true });
    expect(type).toEqual({ kind: 'native', dialect: 'mssql', name: 'clr:point' });
    expect(readExpr(type, 't.[p]')).toBe('t.[p].ToString()');
    // A built-in CLR type keeps its own reading; an unknown system type is still CAST.
    expect(readExpr(mssqlTypeToLogical({ typeName: 'hierarchyid', maxLength: 892, precision: 0, scale: 0 }), 'x')).toBe('x.ToString()');
    expect(readExpr({ kind: 'native', dialect: 'mssql', name: 'vector' }, 'x')).toBe('CAST(x AS nvarchar(max))');
  });
});
