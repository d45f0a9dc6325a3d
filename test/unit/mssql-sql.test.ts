import { describe, expect, it } from 'vitest';
import type { LogicalType, TableSchema } from '../../src/core/types';
import { MirrorError } from '../../src/core/errors';
import * as catalog from '../../src/mssql/catalog';
import * as mirrorSql from '../../src/mssql/mirror-sql';
import * as snapshot from '../../src/mssql/snapshot';
import * as tracking from '../../src/mssql/tracking';
import * as tsql from '../../src/mssql/tsql';

/** Every T-SQL builder of both adapters. */
const q = { ...tsql, ...catalog, ...tracking, ...snapshot, ...mirrorSql };

/** A name that would end any quoting done naively. */
const HOSTILE = "we]ird'; DROP TABLE x;--";
const HOSTILE_Q = "[we]]ird'; DROP TABLE x;--]";

const orders: TableSchema = {
  name: 'sales.orders',
  source: { schema: 'sales', table: 'orders' },
  columns: [
    { name: 'tenant', type: { kind: 'int32' }, nullable: false },
    { name: 'id', type: { kind: 'uuid' }, nullable: false },
    { name: 'amount', type: { kind: 'decimal', precision: 38, scale: 4 }, nullable: true },
    { name: 'note', type: { kind: 'string' }, nullable: true },
  ],
  primaryKey: ['tenant', 'id'],
};

const hostile: TableSchema = {
  name: HOSTILE,
  source: { schema: HOSTILE, table: HOSTILE },
  columns: [
    { name: HOSTILE, type: { kind: 'string', length: 20 }, nullable: false },
    { name: 'v', type: { kind: 'binary' }, nullable: true },
  ],
  primaryKey: [HOSTILE],
};

/** Removes every properly quoted identifier; what is left must not contain the hostile text. */
function outsideQuotes(sqlText: string): string {
  return sqlText.replace(/\[(?:[^\]]|\]\])*\]/g, '[]');
}

describe('identifiers', () => {
  it('quotes schema and table with doubled closing brackets', () => {
    expect(q.tableRef(HOSTILE, 'a]b')).toBe(`${HOSTILE_Q}.[a]]b]`);
  });

  it('fits long derived names into 128 characters, distinctly', () => {
    const a = q.shadowRelation('x'.repeat(125) + 'a');
    const b = q.shadowRelation('x'.repeat(125) + 'b');
    expect(a.length).toBe(128);
    expect(a).not.toBe(b);
    expect(q.shadowRelation('orders')).toBe('orders__shadow');
  });

  it('reserves the mirror own table names', () => {
    expect(() => q.mirrorRelation('_mirror_state')).toThrow(MirrorError);
    expect(() => q.mirrorRelation('_mirror_shadow')).toThrow(MirrorError);
    expect(() => q.mirrorRelation('t__shadow')).toThrow(MirrorError);
    expect(q.mirrorRelation('sales.orders')).toBe('sales.orders');
  });
});

