/**
 * T-SQL text for SQL Server as a mirror: the tenant schema, `_mirror_state` and `_mirror_shadow`, table DDL,
 * bulk-load staging, set-based change apply and the shadow swap. Pure builders: every identifier goes through
 * quoteMssql, every value is a parameter.
 *
 * References (Microsoft Learn): sp_rename, sp_getapplock, temporary tables, CREATE SCHEMA.
 */
import type { SchemaChange } from '../core/schema-compat';
import type { LogicalType, TableSchema } from '../core/types';
import { FailureType, MirrorError } from '../core/errors';
import { LOG_COLUMNS } from '../core/mirror-log';
import { KEY_COLLATION, keyPlan, mirrorDeclarations } from './mirror-keys';
import { fitMssqlIdentifier, fromTextExpr, q, tableRef } from './tsql';
import { logicalToMssqlType } from './types';

/** The mirror table for a source table name; the mirror's own names are reserved. */
export function mirrorRelation(name: string): string {
  if (name === STATE_TABLE || name === SHADOW_TABLE || name === FENCE_TABLE || name === LOG_TABLE || name.endsWith('__shadow')) {
    throw new MirrorError(FailureType.BadConfig, `table name ${JSON.stringify(name)} is reserved by the mirror (${STATE_TABLE}, ${SHADOW_TABLE}, ${FENCE_TABLE}, ${LOG_TABLE}, *__shadow)`, {
      table: name,
    });
  }
  return fitMssqlIdentifier(name);
}

/** The shadow a population fills before it is swapped in. */
export function shadowRelation(name: string): string {
  return fitMssqlIdentifier(`${mirrorRelation(name)}__shadow`);
}

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
  row_count bigint NULL,
  needs_backfill bit NOT NULL DEFAULT 0
)`;
}

/** A state table of the first layout gains the backfill flag (@state: its quoted two-part name). */
export function addBackfillColumnSql(schema: string): string {
  return `IF COL_LENGTH(@state, 'needs_backfill') IS NULL
ALTER TABLE ${tableRef(schema, STATE_TABLE)} ADD needs_backfill bit NOT NULL CONSTRAINT DF_mirror_state_needs_backfill DEFAULT 0`;
}

export const FENCE_TABLE = '_mirror_fence';

export const LOG_TABLE = '_mirror_log';

/**
 * The partner-readable history (src/core/mirror-log.ts); @log: its quoted two-part name. Its primary key (clustered,
 * as a first index is by default) is (logged_at, id), so pruning by age walks the clustered key.
 */
export function ensureLogTableSql(schema: string): string {
  return `IF OBJECT_ID(@log, N'U') IS NULL
CREATE TABLE ${tableRef(schema, LOG_TABLE)} (
  id bigint IDENTITY(1,1) NOT NULL,
  logged_at datetime2(3) NOT NULL CONSTRAINT DF_mirror_log_logged_at DEFAULT SYSUTCDATETIME(),
  table_name nvarchar(450) NOT NULL,
  event varchar(16) NOT NULL,
  inserts bigint NULL,
  updates bigint NULL,
  deletes bigint NULL,
  row_count bigint NULL,
  bytes bigint NULL,
  from_lsn varchar(40) NULL,
  to_lsn varchar(40) NULL,
  duration_ms bigint NULL,
  detail nvarchar(4000) NULL,
  PRIMARY KEY (logged_at, id)
)`;
}

/** One row; parameters are named after LOG_COLUMNS (@table_name, @event, …). */
export function insertLogSql(schema: string): string {
  return `INSERT INTO ${tableRef(schema, LOG_TABLE)} (${LOG_COLUMNS.map(q).join(', ')}) VALUES (${LOG_COLUMNS.map((c) => `@${c}`).join(', ')})`;
}

/** Per table, the newest sync row of the last day (the log's clustered key starts with logged_at: a range scan). */
export function lastCyclesSql(schema: string): string {
  return `SELECT table_name, inserts, updates, deletes, logged_at FROM (
  SELECT table_name, inserts, updates, deletes, logged_at, ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY logged_at DESC, id DESC) AS newest
  FROM ${tableRef(schema, LOG_TABLE)}
  WHERE logged_at > DATEADD(day, -1, SYSUTCDATETIME()) AND event = 'sync'
) AS cycles WHERE newest = 1`;
}

/** @seconds: the retention (DATEADD takes an int: seconds reach 68 years, milliseconds only 24 days); older rows go. */
export function pruneLogSql(schema: string): string {
  return `DELETE FROM ${tableRef(schema, LOG_TABLE)} WHERE logged_at < DATEADD(second, -@seconds, SYSUTCDATETIME())`;
}

/** One epoch per writer scope (the sync session, each table's population); @fence: its quoted two-part name. */
export function ensureFenceTableSql(schema: string): string {
  return `IF OBJECT_ID(@fence, N'U') IS NULL
