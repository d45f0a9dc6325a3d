/**
 * Change tracking for a PostgreSQL source, modelled on SQL Server's: per tracked table, a side table of changed
 * keys stamped with the writing transaction's id (`pg_current_xact_id()`), filled by triggers, and a min valid
 * version below which changes are gone. Everything lives in the schema `tenant_mirror_ct` of the source
 * database:
 *
 * - `meta`: one row, the tracking epoch (a fresh one whenever the schema is recreated: part of the fingerprint,
 *   so a mirror fed by an earlier installation repopulates);
 * - `tracked`: one row per tracked table (side table name, key columns, min valid version, retention);
 * - one side table per tracked table: key columns `k1..kn` (positional, so no key column name can collide with
 *   `op`/`xid`/`recorded_at`), the operation (a hint only), the xid and the time.
 *
 * Versions are xid8 values (64-bit, never wrap) handled as decimal strings.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { TableSchema, Version } from '../core/types';
import { fitPgIdentifier, literalPg, quotePg } from '../core/identifiers';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import { TRACKING_SCHEMA, readNativeKey, type NativeKeyColumn, type Queryable } from './catalog';
import { withClient, withTransaction } from './connection';

export const ROW_TRIGGER = 'tenant_mirror_ct_row';
export const TRUNCATE_TRIGGER = 'tenant_mirror_ct_truncate';

const S = quotePg(TRACKING_SCHEMA);

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/**
 * The side table's name (also the trigger function's): readable, under 63 bytes, distinct per table. `schema.table`
 * is only ambiguous when a part contains a dot, and then a hash of the exact pair is added.
 */
export function sideTableName(schema: string, table: string): string {
  const readable = `${schema}.${table}`;
  const name = schema.includes('.') || table.includes('.') ? `${readable}_${sha1(`${schema}\u0000${table}`).slice(0, 8)}` : readable;
  return fitPgIdentifier(name, sha1);
}

export function qualifiedTable(table: TableSchema): string {
  return `${quotePg(table.source.schema)}.${quotePg(table.source.table)}`;
}

export function qualifiedSide(side: string): string {
  return `${S}.${quotePg(side)}`;
}

/** Positional side-table column for the i-th key column (0-based). */
export function sideKeyColumn(i: number): string {
  return quotePg(`k${i + 1}`);
}

/** The tracking schema, the epoch row and the registry of tracked tables. Idempotent. */
export function trackingSchemaSql(): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${S}`,
    `CREATE TABLE IF NOT EXISTS ${S}.meta (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       epoch uuid NOT NULL DEFAULT gen_random_uuid(),
       created_at timestamptz NOT NULL DEFAULT now())`,
    `INSERT INTO ${S}.meta DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING`,
    `CREATE TABLE IF NOT EXISTS ${S}.tracked (
       table_schema text NOT NULL,
       table_name text NOT NULL,
       side_table text NOT NULL UNIQUE,
       key_columns text[] NOT NULL,
       min_valid_version xid8 NOT NULL,
       enabled_at timestamptz NOT NULL DEFAULT now(),
       retention interval NOT NULL,
       PRIMARY KEY (table_schema, table_name))`,
  ];
}

export function sideTableSql(side: string, key: NativeKeyColumn[]): string[] {
  const keyCols = key.map((c, i) => `${sideKeyColumn(i)} ${c.type}${c.collation ? ` COLLATE ${c.collation}` : ''} NOT NULL`);
  return [
    `CREATE TABLE ${qualifiedSide(side)} (
       ${keyCols.join(',\n       ')},
       op "char" NOT NULL,
       xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
       recorded_at timestamptz NOT NULL DEFAULT now())`,
    `CREATE INDEX ON ${qualifiedSide(side)} (xid)`,
  ];
}

/**
 * The per-table trigger function. SECURITY DEFINER because it runs inside the application's transactions, as
 * the application's role, which has no business holding rights on tenant_mirror_ct: it runs as the role that
 * installed tracking instead, with a pinned search_path so nothing the caller controls can redirect its names.
 * TRUNCATE fires no row triggers, so the same function raises the min valid version past the truncating
 * transaction: a mirror whose LSN is at or below it would miss the emptied rows, any later one has them.
 */
export function triggerFunctionSql(table: TableSchema, side: string): string {
  const target = qualifiedSide(side);
  const sideCols = table.primaryKey.map((_, i) => sideKeyColumn(i)).join(', ');
  const rec = (r: 'NEW' | 'OLD'): string => table.primaryKey.map((c) => `${r}.${quotePg(c)}`).join(', ');
  const insert = (values: string): string => `INSERT INTO ${target} (${sideCols}, op) VALUES ${values};`;
  const body = `
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${insert(`(${rec('NEW')}, 'I')`)}
  ELSIF TG_OP = 'UPDATE' THEN
    IF ROW(${rec('OLD')}) IS DISTINCT FROM ROW(${rec('NEW')}) THEN
      ${insert(`(${rec('OLD')}, 'D'), (${rec('NEW')}, 'I')`)}
    ELSE
      ${insert(`(${rec('NEW')}, 'U')`)}
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    ${insert(`(${rec('OLD')}, 'D')`)}
  ELSIF TG_OP = 'TRUNCATE' THEN
    UPDATE ${S}.tracked
       SET min_valid_version = greatest(min_valid_version, ${xidPlusOne('pg_current_xact_id()')})
     WHERE table_schema = ${literalPg(table.source.schema)} AND table_name = ${literalPg(table.source.table)};
  END IF;
  RETURN NULL;
