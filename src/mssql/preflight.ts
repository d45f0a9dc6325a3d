/**
 * Read-only preflight checks of a SQL Server side (tenant-mirror check): catalog views and HAS_PERMS_BY_NAME only,
 * never a statement that changes anything.
 *
 * Source: Change Tracking on the database (or the right to turn it on), its retention, snapshot isolation (or the
 * right to allow it), and per table SELECT, VIEW CHANGE TRACKING, and tracking on the table (or ALTER to enable it).
 * Each blocker names the statement a DBA can run once instead (the same ones tracking.ts would run).
 *
 * Mirror: the schema and its owner, CREATE TABLE and ALTER on the schema, snapshot isolation (for verify's
 * consistent reads), what `_mirror_state` registers, and partner tables whose names the tenant's tables would take
 * (names compared without case, as the mirror's default collation does).
 */
import sql from 'mssql';
import type { Finding, PreflightTables, TableSchema } from '../core/types';
import * as mirrorSql from './mirror-sql';
import { allowSnapshotIsolationSql, enableDatabaseTrackingSql, enableTableTrackingSql, retentionFor, retentionMinutes, retentionWarning } from './tracking';
import { q, tableRef } from './tsql';

/** The server, the login, the database's tracking and snapshot isolation, and the right to change them. */
export const SOURCE_FACTS_SQL = `SELECT CONVERT(nvarchar(128), SERVERPROPERTY('ProductVersion')) AS version,
  DB_NAME() AS database_name, SUSER_SNAME() AS login_name, USER_NAME() AS user_name,
  ctd.retention_period, ctd.retention_period_units, d.snapshot_isolation_state,
  CONVERT(varchar(20), CHANGE_TRACKING_CURRENT_VERSION()) AS current_version,
  HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'ALTER') AS may_alter_database
FROM sys.databases AS d
LEFT JOIN sys.change_tracking_databases AS ctd ON ctd.database_id = d.database_id
WHERE d.database_id = DB_ID()`;

/** @object: SELECT, VIEW CHANGE TRACKING and ALTER on the table, and whether it is tracked already. */
export const SOURCE_TABLE_RIGHTS_SQL = `SELECT HAS_PERMS_BY_NAME(@object, N'OBJECT', N'SELECT') AS may_select,
  HAS_PERMS_BY_NAME(@object, N'OBJECT', N'VIEW CHANGE TRACKING') AS may_view_tracking,
  HAS_PERMS_BY_NAME(@object, N'OBJECT', N'ALTER') AS may_alter,
  CASE WHEN EXISTS (SELECT 1 FROM sys.change_tracking_tables AS ctt WHERE ctt.object_id = OBJECT_ID(@object))
    OR CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object)) IS NOT NULL THEN 1 ELSE 0 END AS tracked`;

/** @schema: whether it exists, its owner, the rights the mirror needs, and the database's snapshot isolation. */
export const MIRROR_FACTS_SQL = `SELECT CONVERT(nvarchar(128), SERVERPROPERTY('ProductVersion')) AS version,
  DB_NAME() AS database_name, USER_NAME() AS user_name,
  (SELECT USER_NAME(s.principal_id) FROM sys.schemas AS s WHERE s.name = @schema) AS schema_owner,
  CASE WHEN SCHEMA_ID(@schema) IS NULL THEN 0 ELSE 1 END AS schema_exists,
  HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE SCHEMA') AS may_create_schema,
  HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE') AS may_create_table,
  HAS_PERMS_BY_NAME(@schema, N'SCHEMA', N'ALTER') AS may_alter_schema,
  d.snapshot_isolation_state
FROM sys.databases AS d WHERE d.database_id = DB_ID()`;

/** @schema: its tables. */
export const MIRROR_TABLES_SQL = `SELECT t.name FROM sys.tables AS t WHERE t.schema_id = SCHEMA_ID(@schema) ORDER BY t.name`;

interface SourceFacts {
  version: string | null;
  database_name: string;
  login_name: string | null;
  user_name: string | null;
  retention_period: number | null;
  retention_period_units: number | null;
  snapshot_isolation_state: number;
  current_version: string | null;
  may_alter_database: number | null;
}

interface TableRights {
  may_select: number | null;
  may_view_tracking: number | null;
  may_alter: number | null;
  tracked: number;
}

