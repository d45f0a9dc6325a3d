/**
 * Pure T-SQL builders. Every identifier goes through quoteMssql; every value travels as a parameter (names in
 * catalog look-ups too: OBJECT_ID(@object)), except where T-SQL accepts no parameter (ALTER DATABASE, retention
 * figures), which take only numbers and quoted identifiers.
 *
 * References (Microsoft Learn): "Work with change tracking", CHANGETABLE, CHANGE_TRACKING_CURRENT_VERSION,
 * CHANGE_TRACKING_MIN_VALID_VERSION, "Enable and disable change tracking", ALTER DATABASE SET options,
 * sys.database_recovery_status, sys.change_tracking_tables / _databases, CAST and CONVERT (styles), sp_rename.
 */
import { createHash } from 'node:crypto';
import type { LogicalType, TableSchema } from '../core/types';
import { quoteMssql } from '../core/identifiers';
import { FailureType, MirrorError } from '../core/errors';
import { decimalStorage, logicalToMssqlType, MSSQL_NATIVE } from './types';

export const q = quoteMssql;

/** `[schema].[table]` */
export function tableRef(schema: string, table: string): string {
  return `${q(schema)}.${q(table)}`;
}

/**
 * SQL Server identifiers are at most 128 characters; a derived name (shadow table) that would be longer is cut and
 * given a hash suffix so that it stays distinct.
 */
export function fitMssqlIdentifier(name: string): string {
  if (name.length <= 128) return name;
  const suffix = '_' + createHash('sha256').update(name).digest('hex').slice(0, 10);
  return name.slice(0, 128 - suffix.length) + suffix;
}

export function shadowName(table: string): string {
  return fitMssqlIdentifier(`${table}__shadow`);
}

// ---------------------------------------------------------------------------------------------------------------
// Source: catalog

/**
 * Columns of every user table with their base type and primary key position. Alias types resolve to their system
 * type (TYPE_NAME(system_type_id)); CLR types (hierarchyid, geography, geometry) share system_type_id 240 and are
 * told apart by their own name.
 */
export const LIST_COLUMNS_SQL = `SELECT s.name AS schema_name, t.name AS table_name, c.name AS column_name, c.column_id,
  CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(c.system_type_id) ELSE ty.name END AS type_name,
  c.max_length, c.precision, c.scale, c.is_nullable, ic.key_ordinal
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN sys.columns AS c ON c.object_id = t.object_id
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.indexes AS i ON i.object_id = t.object_id AND i.is_primary_key = 1
LEFT JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.column_id = c.column_id
WHERE t.is_ms_shipped = 0
ORDER BY s.name, t.name, c.column_id`;

/** Rough row count from partition statistics (heap or clustered index only). */
export const ESTIMATE_ROWS_SQL = `SELECT CONVERT(varchar(20), SUM(p.rows)) AS n FROM sys.partitions AS p
WHERE p.object_id = OBJECT_ID(@object) AND p.index_id IN (0, 1)`;

// ---------------------------------------------------------------------------------------------------------------
// Source: change tracking set-up

/**
 * Database-level facts for enabling tracking: the database name (ALTER DATABASE takes no parameter), whether
 * change tracking is on and its retention (sys.change_tracking_databases: retention_period_units 1 = MINUTES,
 * 2 = HOURS, 3 = DAYS), and sys.databases.snapshot_isolation_state (0 OFF, 1 ON, 2 going off, 3 going on).
 */
export const DATABASE_TRACKING_STATE_SQL = `SELECT DB_NAME() AS database_name,
  ctd.retention_period, ctd.retention_period_units, d.snapshot_isolation_state
FROM sys.databases AS d
LEFT JOIN sys.change_tracking_databases AS ctd ON ctd.database_id = d.database_id
WHERE d.database_id = DB_ID()`;

export type RetentionUnit = 'DAYS' | 'HOURS' | 'MINUTES';

export interface Retention {
  amount: number;
  unit: RetentionUnit;
}

const MINUTE = 60_000;