END`;
  return `CREATE OR REPLACE FUNCTION ${target}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS ${literalPg(body)}`;
}

/** xid8 has no arithmetic; numeric does. */
function xidPlusOne(expr: string): string {
  return `((${expr})::text::numeric + 1)::text::xid8`;
}

/**
 * ENABLE ALWAYS: the triggers also fire with session_replication_role = replica (a logical replication apply
 * worker writing into this database, a restore with triggers "disabled" that way), or those writes would be lost.
 */
export function triggersSql(table: TableSchema, side: string): string[] {
  const t = qualifiedTable(table);
  const fn = `${qualifiedSide(side)}()`;
  return [
    `CREATE TRIGGER ${quotePg(ROW_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${quotePg(TRUNCATE_TRIGGER)} AFTER TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
    `ALTER TABLE ${t} ENABLE ALWAYS TRIGGER ${quotePg(ROW_TRIGGER)}, ENABLE ALWAYS TRIGGER ${quotePg(TRUNCATE_TRIGGER)}`,
  ];
}

/** Tracking state of one table as seen by `db` (a snapshot's client sees it as of its snapshot). */
export interface TrackingState {
  sideTable: string;
  keyColumns: string[];
  minValidVersion: Version;
  /** Side table, trigger function and both triggers exist and are enabled: writes are being recorded. */
  intact: boolean;
}

/**
 * Reads through plain catalog queries (not to_regclass) so that, inside a snapshot, the answer is the snapshot's.
 * Returns null when tracking was never installed or the table is not tracked.
 */
export async function readTrackingState(db: Queryable, table: TableSchema): Promise<TrackingState | null> {
  const installed = await db.query<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $1 AND c.relname = 'tracked') AS ok`,
    [TRACKING_SCHEMA],
  );
  if (!installed.rows[0]?.ok) return null;
  const { rows } = await db.query<{ side_table: string; key_columns: string[]; min_valid_version: string; intact: boolean }>(
    `SELECT tr.side_table, tr.key_columns, tr.min_valid_version::text AS min_valid_version,
            EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $3 AND c.relname = tr.side_table)
        AND (SELECT count(*) FROM pg_catalog.pg_trigger g
               JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid
               JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
              WHERE n.nspname = tr.table_schema AND c.relname = tr.table_name
                AND g.tgname IN ($4, $5) AND g.tgenabled = 'A'
                AND pn.nspname = $3 AND p.proname = tr.side_table) = 2 AS intact
     FROM ${S}.tracked tr
     WHERE tr.table_schema = $1 AND tr.table_name = $2`,
    [table.source.schema, table.source.table, TRACKING_SCHEMA, ROW_TRIGGER, TRUNCATE_TRIGGER],
  );
  const row = rows[0];
  if (!row) return null;
  return { sideTable: row.side_table, keyColumns: row.key_columns, minValidVersion: row.min_valid_version, intact: row.intact };
}

/** Tracking that records this table's writes under its current key; anything else needs (re)enabling. */
export function isUsable(state: TrackingState | null, table: TableSchema): state is TrackingState {
  return state !== null && state.intact && sameKey(state.keyColumns, table.primaryKey);
}

function sameKey(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

/** Installs the schema, epoch and registry once; concurrent installers are serialized by an advisory lock. */
async function ensureTrackingSchema(pool: Pool, ctx: ErrorContext): Promise<void> {
  const present = await withClient(
    pool,
    ctx,
    async (c) =>
      (
        await c.query<{ ok: boolean }>(
          `SELECT pg_catalog.to_regclass('${TRACKING_SCHEMA}.tracked') IS NOT NULL
              AND pg_catalog.to_regclass('${TRACKING_SCHEMA}.meta') IS NOT NULL AS ok`,
        )
      ).rows[0]?.ok === true,
    FailureType.SourceReadFailed,
  );
  if (present) return;
  await withTransaction(
    pool,
    ctx,
    async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext(${literalPg(TRACKING_SCHEMA)}))`);
      for (const sql of trackingSchemaSql()) await c.query(sql);
    },
    FailureType.SourceReadFailed,
  );
}