describe('change tracking set-up', () => {
  it('expresses retention in the largest whole unit', () => {
    expect(q.retentionFor(7 * 24 * 3600_000)).toEqual({ amount: 7, unit: 'DAYS' });
    expect(q.retentionFor(36 * 3600_000)).toEqual({ amount: 36, unit: 'HOURS' });
    expect(q.retentionFor(90 * 60_000)).toEqual({ amount: 90, unit: 'MINUTES' });
    expect(q.retentionFor(1)).toEqual({ amount: 1, unit: 'MINUTES' });
    expect(q.retentionFor(61_000)).toEqual({ amount: 2, unit: 'MINUTES' });
    expect(q.retentionMinutes(2, 3)).toBe(2880);
    expect(q.retentionMinutes(5, 2)).toBe(300);
    expect(q.retentionMinutes(30, 1)).toBe(30);
  });

  it('enables database tracking as documented', () => {
    expect(q.enableDatabaseTrackingSql(HOSTILE, { amount: 7, unit: 'DAYS' })).toBe(
      `ALTER DATABASE ${HOSTILE_Q} SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON)`,
    );
    expect(q.setRetentionSql('db', { amount: 3, unit: 'HOURS' })).toBe('ALTER DATABASE [db] SET CHANGE_TRACKING (CHANGE_RETENTION = 3 HOURS)');
    expect(q.allowSnapshotIsolationSql('db')).toBe('ALTER DATABASE [db] SET ALLOW_SNAPSHOT_ISOLATION ON');
    expect(() => q.enableDatabaseTrackingSql('db', { amount: 0, unit: 'DAYS' })).toThrow(MirrorError);
    expect(() => q.enableDatabaseTrackingSql('db', { amount: 1.5, unit: 'DAYS' })).toThrow(MirrorError);
  });

  it('enables table tracking without per-column tracking', () => {
    expect(q.enableTableTrackingSql(HOSTILE, 't')).toBe(`ALTER TABLE ${HOSTILE_Q}.[t] ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)`);
  });

  it('looks objects up by parameter, never by spliced text', () => {
    for (const text of [q.TABLE_TRACKED_SQL, q.MIN_VALID_VERSION_SQL, q.ESTIMATE_ROWS_SQL, q.TABLE_COLUMNS_SQL]) {
      expect(text).toContain('OBJECT_ID(@object)');
    }
    expect(q.MIN_VALID_VERSION_SQL).toContain('CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object))');
    expect(q.CURRENT_VERSION_SQL).toContain('CHANGE_TRACKING_CURRENT_VERSION()');
    expect(q.FINGERPRINT_SQL).toMatch(/DB_NAME\(\)[\s\S]*create_date[\s\S]*database_guid[\s\S]*recovery_fork_guid[\s\S]*FROM sys\.databases AS d\s+LEFT JOIN sys\.database_recovery_status[\s\S]*d\.database_id = DB_ID\(\)/);
    expect(q.DATABASE_TRACKING_STATE_SQL).toMatch(/sys\.change_tracking_databases[\s\S]*snapshot_isolation_state|snapshot_isolation_state[\s\S]*sys\.change_tracking_databases/);
  });
});