CREATE TABLE ${tableRef(schema, FENCE_TABLE)} (
  scope nvarchar(450) NOT NULL PRIMARY KEY,
  epoch bigint NOT NULL,
  holder nvarchar(400) NULL,
  taken_at datetime2(3) NOT NULL
)`;
}

/** A new epoch for @scope, claimed by @holder (the caller holds the schema's app lock, so the insert cannot race). */
export function takeFenceSql(schema: string): string {
  const t = tableRef(schema, FENCE_TABLE);
  return `UPDATE ${t} SET epoch = epoch + 1, holder = @holder, taken_at = SYSUTCDATETIME()
  OUTPUT CONVERT(varchar(20), inserted.epoch) AS epoch WHERE scope = @scope;
IF @@ROWCOUNT = 0 INSERT INTO ${t} (scope, epoch, holder, taken_at)
  OUTPUT CONVERT(varchar(20), inserted.epoch) AS epoch VALUES (@scope, 1, @holder, SYSUTCDATETIME())`;
}

/** @scope's epoch, share-locked to the end of the transaction (a newer takeFence waits for this write). */
export function checkFenceSql(schema: string): string {
  return `SELECT CONVERT(varchar(20), epoch) AS epoch FROM ${tableRef(schema, FENCE_TABLE)} WITH (HOLDLOCK) WHERE scope = @scope`;
}

/** @table's LSN, update-locked to the end of the transaction (one writer per table at a time). */
export function lockStateRowSql(schema: string): string {
  return `SELECT lsn FROM ${tableRef(schema, STATE_TABLE)} WITH (UPDLOCK, HOLDLOCK) WHERE table_name = @table`;
}

/** Moves @table's LSN from @from to @lsn; `moved` is 0 when another writer moved it first. */
export function recordSyncSql(schema: string): string {
  return `UPDATE ${tableRef(schema, STATE_TABLE)} SET lsn = @lsn, fingerprint = @fp, last_sync_at = SYSUTCDATETIME()
WHERE table_name = @table AND lsn = @from;
SELECT @@ROWCOUNT AS moved`;
}

/** Registers a table the mirror has just created (not populated yet: no LSN). */
export function registerTableSql(schema: string): string {
  const t = tableRef(schema, STATE_TABLE);
  return `DELETE FROM ${t} WHERE table_name = @table;
INSERT INTO ${t} (table_name) VALUES (@table)`;
}

/** A column was added in place: the rows already mirrored need its values. */
export function markBackfillSql(schema: string): string {
  return `UPDATE ${tableRef(schema, STATE_TABLE)} SET needs_backfill = 1 WHERE table_name = @table`;
}

/** Whether the state registers @table (the mirror owns its table) and whether it has a shadow marker. */
export function ownedSql(schema: string): string {
  return `SELECT CASE WHEN EXISTS (SELECT 1 FROM ${tableRef(schema, STATE_TABLE)} WHERE table_name = @table) THEN 1 ELSE 0 END AS live,
  CASE WHEN EXISTS (SELECT 1 FROM ${tableRef(schema, SHADOW_TABLE)} WHERE table_name = @table) THEN 1 ELSE 0 END AS shadow`;
}

/** Every table name the state or the shadow markers register. */
export function ownedTablesSql(schema: string): string {
  return `SELECT table_name FROM ${tableRef(schema, STATE_TABLE)} UNION SELECT table_name FROM ${tableRef(schema, SHADOW_TABLE)}`;
}

/** Rows in the shape of mirror-common.ts StateRow (times are UTC: SYSUTCDATETIME()). */
export function readStateSql(schema: string): string {
  return `SELECT table_name, lsn, schema_hash, fingerprint,
  CONVERT(varchar(30), populated_at, 126) + 'Z' AS populated_at, CONVERT(varchar(30), last_sync_at, 126) + 'Z' AS last_sync_at,
  CONVERT(varchar(20), row_count) AS row_count, CAST(needs_backfill AS int) AS needs_backfill