const tableSubject = (t: TableSchema): string => `table ${t.name}`;

export async function sourcePreflight(pool: sql.ConnectionPool, plan: PreflightTables): Promise<Finding[]> {
  const f = (await pool.request().query<SourceFacts>(SOURCE_FACTS_SQL)).recordset[0];
  if (!f) throw new Error('the current database is not in sys.databases');
  const findings: Finding[] = [
    { level: 'ok', subject: 'source', message: `SQL Server ${f.version ?? '?'}, database ${q(f.database_name)}, login ${q(f.login_name ?? '?')} (user ${q(f.user_name ?? '?')})` },
  ];
  const mayAlter = f.may_alter_database === 1;
  const want = retentionFor(plan.retentionMs);
  const tracked = plan.tables.filter((t) => t.primaryKey.length > 0);
  if (tracked.length) {
    if (f.current_version !== null) {
      const short = f.retention_period !== null ? retentionWarning(f.database_name, retentionMinutes(f.retention_period, f.retention_period_units ?? 1), want) : null;
      findings.push(short ? { level: 'warn', subject: 'source', message: short } : { level: 'ok', subject: 'source', message: 'change tracking is on for the database' });
    } else {
      findings.push(
        mayAlter
          ? { level: 'ok', subject: 'source', message: 'change tracking is off for the database: it will be turned on at the first start' }
          : { level: 'blocker', subject: 'source', message: `change tracking is off for the database and the login may not turn it on (ALTER on the database): a DBA can run ${enableDatabaseTrackingSql(f.database_name, want)}` },
      );
    }
  }
  if (f.snapshot_isolation_state === 1) findings.push({ level: 'ok', subject: 'source', message: 'snapshot isolation is allowed' });
  else if (mayAlter) findings.push({ level: 'ok', subject: 'source', message: 'snapshot isolation is not allowed yet: it will be allowed at the first start' });
  else {
    findings.push({
      level: 'blocker',
      subject: 'source',
      message: `snapshot isolation is not allowed (sys.databases.snapshot_isolation_state ${f.snapshot_isolation_state}) and the login may not allow it: a DBA can run ${allowSnapshotIsolationSql(f.database_name)}`,
    });
  }
  const grantee = q(f.user_name ?? '<the source login’s user>');
  for (const table of plan.tables) {
    const object = tableRef(table.source.schema, table.source.table);
    const r = (await pool.request().input('object', sql.NVarChar(4000), object).query<TableRights>(SOURCE_TABLE_RIGHTS_SQL)).recordset[0];
    findings.push(tableRightsFinding(table, object, r, grantee));
  }
  return findings;
}

function tableRightsFinding(table: TableSchema, object: string, r: TableRights | undefined, grantee: string): Finding {
  const subject = tableSubject(table);
  const missing: string[] = [];
  if (r?.may_select !== 1) missing.push(`GRANT SELECT ON ${object} TO ${grantee}`);
  if (table.primaryKey.length === 0) {
    return missing.length ? { level: 'blocker', subject, message: `the login may not read it: ${missing.join('; ')}` } : { level: 'ok', subject, message: 'readable' };
  }
  if (r?.may_view_tracking !== 1) missing.push(`GRANT VIEW CHANGE TRACKING ON ${object} TO ${grantee}`);
  const tracked = r?.tracked === 1;
  if (!tracked && r?.may_alter !== 1) missing.push(`${enableTableTrackingSql(table.source.schema, table.source.table)} (or GRANT ALTER ON ${object} TO ${grantee})`);
  if (missing.length) return { level: 'blocker', subject, message: `the login lacks what tracking needs; a DBA can run: ${missing.join('; ')}` };
  return { level: 'ok', subject, message: tracked ? 'change tracking is on for the table' : 'change tracking will be enabled on the table' };
}

interface MirrorFacts {
  version: string | null;
  database_name: string;
  user_name: string | null;
  schema_owner: string | null;
  schema_exists: number;
  may_create_schema: number | null;
  may_create_table: number | null;
  may_alter_schema: number | null;
  snapshot_isolation_state: number;
}

