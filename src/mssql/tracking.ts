/**
 * SQL Server Change Tracking set-up for one table: the database option (with a retention at least the
 * tenant's), SNAPSHOT isolation for consistent reads, and tracking on the table. Idempotent, and safe against a
 * concurrent enable by another worker. SQL Server cleans up by itself (AUTO_CLEANUP = ON, set when tracking is
 * enabled); min valid versions follow.
 */
import sql from 'mssql';
import { FailureType, MirrorError } from '../core/errors';
import type { TableSchema } from '../core/types';
import { mirrorName } from './catalog';
import { errorNumber } from './connection';
import { RESET_ISOLATION_SQL } from './snapshot';
import { q, tableRef } from './tsql';

/**
 * Database-level facts for enabling tracking: the database name (ALTER DATABASE takes no parameter), whether
 * change tracking is on and its retention (sys.change_tracking_databases: retention_period_units 1 = MINUTES,
 * 2 = HOURS, 3 = DAYS), and sys.databases.snapshot_isolation_state (0 OFF, 1 ON, 2 going off, 3 going on).
 * CHANGE_TRACKING_CURRENT_VERSION() is NULL only when tracking is off: it tells "on" even to a login the catalog
 * view shows no row.
 */
export const DATABASE_TRACKING_STATE_SQL = `SELECT DB_NAME() AS database_name,
  ctd.retention_period, ctd.retention_period_units, d.snapshot_isolation_state,
  CONVERT(varchar(20), CHANGE_TRACKING_CURRENT_VERSION()) AS current_version
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

/**
 * Whether the table is tracked: by the catalog, or (for a login the catalog shows no row) by its min valid version,
 * which VIEW CHANGE TRACKING lets it read.
 */
export const TABLE_TRACKED_SQL = `SELECT CASE WHEN EXISTS (SELECT 1 FROM sys.change_tracking_tables AS ctt WHERE ctt.object_id = OBJECT_ID(@object))
  OR CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object)) IS NOT NULL THEN 1 ELSE 0 END AS tracked`;

/** Net changes are enough: the row itself is read from the table, so per-column tracking would only cost. */
export function enableTableTrackingSql(schema: string, table: string): string {
  return `ALTER TABLE ${tableRef(schema, table)} ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF)`;
}

/** SQL Server error numbers: tracking already enabled on the table / on the database (a concurrent enable). */
const ALREADY_TRACKED_TABLE = 4996;
const ALREADY_TRACKED_DATABASE = 5088;

interface DbState {
  database_name: string;
  retention_period: number | null;
  retention_period_units: number | null;
  snapshot_isolation_state: number;
  current_version: string | null;
}

export interface TrackingOutcome {
  /** Tracking was enabled on the table now. */
  enabled: boolean;
  /** Something an operator should know that does not stop mirroring (the adapter has no logger). */
  warning: string | null;
}

export interface SnapshotWait {
  /** How long to wait for ALLOW_SNAPSHOT_ISOLATION to go from "going on" to "on" before failing retryably. */
  timeoutMs: number;
  pollMs: number;
}

const SNAPSHOT_WAIT: SnapshotWait = { timeoutMs: 10_000, pollMs: 500 };

/**
 * Makes the table tracked, changing database options only where tracking cannot work without it: a least-privilege
 * login (SELECT and VIEW CHANGE TRACKING) cannot run ALTER DATABASE, and need not when a DBA has set things up.
 */
export async function enableTracking(
  p: sql.ConnectionPool,
  table: TableSchema,
  retentionMs: number,
  wait: SnapshotWait = SNAPSHOT_WAIT,
): Promise<TrackingOutcome> {
  const want = retentionFor(retentionMs);
  const db = await readDbState(p);
  // DDL must not run under a SNAPSHOT isolation level a pooled connection might still carry.
  const ddl = (text: string): Promise<unknown> => p.request().batch(`${RESET_ISOLATION_SQL};\n${text}`).catch((err: unknown) => {
    throw permissionError(err, text) ?? err;
  });
  let warning: string | null = null;
  if (db.retention_period !== null) {
    warning = retentionWarning(db.database_name, retentionMinutes(db.retention_period, db.retention_period_units ?? 1), want);
  } else if (db.current_version === null) {
    await ignoreNumber(ddl(enableDatabaseTrackingSql(db.database_name, want)), ALREADY_TRACKED_DATABASE);
  }
  if (db.snapshot_isolation_state === 0 || db.snapshot_isolation_state === 2) await ddl(allowSnapshotIsolationSql(db.database_name));
  if (db.snapshot_isolation_state !== 1) await waitForSnapshotIsolation(p, wait);
  const object = tableRef(table.source.schema, table.source.table);
  const tracked = await p.request().input('object', sql.NVarChar(4000), object).query<{ tracked: number }>(TABLE_TRACKED_SQL);
  if (tracked.recordset[0]?.tracked === 1) return { enabled: false, warning };
  const enabled = await ignoreNumber(ddl(enableTableTrackingSql(table.source.schema, table.source.table)).then(() => true), ALREADY_TRACKED_TABLE, false);
  return { enabled: enabled ?? false, warning };
}

async function readDbState(p: sql.ConnectionPool): Promise<DbState> {
  const db = (await p.request().query<DbState>(DATABASE_TRACKING_STATE_SQL)).recordset[0];
  if (!db) throw new MirrorError(FailureType.BadConfig, 'current database not found in sys.databases');
  return db;
}

/**
 * A database that already tracks changes keeps its retention, even a shorter one: raising it is a database-wide
 * decision (and needs ALTER on the database). A shorter retention is safe, only costlier: changes older than it are
 * cleaned up, min valid versions rise, and a mirror that did not sync for that long is repopulated.
 */
export function retentionWarning(database: string, haveMinutes: number, want: Retention): string | null {
  const wantMinutes = retentionMinutes(want.amount, want.unit === 'DAYS' ? 3 : want.unit === 'HOURS' ? 2 : 1);
  if (haveMinutes >= wantMinutes) return null;
  return `change tracking retention of database ${q(database)} is ${haveMinutes} minutes, shorter than the tenant's ${wantMinutes}: a mirror that does not sync within ${haveMinutes} minutes is repopulated; to raise it a DBA can run ${setRetentionSql(database, want)}`;
}