/** The largest whole unit that expresses the retention (rounded up to whole minutes; the minimum is 1 minute). */
export function retentionFor(ms: number): Retention {
  const minutes = Math.max(1, Math.ceil(ms / MINUTE));
  if (minutes % (24 * 60) === 0) return { amount: minutes / (24 * 60), unit: 'DAYS' };
  if (minutes % 60 === 0) return { amount: minutes / 60, unit: 'HOURS' };
  return { amount: minutes, unit: 'MINUTES' };
}

/** Retention in minutes from sys.change_tracking_databases columns. */
export function retentionMinutes(period: number, units: number): number {
  return units === 3 ? period * 24 * 60 : units === 2 ? period * 60 : period;
}

function retentionClause(r: Retention): string {
  if (!Number.isInteger(r.amount) || r.amount < 1) throw new MirrorError(FailureType.BadConfig, `invalid change retention ${r.amount}`);
  return `CHANGE_RETENTION = ${r.amount} ${r.unit}`;
}

/** ALTER DATABASE ... SET CHANGE_TRACKING = ON (CHANGE_RETENTION = n unit, AUTO_CLEANUP = ON). Not in a transaction. */
export function enableDatabaseTrackingSql(database: string, r: Retention): string {
  return `ALTER DATABASE ${q(database)} SET CHANGE_TRACKING = ON (${retentionClause(r)}, AUTO_CLEANUP = ON)`;
}

/** Raises the retention of a database that already tracks changes. */
export function setRetentionSql(database: string, r: Retention): string {
  return `ALTER DATABASE ${q(database)} SET CHANGE_TRACKING (${retentionClause(r)})`;
}

/** SNAPSHOT transactions need this database option (Microsoft's recommended way to read changes consistently). */
export function allowSnapshotIsolationSql(database: string): string {
  return `ALTER DATABASE ${q(database)} SET ALLOW_SNAPSHOT_ISOLATION ON`;
}

export const TABLE_TRACKED_SQL = `SELECT CONVERT(varchar(20), ctt.min_valid_version) AS min_valid_version
FROM sys.change_tracking_tables AS ctt WHERE ctt.object_id = OBJECT_ID(@object)`;

/** Net changes are enough: the row itself is read from the table, so per-column tracking would only cost. */
export function enableTableTrackingSql(schema: string, table: string): string {
  return `ALTER TABLE ${tableRef(schema, table)} ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)`;
}

// ---------------------------------------------------------------------------------------------------------------
// Source: reading

/**
 * Fingerprint of this incarnation of the database: a restore gives it a new recovery fork (and a restore as a new
 * database a new database_guid).
 */
export const FINGERPRINT_SQL = `SELECT CONVERT(varchar(36), drs.database_guid) AS database_guid,
  CONVERT(varchar(36), drs.recovery_fork_guid) AS recovery_fork_guid, DB_NAME() AS database_name
FROM sys.database_recovery_status AS drs WHERE drs.database_id = DB_ID()`;

/** First statement of a snapshot transaction: the version the mirror's LSN becomes (NULL: tracking is off). */
export const CURRENT_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_CURRENT_VERSION()) AS version`;

/** NULL when the table is not tracked (or the database is not, or the name is unknown). */
export const MIN_VALID_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object))) AS min_valid_version`;

/** A snapshot transaction leaves its isolation level on the pooled connection; this puts the default back. */
export const RESET_ISOLATION_SQL = `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`;

/**
 * A column read as a string on the server, in a form `mssqlToCopyField` maps to PostgreSQL text without loss:
 * CONVERT styles 2 (money: 4 decimals; binary: hex), 3 (float/real: 17/9 digits, "lossless"), 23 (date),
 * 121 (ODBC canonical with fractions: time, datetime, datetime2, datetimeoffset with its offset).
 */