FROM ${tableRef(schema, STATE_TABLE)} ORDER BY table_name`;
}

export type StateColumn = 'lsn' | 'schema_hash' | 'fingerprint' | 'populated_at' | 'last_sync_at' | 'row_count' | 'needs_backfill';

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

/** Records the schema hash of a table that has a state row (none means: not populated yet). @table, @hash. */
export function setSchemaHashSql(schema: string): string {
  return `UPDATE ${tableRef(schema, STATE_TABLE)} SET schema_hash = @hash WHERE table_name = @table`;
}

export function deleteStateSql(schema: string): string {
  return `DELETE FROM ${tableRef(schema, STATE_TABLE)} WHERE table_name = @table`;
}


function columnDef(c: { name: string; type: LogicalType }, nullable: boolean, declaration = logicalToMssqlType(c.type), collation?: string): string {
  const collate = collation === undefined ? '' : ` COLLATE ${collation}`;
  return `${q(c.name)} ${declaration}${collate} ${nullable ? 'NULL' : 'NOT NULL'}`;
}

/**
 * The mirror table. Key columns are bounded and string keys binary-collated (mirror-keys.ts). Its primary key
 * constraint is left unnamed: the shadow and the live table both carry one, and constraint names are unique per
 * schema.
 */
export function createTableSql(schema: string, name: string, table: TableSchema): string {
  const plan = keyPlan(table);
  const declarations = mirrorDeclarations(table, plan);
  const keys = new Map(plan.columns.map((k) => [k.index, k]));
  const cols = table.columns.map((c, i) => {
    const key = keys.get(i);
    return columnDef(c, c.nullable && !key, declarations[i], key?.collated ? KEY_COLLATION : undefined);
  });
  if (table.primaryKey.length > 0) cols.push(`PRIMARY KEY (${table.primaryKey.map(q).join(', ')})`);
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


/**
 * A session temporary table of nvarchar(max) columns c0..cn (plus `op` for changes) that bulk loads land in before
 * a set-based, server-side conversion into the typed table. Positional names keep table and column names out of
 * the bulk-load statement, which the driver builds itself.
 *
 * COLLATE DATABASE_DEFAULT: a temporary table's columns otherwise take tempdb's collation (the server's), and a
 * mirror database with another collation then fails every comparison with error 468. It is also the collation the
 * driver declares for bulk-loaded strings (the connection's database collation). Key comparisons name the key
 * column's collation explicitly (deleteStagedKeysSql).
 */
export function createLoadTableSql(loadTable: string, columns: number, withOp: boolean): string {
  assertTempName(loadTable);
  const cols = Array.from({ length: columns }, (_, i) => `${q(`c${i}`)} nvarchar(max) COLLATE DATABASE_DEFAULT NULL`);
  if (withOp) cols.unshift('[op] nchar(1) COLLATE DATABASE_DEFAULT NOT NULL');
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

/**
 * Deletes every staged key (deletes, and the old version of upserts, re-inserted right after). A string key is
 * compared in the key column's own collation, named explicitly: the staged column's is the database default. `=`
 * ignores trailing spaces under every collation, so a variable-length string key is also compared by DATALENGTH:
 * staging 'x ' must not delete the row 'x' (its insert then fails as a duplicate key, reported as such, instead of
 * silently replacing another row).
 */
export function deleteStagedKeysSql(schema: string, target: string, table: TableSchema, loadTable: string, op?: 'U' | 'D'): string {
  assertTempName(loadTable);
  const match = keyPlan(table)
    .columns.map((k) => {
      const staged = fromTextExpr(table.columns[k.index]!.type, `l.${q(`c${k.index}`)}`);
      const column = `m.${q(k.name)}`;
      if (!k.collated) return `${column} = ${staged}`;
      const equal = `${column} = ${staged} COLLATE ${KEY_COLLATION}`;
      return k.declaration.startsWith('nvarchar(') ? `${equal} AND DATALENGTH(${column}) = DATALENGTH(${staged})` : equal;
    })
    .join(' AND ');
  // By operation (`op`), so that the counts tell deletes from the old versions of updated rows.
  const only = op === undefined ? '' : `l.[op] = N'${op}' AND `;
  return `DELETE m FROM ${tableRef(schema, target)} AS m\nWHERE EXISTS (SELECT 1 FROM ${loadTable} AS l WHERE ${only}${match})`;
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

export function readMarkersSql(schema: string): string {
  return `SELECT table_name, marker FROM ${tableRef(schema, SHADOW_TABLE)}`;
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

/** How long any statement of the connection waits for a lock before failing with error 1222 (MirrorBusy). */
export function lockTimeoutSql(ms: number): string {
  return `SET LOCK_TIMEOUT ${Math.max(1, Math.round(ms))}`;
}

/**
 * Serializes the mirror's DDL per schema or table across workers, released with the transaction
 * (sp_getapplock; a result below 0 means the lock was not granted).
 */
export const APP_LOCK_SQL = `DECLARE @r int;
EXEC @r = sys.sp_getapplock @Resource = @lock, @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 60000;
IF @r < 0 THROW 51000, N'could not take the mirror lock', 1;`;

/** ALTER statements for compatible changes; a widened column keeps its nullability unless it also dropped NOT NULL. */
export function alterStatements(schemaName: string, table: string, schema: TableSchema, changes: SchemaChange[]): string[] {
  const out: string[] = [];
  const nullable = new Set(changes.filter((c) => c.kind === 'dropNotNull').map((c) => (c as { column: string }).column));
  const widened = new Set<string>();
  for (const c of changes) {
    if (c.kind === 'addColumn') out.push(addColumnSql(schemaName, table, c.column));
    else if (c.kind === 'dropColumn') out.push(dropColumnSql(schemaName, table, c.column));
    else if (c.kind === 'widenType') {
      const col = schema.columns.find((x) => x.name === c.column)!;
      widened.add(c.column);
      out.push(alterColumnSql(schemaName, table, c.column, col.type, nullable.has(c.column) || col.nullable));
    }
  }
  for (const name of nullable) {
    if (widened.has(name)) continue;
    const col = schema.columns.find((x) => x.name === name)!;
    out.push(alterColumnSql(schemaName, table, name, col.type, true));
  }
  return out;
}

// ---- the partner's indexes and permissions on a mirror table, carried over to a new population ----

/**
 * @live (quoted two-part name): every index that is not the primary key nor behind a unique constraint, one row per
 * column, keys in key order then included columns.
 */
export const PARTNER_INDEXES_SQL = `SELECT i.name AS index_name, i.type AS index_type, i.type_desc, i.is_unique, i.filter_definition,
  c.name AS column_name, ic.key_ordinal, ic.is_included_column, ic.is_descending_key