/**
 * ALLOW_SNAPSHOT_ISOLATION set ON stays "going on" (3) until the update transactions open at the time have ended;
 * a SNAPSHOT transaction started before it is "on" (1) fails. Waits a little, then fails retryably.
 */
async function waitForSnapshotIsolation(p: sql.ConnectionPool, wait: SnapshotWait): Promise<void> {
  const deadline = Date.now() + wait.timeoutMs;
  for (;;) {
    const state = (await readDbState(p)).snapshot_isolation_state;
    if (state === 1) return;
    if (Date.now() >= deadline) {
      throw new MirrorError(
        FailureType.SourceReadFailed,
        `snapshot isolation is not on yet (sys.databases.snapshot_isolation_state ${state}; 3 waits for transactions that were open when it was allowed to end)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, wait.pollMs));
  }
}

/** SQL Server error numbers that mean "this login may not" (or, hiding it, "no such object") for our DDL. */
const PERMISSION_DENIED = new Set([229, 297, 1088, 4902, 5011, 15151, 15247]);

/** A denied DDL names the statement (identifiers only) a DBA can run once instead. */
function permissionError(err: unknown, statement: string): MirrorError | null {
  const n = errorNumber(err);
  if (n === undefined || !PERMISSION_DENIED.has(n)) return null;
  return new MirrorError(
    FailureType.AuthFailed,
    `the source login may not set up change tracking (SQL Server error ${n}); a DBA can run once: ${statement}`,
    {},
    { cause: err },
  );
}

/** Tables with Change Tracking on, by schema and name. */
export const TRACKED_TABLES_SQL = `SELECT s.name AS schema_name, t.name AS table_name
FROM sys.change_tracking_tables AS ctt
JOIN sys.tables AS t ON t.object_id = ctt.object_id
JOIN sys.schemas AS s ON s.schema_id = t.schema_id`;

export function disableTableTrackingSql(schema: string, table: string): string {
  return `ALTER TABLE ${tableRef(schema, table)} DISABLE CHANGE_TRACKING`;
}

/** Turns Change Tracking off on every tracked table `select` names; returns their names. The database option stays (other users may rely on it). */
export async function untrack(p: sql.ConnectionPool, select: (name: string) => boolean): Promise<string[]> {
  const tracked = (await p.request().query<{ schema_name: string; table_name: string }>(TRACKED_TABLES_SQL)).recordset;
  const removed: string[] = [];
  for (const t of tracked) {
    const name = mirrorName(t.schema_name, t.table_name);
    if (!select(name)) continue;
    await p.request().batch(`${RESET_ISOLATION_SQL};\n${disableTableTrackingSql(t.schema_name, t.table_name)}`);
    removed.push(name);
  }
  return removed;
}

async function ignoreNumber<T>(p: Promise<T>, number: number, fallback?: T): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (errorNumber(err) === number) return fallback;
    throw err;
  }
}