export function readExpr(type: LogicalType, col: string): string {
  switch (type.kind) {
    case 'boolean':
      return `CONVERT(char(1), ${col})`;
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      return `CONVERT(varchar(20), ${col})`;
    case 'decimal':
      return type.precision !== undefined && type.precision <= 38
        ? `CONVERT(varchar(50), CAST(${col} AS decimal(${type.precision},${type.scale ?? 0})))`
        : `CONVERT(varchar(50), ${col})`;
    case 'money':
      return `CONVERT(varchar(30), ${col}, 2)`;
    case 'float32':
    case 'float64':
      return `CONVERT(varchar(30), ${col}, 3)`;
    case 'binary':
      return `CONVERT(varchar(max), CAST(${col} AS varbinary(max)), 2)`;
    case 'date':
      return `CONVERT(varchar(10), ${col}, 23)`;
    case 'time':
      return `CONVERT(varchar(16), ${col}, 121)`;
    case 'timestamp':
      return `CONVERT(varchar(27), ${col}, 121)`;
    case 'timestamptz':
      return `CONVERT(varchar(34), ${col}, 121)`;
    case 'uuid':
      return `LOWER(CONVERT(char(36), ${col}))`;
    case 'native':
      if (type.dialect === 'mssql') return nativeReadExpr(type.name, col);
      return `CAST(${col} AS nvarchar(max))`;
    default:
      return `CAST(${col} AS nvarchar(max))`;
  }
}

function nativeReadExpr(name: string, col: string): string {
  switch (name) {
    case 'hierarchyid':
      return `${col}.ToString()`;
    case 'geography':
    case 'geometry':
      // EWKT ('SRID=4326;POINT (1 2)'): the SRID survives, and PostGIS reads the form directly. AsTextZM keeps Z and M.
      return `CASE WHEN ${col} IS NULL THEN NULL ELSE N'SRID=' + CAST(${col}.STSrid AS nvarchar(11)) + N';' + ${col}.AsTextZM() END`;
    case 'sql_variant':
      return sqlVariantReadExpr(col);
    default:
      return `CAST(${col} AS nvarchar(max))`;
  }
}

/** The text form of a sql_variant's base value, with the same lossless styles as a column of that base type. */
function sqlVariantReadExpr(col: string): string {
  const base = `CONVERT(nvarchar(128), SQL_VARIANT_PROPERTY(${col}, 'BaseType'))`;
  return `CASE WHEN ${col} IS NULL THEN NULL
  WHEN ${base} IN (N'binary', N'varbinary') THEN N'0x' + CONVERT(nvarchar(max), CAST(${col} AS varbinary(8000)), 2)
  WHEN ${base} IN (N'float', N'real') THEN CONVERT(nvarchar(30), CAST(${col} AS float), 3)
  WHEN ${base} IN (N'money', N'smallmoney') THEN CONVERT(nvarchar(30), CAST(${col} AS money), 2)
  WHEN ${base} IN (N'date', N'time', N'datetime', N'datetime2', N'smalldatetime', N'datetimeoffset') THEN CONVERT(nvarchar(40), ${col}, 121)
  ELSE CAST(${col} AS nvarchar(4000)) END`;
}

/**
 * A string (a parameter or a staging column holding `copyFieldToMssql` output) converted to the mirror column type
 * `logicalToMssqlType(type)`. Date and time strings are ISO 8601 with 'T', which SQL Server reads the same under
 * every SET LANGUAGE / SET DATEFORMAT.
 */
export function fromTextExpr(type: LogicalType, expr: string): string {
  switch (type.kind) {
    case 'boolean':
      return `CAST(${expr} AS bit)`;
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'money':
    case 'float32':
    case 'float64':
    case 'uuid':
      return `CAST(${expr} AS ${logicalToMssqlType(type)})`;
    case 'decimal': {
      const storage = decimalStorage(type);
      return storage === null ? expr : `CAST(${expr} AS ${storage})`;
    }
    case 'binary':
      return `CONVERT(varbinary(max), ${expr}, 1)`;
    case 'date':
      return `CONVERT(date, ${expr}, 23)`;
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'xml':
      return `CAST(${expr} AS ${logicalToMssqlType(type)})`;
    case 'native':
      if (type.dialect === 'mssql' && MSSQL_NATIVE.has(type.name)) return nativeFromTextExpr(type.name, expr);
      return expr;
    default:
      return expr;
  }
}