export interface EnableOptions {
  retentionMs: number;
  /** How long to wait for the table lock (writers queue behind the request meanwhile). */
  lockTimeoutMs: number;
}

/**
 * Installs (or repairs) tracking for one table. Returns false when it was already recording under the current
 * primary key — that path only reads, and takes no lock that could stall writers.
 *
 * Ordering against live writers: every INSERT/UPDATE/DELETE holds ROW EXCLUSIVE on the table until its
 * transaction ends, and SHARE ROW EXCLUSIVE (what CREATE TRIGGER needs, taken up front with LOCK TABLE) conflicts
 * with it. So when the lock is granted, every transaction that wrote the table without the trigger has ended,
 * and every later writer blocks until this transaction commits and then sees the triggers. This transaction gets
 * its xid E only after the lock (nothing before it writes), so E is above the xid of every untracked write.
 * min_valid_version = E + 1, not E: any version handed out before now is <= E (a horizon never passes a running
 * or unassigned xid), so every mirror LSN from before the (re)enable reads as expired, including one that equals
 * E on a quiet database — that mirror could have skipped untracked writes of a recreated table.
 * The lock wait is bounded by lock_timeout: while the request waits, new writers queue behind it.
 */
export async function enableTracking(pool: Pool, table: TableSchema, opts: EnableOptions, ctx: ErrorContext): Promise<boolean> {
  if (table.primaryKey.length === 0) {
    throw new MirrorError(FailureType.BadConfig, 'cannot track a table without a primary key', ctx);
  }
  await ensureTrackingSchema(pool, ctx);
  const retention = `make_interval(secs => ${Math.max(0, opts.retentionMs) / 1000})`;
  return withTransaction(
    pool,
    ctx,
    async (c) => {
      await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(opts.lockTimeoutMs))}`);
      await c.query(`SELECT pg_advisory_xact_lock(hashtext(${literalPg(TRACKING_SCHEMA)}), hashtext($1))`, [
        `${table.source.schema}.${table.source.table}`,
      ]);
      const state = await readTrackingState(c, table);
      if (isUsable(state, table)) {
        await c.query(
          `UPDATE ${S}.tracked SET retention = ${retention}
            WHERE table_schema = $1 AND table_name = $2 AND retention IS DISTINCT FROM ${retention}`,
          [table.source.schema, table.source.table],
        );
        return false;
      }
      await install(c, table, state, retention, ctx);
      return true;
    },
    FailureType.SourceReadFailed,
  );
}

async function install(c: PoolClient, table: TableSchema, previous: TrackingState | null, retention: string, ctx: ErrorContext): Promise<void> {
  const t = qualifiedTable(table);
  await c.query(`LOCK TABLE ${t} IN SHARE ROW EXCLUSIVE MODE`);
  const key = await readNativeKey(c, table);
  if (!sameKey(key.map((k) => k.name), table.primaryKey)) {
    throw new MirrorError(
      FailureType.SourceReadFailed,
      `primary key is now (${key.map((k) => k.name).join(', ')}), not (${table.primaryKey.join(', ')}): list tables again`,
      ctx,
    );
  }
  const xid = (await c.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid;
  if (xid === undefined) throw new MirrorError(FailureType.SourceReadFailed, 'no transaction id', ctx);

  const side = sideTableName(table.source.schema, table.source.table);
  await c.query(`DROP TRIGGER IF EXISTS ${quotePg(ROW_TRIGGER)} ON ${t}`);
  await c.query(`DROP TRIGGER IF EXISTS ${quotePg(TRUNCATE_TRIGGER)} ON ${t}`);
  for (const name of new Set([previous?.sideTable, side])) {
    if (name === undefined) continue;
    // The old entries belong to a previous incarnation of tracking; the raised min valid version disowns them.
    await c.query(`DROP TABLE IF EXISTS ${qualifiedSide(name)}`);
    await c.query(`DROP FUNCTION IF EXISTS ${qualifiedSide(name)}()`);
  }
  for (const sql of sideTableSql(side, key)) await c.query(sql);
  await c.query(triggerFunctionSql(table, side));
  for (const sql of triggersSql(table, side)) await c.query(sql);
  await c.query(
    `INSERT INTO ${S}.tracked (table_schema, table_name, side_table, key_columns, min_valid_version, enabled_at, retention)
     VALUES ($1, $2, $3, $4, ${xidPlusOne(`${literalPg(xid)}::xid8`)}, now(), ${retention})
     ON CONFLICT (table_schema, table_name) DO UPDATE
       SET side_table = EXCLUDED.side_table, key_columns = EXCLUDED.key_columns,
           min_valid_version = EXCLUDED.min_valid_version, enabled_at = EXCLUDED.enabled_at,
           retention = EXCLUDED.retention`,
    [table.source.schema, table.source.table, side, table.primaryKey],
  );
}

/**
 * Deletes side entries older than the retention, one transaction per table, raising the table's min valid
 * version past the newest deleted xid: a mirror at or below it would need one of them. Entries are ordered by
 * recorded_at (the writer's start time), not by xid, so some older xids may survive: harmless, they are below
 * the new min valid version and never read by a valid mirror.
 */
export async function cleanupTracking(pool: Pool, retentionMs: number, ctx: ErrorContext): Promise<void> {
  const tracked = await withClient(
    pool,
    ctx,
    async (c) => {
      const ok = (await c.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass('${TRACKING_SCHEMA}.tracked') IS NOT NULL AS ok`)).rows[0]?.ok;
      if (!ok) return [];
      return (await c.query<{ table_schema: string; table_name: string; side_table: string }>(
        `SELECT table_schema, table_name, side_table FROM ${S}.tracked ORDER BY table_schema, table_name`,
      )).rows;
    },
    FailureType.SourceReadFailed,
  );
  const retention = `make_interval(secs => ${Math.max(0, retentionMs) / 1000})`;
  let firstError: unknown;
  for (const row of tracked) {
    const tableCtx = { ...ctx, table: row.table_schema === 'public' ? row.table_name : `${row.table_schema}.${row.table_name}` };
    try {
      await withTransaction(
        pool,
        tableCtx,
        async (c) => {
          const exists = (await c.query<{ ok: boolean }>(
            `SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok`,
            [qualifiedSide(row.side_table)],
          )).rows[0]?.ok;
          if (!exists) return;
          await c.query(
            `WITH gone AS (DELETE FROM ${qualifiedSide(row.side_table)} WHERE recorded_at < now() - ${retention} RETURNING xid)
             UPDATE ${S}.tracked tr
                SET min_valid_version = greatest(tr.min_valid_version, ${xidPlusOne('m.newest')})
               FROM (SELECT max(xid) AS newest FROM gone) m
              WHERE m.newest IS NOT NULL AND tr.table_schema = $1 AND tr.table_name = $2`,
            [row.table_schema, row.table_name],
          );
        },
        FailureType.SourceReadFailed,
      );
    } catch (err) {
      firstError ??= err;
    }
  }
  if (firstError !== undefined) throw toMirrorError(firstError, ctx, FailureType.SourceReadFailed);
}