export async function mirrorPreflight(pool: sql.ConnectionPool, schema: string, plan: PreflightTables): Promise<Finding[]> {
  const f = (await pool.request().input('schema', sql.NVarChar(128), schema).query<MirrorFacts>(MIRROR_FACTS_SQL)).recordset[0];
  if (!f) throw new Error('the current database is not in sys.databases');
  const user = q(f.user_name ?? '?');
  const findings: Finding[] = [{ level: 'ok', subject: 'mirror', message: `SQL Server ${f.version ?? '?'}, database ${q(f.database_name)}, user ${user}` }];
  const name = q(schema);
  if (f.schema_exists !== 1) {
    findings.push(
      f.may_create_schema === 1 && f.may_create_table === 1
        ? { level: 'ok', subject: 'mirror', message: `schema ${name} will be created at the first start` }
        : { level: 'blocker', subject: 'mirror', message: `schema ${name} does not exist and user ${user} may not create it and its tables: GRANT CREATE SCHEMA, CREATE TABLE TO ${user}, or create the schema for it` },
    );
  } else {
    findings.push(
      f.may_create_table === 1 && f.may_alter_schema === 1
        ? { level: 'ok', subject: 'mirror', message: `schema ${name} exists (owner ${q(f.schema_owner ?? '?')}); user ${user} may create tables in it` }
        : { level: 'blocker', subject: 'mirror', message: `user ${user} may not create tables in schema ${name} (owner ${q(f.schema_owner ?? '?')}): GRANT CREATE TABLE TO ${user}; GRANT ALTER ON SCHEMA::${name} TO ${user}` },
    );
  }
  findings.push(
    f.snapshot_isolation_state === 1
      ? { level: 'ok', subject: 'mirror', message: 'snapshot isolation is allowed: verify reads each table in one snapshot' }
      : { level: 'warn', subject: 'mirror', message: `snapshot isolation is not allowed: verify reads under READ COMMITTED and retries a table whose mirror moves meanwhile (${allowSnapshotIsolationSql(f.database_name)} allows it)` },
  );
  const existing = f.schema_exists === 1 ? (await pool.request().input('schema', sql.NVarChar(128), schema).query<{ name: string }>(MIRROR_TABLES_SQL)).recordset.map((r) => r.name) : [];
  const byKey = new Map(existing.map((n) => [n.toLowerCase(), n]));
  const registered = new Set<string>();
  if (byKey.has(mirrorSql.STATE_TABLE.toLowerCase())) {
    for (const r of (await pool.request().query<{ table_name: string }>(mirrorSql.ownedTablesSql(schema))).recordset) {
      for (const rel of relationsOf(r.table_name)) registered.add(rel.toLowerCase());
    }
  }
  const taken = new Set<string>();
  for (const table of plan.tables) {
    const key = mirrorSql.mirrorRelation(table.name).toLowerCase();
    taken.add(key);
    const found = byKey.get(key);
    const subject = tableSubject(table);
    if (found === undefined) findings.push({ level: 'ok', subject, message: 'its mirror table will be created' });
    else if (registered.has(key)) findings.push({ level: 'ok', subject, message: 'its mirror table exists and is registered in _mirror_state' });
    else {
      findings.push({
        level: 'blocker',
        subject,
        message: `a table named ${JSON.stringify(found)} already exists in the mirror schema and was not created by tenant-mirror (the partner's): this table fails until it is renamed, or the source table excluded`,
      });
    }
  }
  const own = new Set([mirrorSql.STATE_TABLE, mirrorSql.SHADOW_TABLE, mirrorSql.FENCE_TABLE, mirrorSql.LOG_TABLE].map((n) => n.toLowerCase()));
  const partners = existing.filter((n) => !own.has(n.toLowerCase()) && !registered.has(n.toLowerCase()) && !taken.has(n.toLowerCase()));
  if (partners.length) {
    findings.push({ level: 'ok', subject: 'mirror', message: `${partners.length} table(s) of the partner's own in schema ${name} are left alone: ${partners.slice(0, 5).map((n) => JSON.stringify(n)).join(', ')}${partners.length > 5 ? ', …' : ''}` });
  }
  return findings;
}

/** The relations the mirror owns for a registered table: its table and its shadow (none for a reserved name). */
function relationsOf(table: string): string[] {
  try {
    return [mirrorSql.mirrorRelation(table), mirrorSql.shadowRelation(table)];
  } catch {
    return [];
  }
}