function nativeFromTextExpr(name: string, e: string): string {
  switch (name) {
    case 'hierarchyid':
      return `hierarchyid::Parse(${e})`;
    case 'geography':
    case 'geometry': {
      // 'SRID=n;WKT' (as read by nativeReadExpr), or plain WKT with the type's usual default SRID.
      const srid = name === 'geography' ? 4326 : 0;
      return `CASE WHEN ${e} IS NULL THEN NULL
  WHEN ${e} LIKE N'SRID=%;%' THEN ${name}::STGeomFromText(SUBSTRING(${e}, CHARINDEX(N';', ${e}) + 1, 2147483647), CAST(SUBSTRING(${e}, 6, CHARINDEX(N';', ${e}) - 6) AS int))
  ELSE ${name}::STGeomFromText(${e}, ${srid}) END`;
    }
    case 'sql_variant':
      return `CAST(CAST(${e} AS nvarchar(4000)) AS sql_variant)`;
    default:
      return e;
  }
}

/** Source-side reference to a column in the table `alias`. */
function col(alias: string, name: string): string {
  return `${alias}.${q(name)}`;
}

/** Key columns of a table with their types, in key order. */
export function keyColumns(table: TableSchema): { name: string; type: LogicalType }[] {
  return table.primaryKey.map((k) => {
    const c = table.columns.find((x) => x.name === k);
    if (!c) throw new MirrorError(FailureType.BadConfig, `primary key column ${k} is not a column of ${table.name}`);
    return { name: c.name, type: c.type };
  });
}

/**
 * "key > (@k0, @k1, ...)" in key order, as T-SQL has no row-value comparison:
 * k0 >= @k0 AND (k0 > @k0 OR (k0 = @k0 AND (k1 > @k1 OR ...))). The leading `>=` lets the optimizer seek.
 */
export function keyAfterPredicate(
  table: TableSchema,
  alias: string,
  param: (i: number) => string,
  declaredType: (column: string) => string | undefined = () => undefined,
): string {
  const keys = keyColumns(table);
  const v = (i: number): string => keyValueExpr(keys[i]!.type, param(i), declaredType(keys[i]!.name));
  const build = (i: number): string => {
    const c = col(alias, keys[i]!.name);
    if (i === keys.length - 1) return `${c} > ${v(i)}`;
    return `(${c} > ${v(i)} OR (${c} = ${v(i)} AND ${build(i + 1)}))`;
  };
  if (keys.length === 1) return build(0);
  return `${col(alias, keys[0]!.name)} >= ${v(0)} AND ${build(0)}`;
}

/**
 * A key parameter compared with a key column. A string parameter is cast to the column's own declared type, so the
 * comparison uses exactly the column's collation and sort order (an nvarchar parameter against a varchar column
 * with a SQL_* collation would compare in Unicode order, which need not be the ORDER BY order).
 */
function keyValueExpr(type: LogicalType, param: string, declared: string | undefined): string {
  if (type.kind === 'string' && declared !== undefined) return `CAST(${param} AS ${declared})`;
  return fromTextExpr(type, param);
}

/**
 * Every row (after a key, when given as parameters @k0..@kn), in key order, each column read as a string.
 * `declaredType` gives a key column's declaration (e.g. varchar(20)) for the comparison.
 */
export function rowsSql(
  table: TableSchema,
  afterKey: boolean,
  declaredType: (column: string) => string | undefined = () => undefined,
): string {
  const { schema, table: name } = table.source;
  const select = table.columns.map((c, i) => `${readExpr(c.type, col('t', c.name))} AS ${q(`c${i}`)}`).join(',\n  ');
  const where = afterKey ? `\nWHERE ${keyAfterPredicate(table, 't', (i) => `@k${i}`, declaredType)}` : '';
  const order = table.primaryKey.map((k) => col('t', k)).join(', ');
  return `SELECT ${select}\nFROM ${tableRef(schema, name)} AS t${where}\nORDER BY ${order}`;
}

