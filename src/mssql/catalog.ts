/**
 * Reading a SQL Server source's catalog: which tables can be mirrored and their shapes, the declared types of
 * their columns (for key comparisons), and the facts that identify this database incarnation.
 */
import sql from 'mssql';
import { FailureType, MirrorError } from '../core/errors';
import { mirroredTableName } from '../core/identifiers';
import type { SkippedTable, SourceFingerprint, SourceTables, TableSchema } from '../core/types';
import { TABLE_COLUMNS_SQL, tableRef, UNAVAILABLE } from './tsql';
import { formatMssqlType, mssqlTypeToLogical, type CatalogColumn, type MssqlColumnFacts } from './types';

/**
 * Columns of every user table with their base type and primary key position. Alias types resolve to their system
 * type (TYPE_NAME(system_type_id)); CLR types (hierarchyid, geography, geometry) share system_type_id 240 and are
 * told apart by their own name; a user-defined CLR type is flagged (is_clr), as only its .ToString() reads it.
 * `clustered_columnstore`: Change Tracking cannot be enabled on a table with a clustered columnstore index
 * (error 35353), so such a table is skipped rather than failing the tenant.
 */
export const LIST_COLUMNS_SQL = `SELECT s.name AS schema_name, t.name AS table_name, c.name AS column_name, c.column_id,
  CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(c.system_type_id) ELSE ty.name END AS type_name,
  CAST(CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 1 THEN 1 ELSE 0 END AS bit) AS is_clr,
  c.max_length, c.precision, c.scale, c.is_nullable, ic.key_ordinal,
  CAST(CASE WHEN EXISTS (SELECT 1 FROM sys.indexes AS cs WHERE cs.object_id = t.object_id AND cs.type = 5) THEN 1 ELSE 0 END AS bit) AS clustered_columnstore
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

/**
 * Fingerprint of this incarnation of the database, one component per fact, each catching its own kind of rebuild:
 * - `database_guid` (sys.database_recovery_status): another database restored or attached under this name (a
 *   RESTORE that creates a database gives it a new GUID; one over the live database keeps the backup's);
 * - `recovery_fork_guid` (same view): any restore that recovered the database, RESTORE … WITH REPLACE of its own
 *   backup included: it starts a new recovery fork;
 * - `create_date` (sys.databases): when the database was created, restored or renamed, so RESTORE … WITH REPLACE
 *   over the live database changes it too;
 * - `database_name`: the tenant's URL pointed at another database.
 * sys.database_recovery_status shows a database other than master/tempdb only to its owner or a login with VIEW ANY
 * DATABASE (or ALTER ANY DATABASE, or CREATE DATABASE in master); a least-privilege login sees no row, and its two
 * components read 'unavailable' (no evidence either way) instead of failing every snapshot. sys.databases always
 * shows the current database, so create_date still catches a restore over it.
 */
export const FINGERPRINT_SQL = `SELECT DB_NAME() AS database_name, CONVERT(varchar(30), d.create_date, 126) AS create_date,
  CONVERT(varchar(36), drs.database_guid) AS database_guid, CONVERT(varchar(36), drs.recovery_fork_guid) AS recovery_fork_guid