describe('reading rows and changes', () => {
  it('reads every type as a lossless string', () => {
    const cases: [LogicalType, string][] = [
      [{ kind: 'boolean' }, 'CONVERT(char(1), x)'],
      [{ kind: 'int64' }, 'CONVERT(varchar(20), x)'],
      [{ kind: 'decimal', precision: 38, scale: 10 }, 'CONVERT(varchar(50), CAST(x AS decimal(38,10)))'],
      [{ kind: 'decimal', precision: 10, scale: 4 }, 'CONVERT(varchar(50), CAST(x AS decimal(10,4)))'],
      [{ kind: 'money' }, 'CONVERT(varchar(30), x, 2)'],
      [{ kind: 'float64' }, 'CONVERT(varchar(30), x, 3)'],
      [{ kind: 'float32' }, 'CONVERT(varchar(30), x, 3)'],
      [{ kind: 'binary', length: 8, fixed: true }, 'CONVERT(varchar(max), CAST(x AS varbinary(max)), 2)'],
      [{ kind: 'date' }, 'CONVERT(varchar(10), x, 23)'],
      [{ kind: 'time', precision: 7 }, 'CONVERT(varchar(16), x, 121)'],
      [{ kind: 'timestamp', precision: 7 }, 'CONVERT(varchar(27), x, 121)'],
      [{ kind: 'timestamptz', precision: 7 }, 'CONVERT(varchar(34), x, 121)'],
      [{ kind: 'uuid' }, 'LOWER(CONVERT(char(36), x))'],
      [{ kind: 'string' }, 'CAST(x AS nvarchar(max))'],
      [{ kind: 'xml' }, 'CAST(x AS nvarchar(max))'],
      [{ kind: 'native', dialect: 'mssql', name: 'hierarchyid' }, 'x.ToString()'],
    ];
    for (const [type, expected] of cases) expect(q.readExpr(type, 'x')).toBe(expected);
    const geo = q.readExpr({ kind: 'native', dialect: 'mssql', name: 'geography' }, 'g');
    expect(geo).toContain("N'SRID=' + CAST(g.STSrid AS nvarchar(11)) + N';' + g.AsTextZM()");
    const variant = q.readExpr({ kind: 'native', dialect: 'mssql', name: 'sql_variant' }, 'v');
    expect(variant).toContain("SQL_VARIANT_PROPERTY(v, 'BaseType')");
    expect(variant).toContain('CONVERT(nvarchar(40), v, 121)');
  });

  it('selects all rows in key order with positional aliases', () => {
    const text = q.rowsSql(orders, false);
    expect(text).toContain('FROM [sales].[orders] AS t');
    expect(text).toContain('ORDER BY t.[tenant], t.[id]');
    expect(text).toContain('LOWER(CONVERT(char(36), t.[id])) AS [c1]');
    expect(text).not.toContain('WHERE');
  });

  it('resumes after a composite key with a seekable, row-value-equivalent predicate', () => {
    const text = q.rowsSql(orders, true);
    expect(text).toContain(
      'WHERE t.[tenant] >= CAST(@k0 AS int) AND (t.[tenant] > CAST(@k0 AS int) OR (t.[tenant] = CAST(@k0 AS int) AND t.[id] > CAST(@k1 AS uniqueidentifier)))',
    );
  });

  it('compares a string key parameter in the column own declared type', () => {
    const text = q.rowsSql(hostile, true, (c) => (c === HOSTILE ? 'varchar(20)' : undefined));
    expect(text).toContain(`WHERE t.${HOSTILE_Q} > CAST(@k0 AS varchar(20))`);
    expect(q.rowsSql(hostile, true)).toContain(`WHERE t.${HOSTILE_Q} > @k0`);
  });

  it('reads net changes outer-joined to the table: the row (keys included) from the table, the recorded key after it', () => {
    const text = q.changesSql(orders);
    expect(text).toContain('DECLARE @v bigint = CAST(@from AS bigint);');
    expect(text).toContain('FROM CHANGETABLE(CHANGES [sales].[orders], @v) AS ct');
    expect(text).toContain('LEFT OUTER JOIN [sales].[orders] AS t ON t.[tenant] = ct.[tenant] AND t.[id] = ct.[id]');
    expect(text).toContain("CASE WHEN t.[tenant] IS NULL THEN 'D' ELSE 'U' END AS [op]");
    expect(text).toContain('CONVERT(varchar(20), t.[tenant]) AS [c0]');
    expect(text).toContain('LOWER(CONVERT(char(36), t.[id])) AS [c1]');
    expect(text).toContain('CONVERT(varchar(20), ct.[tenant]) AS [k0]');
    expect(text).toContain('LOWER(CONVERT(char(36), ct.[id])) AS [k1]');
    expect(text).toContain('CONVERT(varchar(50), CAST(t.[amount] AS decimal(38,4))) AS [c2]');
    expect(text).toContain('CAST(t.[note] AS nvarchar(max)) AS [c3]');
    // CHANGETABLE takes a variable, not an expression.
    expect(text).not.toMatch(/CHANGES [^,]+, CAST/);
  });

  it('keeps hostile names inside brackets everywhere', () => {
    for (const text of [q.rowsSql(hostile, true), q.changesSql(hostile), q.enableTableTrackingSql(HOSTILE, HOSTILE)]) {
      expect(outsideQuotes(text)).not.toContain('DROP TABLE x');
      expect(text).toContain(HOSTILE_Q);
    }
  });

  it('refuses a primary key that names no column', () => {
    expect(() => q.rowsSql({ ...orders, primaryKey: ['nope'] }, true)).toThrow(MirrorError);
  });
});