/**
 * Net changes since @from (a decimal string: bigint does not fit a JS number), as Microsoft documents them: the
 * CHANGES rows outer-joined to the table on the primary key, so a key whose row is gone comes back with NULLs
 * ('D': delete it) and any other key with its current row ('U': upsert). CHANGETABLE's last_sync_version must be
 * a scalar, not an expression, hence the variable. Rows with SYS_CHANGE_VERSION > @v are returned.
 */
export function changesSql(table: TableSchema): string {
  const { schema, table: name } = table.source;
  const keys = new Set(table.primaryKey);
  const present = col('t', table.primaryKey[0]!);
  const select = table.columns
    .map((c, i) => {
      // Key values come from the change table (they exist for deletes too); the rest from the current row.
      const source = keys.has(c.name) ? col('ct', c.name) : col('t', c.name);
      return `${readExpr(c.type, source)} AS ${q(`c${i}`)}`;
    })
    .join(',\n  ');
  const join = table.primaryKey.map((k) => `${col('t', k)} = ${col('ct', k)}`).join(' AND ');
  return `DECLARE @v bigint = CAST(@from AS bigint);
SELECT CASE WHEN ${present} IS NULL THEN 'D' ELSE 'U' END AS [op],
  ${select}
FROM CHANGETABLE(CHANGES ${tableRef(schema, name)}, @v) AS ct
LEFT OUTER JOIN ${tableRef(schema, name)} AS t ON ${join}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Mirror

export function ensureSchemaSql(schema: string): string {
  // CREATE SCHEMA must be alone in its batch, hence EXEC of a string; the name is quoted twice (identifier, then
  // string literal) so that no character of it is ever code.
  const ddl = `CREATE SCHEMA ${q(schema)}`;
  return `IF SCHEMA_ID(@schema) IS NULL EXEC(N'${ddl.replace(/'/g, "''")}')`;
}

export const STATE_TABLE = '_mirror_state';

/**
 * The mirror's progress, one row per table, updated in the same transaction as the data it describes. lsn is a
 * decimal string (a PostgreSQL source's versions are unsigned 64-bit).
 */
export function ensureStateTableSql(schema: string): string {
  const t = tableRef(schema, STATE_TABLE);
  return `IF OBJECT_ID(@state, N'U') IS NULL
CREATE TABLE ${t} (
  table_name nvarchar(450) NOT NULL PRIMARY KEY,
  lsn varchar(40) NULL,
  schema_hash varchar(64) NULL,
  fingerprint nvarchar(max) NULL,
  populated_at datetime2(3) NULL,
  last_sync_at datetime2(3) NULL,
  row_count bigint NULL
)`;
}

export function readStateSql(schema: string): string {
  return `SELECT table_name, lsn, schema_hash, fingerprint,
  CONVERT(varchar(30), populated_at, 126) AS populated_at, CONVERT(varchar(30), last_sync_at, 126) AS last_sync_at,
  CONVERT(varchar(20), row_count) AS row_count
FROM ${tableRef(schema, STATE_TABLE)} ORDER BY table_name`;
}

export type StateColumn = 'lsn' | 'schema_hash' | 'fingerprint' | 'populated_at' | 'last_sync_at' | 'row_count';

/**
 * Sets some state columns of one table (inserting its row if absent). Values are fixed expressions chosen by the
 * caller (parameters such as @lsn, or SYSUTCDATETIME()), never data.
 */
export function upsertStateSql(schema: string, values: Partial<Record<StateColumn, string>>): string {
  const t = tableRef(schema, STATE_TABLE);
  const entries = Object.entries(values) as [StateColumn, string][];
  if (entries.length === 0) throw new Error('upsertStateSql needs at least one column');
  const set = entries.map(([c, e]) => `${q(c)} = ${e}`).join(', ');
  const cols = entries.map(([c]) => q(c)).join(', ');
  const vals = entries.map(([, e]) => e).join(', ');
  return `UPDATE ${t} SET ${set} WHERE table_name = @table;
IF @@ROWCOUNT = 0 INSERT INTO ${t} (table_name, ${cols}) VALUES (@table, ${vals})`;
}