FROM sys.databases AS d
LEFT JOIN sys.database_recovery_status AS drs ON drs.database_id = d.database_id
WHERE d.database_id = DB_ID()`;

/** A source table's name in the mirror: `schema.table`, with `dbo.` dropped. */
export function mirrorName(schema: string, table: string): string {
  return mirroredTableName(schema, table, 'dbo');
}

interface ColumnRow extends CatalogColumn {
  schema_name: string;
  table_name: string;
  is_clr?: boolean;
  clustered_columnstore?: boolean;
}

function facts(r: Pick<ColumnRow, 'type_name' | 'max_length' | 'precision' | 'scale' | 'is_clr'>): MssqlColumnFacts {
  return { typeName: r.type_name, maxLength: r.max_length, precision: r.precision, scale: r.scale, ...(r.is_clr ? { clr: true } : {}) };
}

/** Declared column types by column name (e.g. varchar(20)), for key comparisons (see snapshot.ts keyValueExpr). */
export type DeclaredTypes = Map<string, string>;

export interface ListedTables extends SourceTables {
  declared: Map<string, DeclaredTypes>;
}

export async function listTables(pool: sql.ConnectionPool, filter: (name: string) => boolean): Promise<ListedTables> {
  const res = await pool.request().query<ColumnRow>(LIST_COLUMNS_SQL);
  const byTable = new Map<string, ColumnRow[]>();
  for (const r of res.recordset) {
    const key = JSON.stringify([r.schema_name, r.table_name]);
    const list = byTable.get(key) ?? [];
    list.push(r);
    byTable.set(key, list);
  }
  const tables: TableSchema[] = [];
  const skipped: SkippedTable[] = [];
  const declared = new Map<string, DeclaredTypes>();
  for (const rows of byTable.values()) {
    const { schema_name: schema, table_name: table } = rows[0]!;
    const name = mirrorName(schema, table);
    if (!filter(name)) continue;
    // Without a primary key Change Tracking cannot track the table: it is listed keyless, mirrored by refresh.
    const keyed = rows.filter((r) => r.key_ordinal !== null).sort((a, b) => (a.key_ordinal ?? 0) - (b.key_ordinal ?? 0));
    if (rows[0]!.clustered_columnstore) {
      skipped.push({ name, reason: 'clustered columnstore index: SQL Server Change Tracking cannot track such a table (error 35353)' });
      continue;
    }
    declared.set(name, new Map(rows.map((r) => [r.column_name, formatMssqlType(facts(r))])));
    tables.push({
      name,
      source: { schema, table },
      columns: rows.map((r) => ({ name: r.column_name, type: mssqlTypeToLogical(facts(r)), nullable: r.is_nullable })),
      primaryKey: keyed.map((r) => r.column_name),
    });
  }
  return { tables, skipped, declared };
}

/** Declared column types of one table, read now (for a process that has not listed the table). */
export async function readDeclaredTypes(pool: sql.ConnectionPool, table: TableSchema): Promise<DeclaredTypes> {
  const res = await pool
    .request()
    .input('object', sql.NVarChar(4000), tableRef(table.source.schema, table.source.table))
    .query<ColumnRow>(TABLE_COLUMNS_SQL);
  return new Map(res.recordset.map((r) => [r.column_name, formatMssqlType(facts(r))]));
}

export async function estimateRows(pool: sql.ConnectionPool, table: TableSchema): Promise<number> {
  const res = await pool
    .request()
    .input('object', sql.NVarChar(4000), tableRef(table.source.schema, table.source.table))
    .query<{ n: string | null }>(ESTIMATE_ROWS_SQL);
  return Number(res.recordset[0]?.n ?? 0);
}

interface FingerprintRow {
  database_name: string;
  create_date: string | null;
  database_guid: string | null;
  recovery_fork_guid: string | null;
}

export async function readFingerprint(request: sql.Request): Promise<SourceFingerprint> {
  const res = await request.query<FingerprintRow>(FINGERPRINT_SQL);
  const row = res.recordset[0];
  if (!row) throw new MirrorError(FailureType.SourceReadFailed, 'the current database is not in sys.databases');
  return toFingerprint(row);
}

/** A component the server would not show this login reads 'unavailable' (see FINGERPRINT_SQL). */
export function toFingerprint(row: FingerprintRow): SourceFingerprint {
  const known = (v: string | null): string => (v === null || v === '' ? UNAVAILABLE : v.toLowerCase());
  return {
    database_guid: known(row.database_guid),
    recovery_fork_guid: known(row.recovery_fork_guid),
    create_date: row.create_date ?? UNAVAILABLE,
    database_name: row.database_name,
  };
}