describe('writing the mirror', () => {
  it('converts staged strings back to each column type on the server', () => {
    const cases: [LogicalType, string][] = [
      [{ kind: 'boolean' }, 'CAST(s AS bit)'],
      [{ kind: 'int8' }, 'CAST(s AS tinyint)'],
      [{ kind: 'decimal', precision: 12, scale: 2 }, 'CAST(s AS decimal(12,2))'],
      [{ kind: 'decimal' }, 'CAST(s AS decimal(38,10))'],
      [{ kind: 'decimal', precision: 60 }, 's'],
      [{ kind: 'money' }, 'CAST(s AS money)'],
      [{ kind: 'float64' }, 'CAST(s AS float)'],
      [{ kind: 'binary' }, 'CONVERT(varbinary(max), s, 1)'],
      [{ kind: 'date' }, 'CONVERT(date, s, 23)'],
      [{ kind: 'time', precision: 6 }, 'CAST(s AS time(6))'],
      [{ kind: 'timestamp', precision: 3 }, 'CAST(s AS datetime2(3))'],
      [{ kind: 'timestamptz' }, 'CAST(s AS datetimeoffset(7))'],
      [{ kind: 'uuid' }, 'CAST(s AS uniqueidentifier)'],
      [{ kind: 'xml' }, 'CAST(s AS xml)'],
      [{ kind: 'string', length: 5 }, 's'],
      [{ kind: 'json' }, 's'],
      [{ kind: 'native', dialect: 'mssql', name: 'hierarchyid' }, 'hierarchyid::Parse(s)'],
      [{ kind: 'native', dialect: 'mssql', name: 'sql_variant' }, 'CAST(CAST(s AS nvarchar(4000)) AS sql_variant)'],
      [{ kind: 'native', dialect: 'postgres', name: 'inet' }, 's'],
    ];
    for (const [type, expected] of cases) expect(q.fromTextExpr(type, 's')).toBe(expected);
    const geo = q.fromTextExpr({ kind: 'native', dialect: 'mssql', name: 'geometry' }, 's');
    expect(geo).toContain("WHEN s LIKE N'SRID=%;%' THEN geometry::STGeomFromText(SUBSTRING(s, CHARINDEX(N';', s) + 1, 2147483647), CAST(SUBSTRING(s, 6, CHARINDEX(N';', s) - 6) AS int))");
    expect(geo).toContain('ELSE geometry::STGeomFromText(s, 0) END');
    expect(q.fromTextExpr({ kind: 'native', dialect: 'mssql', name: 'geography' }, 's')).toContain('geography::STGeomFromText(s, 4326)');
  });

  it('creates the schema through EXEC with the name quoted as identifier and as string', () => {
    const text = q.ensureSchemaSql("o'neil]");
    expect(text).toBe("IF SCHEMA_ID(@schema) IS NULL EXEC(N'CREATE SCHEMA [o''neil]]]')");
  });

  it('creates the state tables if absent', () => {
    expect(q.ensureStateTableSql('t1')).toMatch(/^IF OBJECT_ID\(@state, N'U'\) IS NULL\nCREATE TABLE \[t1\]\.\[_mirror_state\]/);
    expect(q.ensureStateTableSql('t1')).toContain('table_name nvarchar(450) NOT NULL PRIMARY KEY');
    expect(q.ensureShadowTableSql('t1')).toContain('CREATE TABLE [t1].[_mirror_shadow]');
  });

  it('creates a mirror table with NOT NULL keys and an unnamed primary key', () => {
    const text = q.createTableSql('tenant', 'sales.orders', { ...orders, columns: orders.columns.map((c) => ({ ...c, nullable: true })) });
    expect(text).toBe(
      'CREATE TABLE [tenant].[sales.orders] (\n  [tenant] int NOT NULL,\n  [id] uniqueidentifier NOT NULL,\n  [amount] decimal(38,4) NULL,\n  [note] nvarchar(max) NULL,\n  PRIMARY KEY ([tenant], [id])\n)',
    );
    expect(outsideQuotes(q.createTableSql(HOSTILE, HOSTILE, hostile))).not.toContain('DROP TABLE x');
  });

  it('stages rows in positional nvarchar(max) columns of a temporary table', () => {
    // COLLATE DATABASE_DEFAULT: the mirror database's collation, not tempdb's (the server's).
    expect(q.createLoadTableSql('#staging', 2, true)).toBe(
      "IF OBJECT_ID(N'tempdb..#staging') IS NOT NULL DROP TABLE #staging;\nCREATE TABLE #staging ([op] nchar(1) COLLATE DATABASE_DEFAULT NOT NULL, [c0] nvarchar(max) COLLATE DATABASE_DEFAULT NULL, [c1] nvarchar(max) COLLATE DATABASE_DEFAULT NULL)",
    );
    expect(() => q.createLoadTableSql('#x; DROP TABLE y', 1, false)).toThrow();
    expect(() => q.createLoadTableSql('notTemp', 1, false)).toThrow();
    expect(q.dropLoadTableSql('#load')).toBe('DROP TABLE IF EXISTS #load');
  });

  it('inserts converted rows (only upserts from a change batch)', () => {
    const all = q.insertFromLoadSql('m', 'sales.orders', orders, '#load', false);
    expect(all).toBe(
      'INSERT INTO [m].[sales.orders] ([tenant], [id], [amount], [note])\nSELECT CAST(l.[c0] AS int),\n  CAST(l.[c1] AS uniqueidentifier),\n  CAST(l.[c2] AS decimal(38,4)),\n  l.[c3]\nFROM #load AS l',
    );
    expect(q.insertFromLoadSql('m', 'sales.orders', orders, '#staging', true)).toContain("FROM #staging AS l\nWHERE l.[op] = N'U'");
  });

  it('deletes every staged key with one set-based statement', () => {
    expect(q.deleteStagedKeysSql('m', 'sales.orders', orders, '#staging')).toBe(
      'DELETE m FROM [m].[sales.orders] AS m\nWHERE EXISTS (SELECT 1 FROM #staging AS l WHERE m.[tenant] = CAST(l.[c0] AS int) AND m.[id] = CAST(l.[c1] AS uniqueidentifier))',
    );
  });

  it('swaps the shadow in with a drop and sp_rename', () => {
    const text = q.swapShadowSql('m', 'orders');
    expect(text).toContain("IF OBJECT_ID(@live, N'U') IS NOT NULL DROP TABLE [m].[orders];");
    expect(text).toContain("EXEC sys.sp_rename @objname = @shadow, @newname = @newname, @objtype = N'OBJECT'");
  });

  it('upserts state columns from fixed expressions', () => {
    const text = q.upsertStateSql('m', { lsn: '@lsn', last_sync_at: 'SYSUTCDATETIME()' });
    expect(text).toBe(
      'UPDATE [m].[_mirror_state] SET [lsn] = @lsn, [last_sync_at] = SYSUTCDATETIME() WHERE table_name = @table;\nIF @@ROWCOUNT = 0 INSERT INTO [m].[_mirror_state] (table_name, [lsn], [last_sync_at]) VALUES (@table, @lsn, SYSUTCDATETIME())',
    );
    expect(() => q.upsertStateSql('m', {})).toThrow();
  });

  it('keeps the row count unknown when unknown, and never negative', () => {
    const text = q.adjustRowCountSql('m');
    expect(text).toContain('WHEN row_count IS NULL THEN NULL');
    expect(text).toContain('WHEN row_count + @delta < 0 THEN 0');
  });

  it('alters compatible changes in place', () => {
    const schema: TableSchema = {
      name: 't',
      source: { schema: 'dbo', table: 't' },
      columns: [
        { name: 'id', type: { kind: 'int64' }, nullable: false },
        { name: 'n', type: { kind: 'string', length: 100 }, nullable: true },
        { name: 'added', type: { kind: 'date' }, nullable: false },
      ],
      primaryKey: ['id'],
    };
    const out = q.alterStatements('m', 't', schema, [
      { kind: 'widenType', column: 'n', from: { kind: 'string', length: 10 }, to: { kind: 'string', length: 100 } },
      { kind: 'addColumn', column: schema.columns[2]! },
      { kind: 'dropColumn', column: 'gone' },
    ]);
    expect(out).toEqual([
      'ALTER TABLE [m].[t] ALTER COLUMN [n] nvarchar(100) NULL',
      'ALTER TABLE [m].[t] ADD [added] date NULL',
      'ALTER TABLE [m].[t] DROP COLUMN [gone]',
    ]);
    expect(q.alterStatements('m', 't', { ...schema, columns: schema.columns.map((c) => ({ ...c, nullable: c.name === 'added' })) }, [
      { kind: 'dropNotNull', column: 'added' },
    ])).toEqual(['ALTER TABLE [m].[t] ALTER COLUMN [added] date NULL']);
  });

  it('takes an application lock that fails the transaction when not granted', () => {
    expect(q.APP_LOCK_SQL).toContain("EXEC @r = sys.sp_getapplock @Resource = @lock, @LockMode = N'Exclusive', @LockOwner = N'Transaction'");
    expect(q.APP_LOCK_SQL).toContain('IF @r < 0 THROW');
  });
});

describe('untracking', () => {
  it('turns Change Tracking off on one table by its quoted two-part name', () => {
    expect(q.disableTableTrackingSql('sales', "we]ird")).toBe('ALTER TABLE [sales].[we]]ird] DISABLE CHANGE_TRACKING');
  });
});