FROM sys.indexes AS i
LEFT JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
LEFT JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = OBJECT_ID(@live) AND i.index_id > 0 AND i.is_primary_key = 0 AND i.is_unique_constraint = 0 AND i.is_hypothetical = 0
ORDER BY i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id`;

/** @live: permissions granted or denied on the table and its columns to others than the mirror's own user. */
export const PARTNER_PERMISSIONS_SQL = `SELECT p.state_desc AS state, p.permission_name, USER_NAME(p.grantee_principal_id) AS grantee,
  COL_NAME(p.major_id, p.minor_id) AS column_name
FROM sys.database_permissions AS p
WHERE p.class = 1 AND p.major_id = OBJECT_ID(@live) AND p.grantee_principal_id <> DATABASE_PRINCIPAL_ID()
ORDER BY p.grantee_principal_id, p.permission_name, p.minor_id`;

export interface PartnerIndexColumn {
  index_name: string;
  index_type: number;
  type_desc: string;
  is_unique: boolean;
  filter_definition: string | null;
  column_name: string | null;
  key_ordinal: number | null;
  is_included_column: boolean | null;
  is_descending_key: boolean | null;
}

export interface PartnerIndex {
  name: string;
  clustered: boolean;
  unique: boolean;
  keys: { column: string; descending: boolean }[];
  included: string[];
  filter: string | null;
}

/**
 * The catalog's rows grouped into indexes; an index of a kind the mirror cannot rebuild (columnstore, XML, spatial,
 * full-text's own) is returned by name in `unsupported`.
 */
export function partnerIndexes(rows: PartnerIndexColumn[]): { indexes: PartnerIndex[]; unsupported: string[] } {
  const byName = new Map<string, PartnerIndex>();
  const unsupported = new Set<string>();
  for (const r of rows) {
    if (r.index_type !== 1 && r.index_type !== 2) {
      unsupported.add(`${r.index_name} (${r.type_desc.toLowerCase()})`);
      continue;
    }
    let index = byName.get(r.index_name);
    if (!index) {
      index = { name: r.index_name, clustered: r.index_type === 1, unique: r.is_unique, keys: [], included: [], filter: r.filter_definition };
      byName.set(r.index_name, index);
    }
    if (r.column_name === null) continue;
    if (r.is_included_column) index.included.push(r.column_name);
    else if ((r.key_ordinal ?? 0) > 0) index.keys.push({ column: r.column_name, descending: r.is_descending_key === true });
  }
  return { indexes: [...byName.values()].filter((i) => i.keys.length > 0), unsupported: [...unsupported] };
}

/**
 * The index rebuilt on another table (the shadow): index names are per table in SQL Server, so it keeps its name.
 * The filter is the catalog's own text of the partner's predicate.
 */
export function createIndexSql(schema: string, table: string, index: PartnerIndex): string {
  const keys = index.keys.map((k) => `${q(k.column)} ${k.descending ? 'DESC' : 'ASC'}`).join(', ');
  const include = index.included.length ? ` INCLUDE (${index.included.map(q).join(', ')})` : '';
  const where = index.filter ? ` WHERE ${index.filter}` : '';
  return `CREATE ${index.unique ? 'UNIQUE ' : ''}${index.clustered ? 'CLUSTERED' : 'NONCLUSTERED'} INDEX ${q(index.name)} ON ${tableRef(schema, table)} (${keys})${include}${where}`;
}

export interface PartnerPermission {
  state: string;
  permission_name: string;
  grantee: string;
  column_name: string | null;
}

/** GRANT (WITH GRANT OPTION) or DENY of one catalog permission, on another table (the shadow). */
export function permissionSql(schema: string, table: string, p: PartnerPermission): string {
  // Permission names and states come from the catalog's fixed vocabulary: checked, since they are not quoted.
  if (!/^[A-Z][A-Z ]*$/.test(p.permission_name)) throw new Error(`unexpected permission name ${JSON.stringify(p.permission_name)}`);
  const verb = p.state === 'DENY' ? 'DENY' : p.state === 'GRANT' || p.state === 'GRANT_WITH_GRANT_OPTION' ? 'GRANT' : null;
  if (verb === null) throw new Error(`unexpected permission state ${JSON.stringify(p.state)}`);
  const column = p.column_name === null ? '' : ` (${q(p.column_name)})`;
  const option = p.state === 'GRANT_WITH_GRANT_OPTION' ? ' WITH GRANT OPTION' : '';
  return `${verb} ${p.permission_name} ON ${tableRef(schema, table)}${column} TO ${q(p.grantee)}${option}`;
}