export function deleteStateSql(schema: string): string {
  return `DELETE FROM ${tableRef(schema, STATE_TABLE)} WHERE table_name = @table`;
}

/** Columns of an existing table, for comparing with the schema it should have. */
export const TABLE_COLUMNS_SQL = `SELECT c.name AS column_name,
  CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(c.system_type_id) ELSE ty.name END AS type_name,
  c.max_length, c.precision, c.scale, c.is_nullable, ic.key_ordinal
FROM sys.columns AS c
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.indexes AS i ON i.object_id = c.object_id AND i.is_primary_key = 1
LEFT JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.column_id = c.column_id
WHERE c.object_id = OBJECT_ID(@object)
ORDER BY c.column_id`;

function columnDef(c: { name: string; type: LogicalType }, nullable: boolean): string {
  return `${q(c.name)} ${logicalToMssqlType(c.type)} ${nullable ? 'NULL' : 'NOT NULL'}`;
}

/** The mirror table. Its primary key constraint is left unnamed: the shadow and the live table both carry one, and
 *  constraint names are unique per schema. */
export function createTableSql(schema: string, name: string, table: TableSchema): string {
  const keys = new Set(table.primaryKey);
  const cols = table.columns.map((c) => columnDef(c, c.nullable && !keys.has(c.name)));
  cols.push(`PRIMARY KEY (${table.primaryKey.map(q).join(', ')})`);
  return `CREATE TABLE ${tableRef(schema, name)} (\n  ${cols.join(',\n  ')}\n)`;
}

/** A column added to a table that already has rows must accept NULL until a backfill fills it. */
export function addColumnSql(schema: string, name: string, c: { name: string; type: LogicalType; nullable: boolean }): string {
  return `ALTER TABLE ${tableRef(schema, name)} ADD ${columnDef(c, true)}`;
}

export function dropColumnSql(schema: string, name: string, column: string): string {
  return `ALTER TABLE ${tableRef(schema, name)} DROP COLUMN ${q(column)}`;
}

export function dropTableSql(schema: string, name: string): string {
  return `DROP TABLE IF EXISTS ${tableRef(schema, name)}`;
}

export function countRowsSql(schema: string, name: string): string {
  return `SELECT CONVERT(varchar(20), COUNT_BIG(*)) AS n FROM ${tableRef(schema, name)}`;
}

/** Tables of the tenant schema other than the state table (wipe). */
export const SCHEMA_TABLES_SQL = `SELECT t.name FROM sys.tables AS t WHERE t.schema_id = SCHEMA_ID(@schema)
  AND t.name NOT IN (N'_mirror_state', N'_mirror_shadow')`;

/**
 * A session temporary table of nvarchar(max) columns c0..cn (plus `op` for changes) that bulk loads land in before
 * a set-based, server-side conversion into the typed table. Positional names keep table and column names out of
 * the bulk-load statement, which the driver builds itself.
 */
export function createLoadTableSql(loadTable: string, columns: number, withOp: boolean): string {
  assertTempName(loadTable);
  const cols = Array.from({ length: columns }, (_, i) => `${q(`c${i}`)} nvarchar(max) NULL`);
  if (withOp) cols.unshift('[op] nchar(1) NOT NULL');
  return `IF OBJECT_ID(N'tempdb..${loadTable}') IS NOT NULL DROP TABLE ${loadTable};
CREATE TABLE ${loadTable} (${cols.join(', ')})`;
}

export function dropLoadTableSql(loadTable: string): string {
  assertTempName(loadTable);
  return `DROP TABLE IF EXISTS ${loadTable}`;
}

function assertTempName(name: string): void {
  if (!/^#[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`not a plain temporary table name: ${name}`);
}

/** Converted rows from the load table into the target (optionally only the 'U' rows of a change batch). */
export function insertFromLoadSql(schema: string, target: string, table: TableSchema, loadTable: string, onlyUpserts: boolean): string {
  assertTempName(loadTable);
  const cols = table.columns.map((c) => q(c.name)).join(', ');
  const values = table.columns.map((c, i) => fromTextExpr(c.type, `l.${q(`c${i}`)}`)).join(',\n  ');
  const where = onlyUpserts ? `\nWHERE l.[op] = N'U'` : '';
  return `INSERT INTO ${tableRef(schema, target)} (${cols})\nSELECT ${values}\nFROM ${loadTable} AS l${where}`;
}

/** Deletes every staged key (deletes, and the old version of upserts, re-inserted right after). */
export function deleteStagedKeysSql(schema: string, target: string, table: TableSchema, loadTable: string): string {
  assertTempName(loadTable);
  const match = table.primaryKey
    .map((k) => {
      const i = table.columns.findIndex((c) => c.name === k);
      const c = table.columns[i]!;
      return `m.${q(k)} = ${fromTextExpr(c.type, `l.${q(`c${i}`)}`)}`;
    })
    .join(' AND ');
  return `DELETE m FROM ${tableRef(schema, target)} AS m\nWHERE EXISTS (SELECT 1 FROM ${loadTable} AS l WHERE ${match})`;
}

/**
 * Replaces the live table with its shadow: drop, then sp_rename (whose @newname is a bare one-part name), all in the
 * caller's transaction together with the state row. @live and @shadow are the quoted two-part names, @newname the
 * raw table name.
 */
export function swapShadowSql(schema: string, live: string): string {
  return `IF OBJECT_ID(@live, N'U') IS NOT NULL DROP TABLE ${tableRef(schema, live)};
EXEC sys.sp_rename @objname = @shadow, @newname = @newname, @objtype = N'OBJECT'`;
}

/** Object-existence check by quoted two-part name. */
export const OBJECT_EXISTS_SQL = `SELECT CASE WHEN OBJECT_ID(@object, N'U') IS NULL THEN 0 ELSE 1 END AS present`;

/** Widens a column (or drops its NOT NULL) in place; the declaration is the full new type. */
export function alterColumnSql(schema: string, name: string, column: string, type: LogicalType, nullable: boolean): string {
  return `ALTER TABLE ${tableRef(schema, name)} ALTER COLUMN ${q(column)} ${logicalToMssqlType(type)} ${nullable ? 'NULL' : 'NOT NULL'}`;
}

/** A population's progress, one row per shadow table, written in the same transaction as each chunk. */
export const SHADOW_TABLE = '_mirror_shadow';

export function ensureShadowTableSql(schema: string): string {
  return `IF OBJECT_ID(@shadowState, N'U') IS NULL
CREATE TABLE ${tableRef(schema, SHADOW_TABLE)} (
  table_name nvarchar(450) NOT NULL PRIMARY KEY,
  marker nvarchar(max) NOT NULL
)`;
}

export function readMarkerSql(schema: string): string {
  return `SELECT marker FROM ${tableRef(schema, SHADOW_TABLE)} WHERE table_name = @table`;
}

export function writeMarkerSql(schema: string): string {
  const t = tableRef(schema, SHADOW_TABLE);
  return `UPDATE ${t} SET marker = @marker WHERE table_name = @table;
IF @@ROWCOUNT = 0 INSERT INTO ${t} (table_name, marker) VALUES (@table, @marker)`;
}

export function deleteMarkerSql(schema: string): string {
  return `DELETE FROM ${tableRef(schema, SHADOW_TABLE)} WHERE table_name = @table`;
}

/** Row count kept in step with a change batch (NULL stays NULL: an unknown count is not made up). */
export function adjustRowCountSql(schema: string): string {
  return `UPDATE ${tableRef(schema, STATE_TABLE)} SET row_count = CASE WHEN row_count IS NULL THEN NULL
  WHEN row_count + @delta < 0 THEN 0 ELSE row_count + @delta END WHERE table_name = @table`;
}

/**
 * Serializes the mirror's DDL per schema or table across workers, released with the transaction
 * (sp_getapplock; a result below 0 means the lock was not granted).
 */
export const APP_LOCK_SQL = `DECLARE @r int;
EXEC @r = sys.sp_getapplock @Resource = @lock, @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF @r < 0 THROW 51000, N'could not take the mirror lock', 1;`;
