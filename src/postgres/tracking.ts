/**
 * Change tracking for a PostgreSQL source, modelled on SQL Server's: per tracked table, a side table of changed
 * keys stamped with the writing transaction's id (`pg_current_xact_id()`), filled by triggers, and a min valid
 * version below which changes are gone. Everything lives in the schema `tenant_mirror_ct` of the source
 * database:
 *
 * - `meta`: one row, the tracking epoch (a fresh one whenever the schema is recreated: part of the fingerprint,
 *   so a mirror fed by an earlier installation repopulates);
 * - `tracked`: one row per tracked table, by its oid (so a rename or a move to another schema changes nothing):
 *   side table, the key columns and their types at install, the leaf partitions at install, min valid version;
 * - `truncated`: one row per TRUNCATE of a tracked table or of one of its partitions (append-only, so the
 *   tenant's TRUNCATE never waits on a row lock of ours); it raises that table's min valid version;
 * - one side table per tracked table: the key as text (`k text[]`), the operation (a hint only), the xid, the time;
 * - `decoded` and `decoding`: the tables whose side table is fed by logical decoding instead of triggers
 *   (`tracking: logical`), and the database's replication slot, publication and ingestion progress (decoding.ts).
 *
 * **Tracking can never fail a tenant's write.** The row trigger names no column as an identifier: it reads each
 * key column by name inside its own exception block, as text, so a renamed or dropped key column yields a NULL
 * key instead of an error, and a retyped one still has a text form (a key type fixed at install would overflow on
 * `ALTER COLUMN id TYPE bigint`). The side table and the truncate registry are looked up before they are written,
 * so dropping them by hand stops recording instead of failing writes. Whatever happened is the reader's problem:
 * a NULL key, a key whose columns or types differ from the recorded ones, a changed partition set or a missing
 * trigger all read as "tracking is not usable" (expired: repopulate and reinstall), never as an error at the source.
 *
 * A table is tracked in one of two modes, and everything that reads tracking is the same for both: the side
 * table, min valid version, registries and reader (snapshot.ts). `trigger` fills the side table from row triggers
 * in the tenant's transactions; `logical` adds the table to our publication instead and decoding.ts copies its
 * decoded changes into the side table (decoded-tables.ts: the per-table objects of that mode).
 *
 * Versions are xid8 values (64-bit, never wrap) handled as decimal strings.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { TableSchema, Version } from '../core/types';
import { fitPgIdentifier, literalPg, quotePg } from '../core/identifiers';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import { TRACKING_SCHEMA, mirrorName, qualifiedTable, readNativeKey, type NativeKeyColumn, type Queryable } from './catalog';
import { withClient, withTransaction } from './connection';
import {
  DECODING_SETUP_LOCK,
  decodedIntactSql,
  decodingRegistrySql,
  installDecoded,
  keyHasGeneratedColumn,
  removeDecoded,
  type TrackingMode,
} from './decoded-tables';

export type { TrackingMode } from './decoded-tables';

export const ROW_TRIGGER = 'tenant_mirror_ct_row';
export const TRUNCATE_TRIGGER = 'tenant_mirror_ct_truncate';
const TRUNCATE_FUNCTION = 'record_truncate';

const S = quotePg(TRACKING_SCHEMA);
/**
 * The tracking schema's lock: taken exclusively to create or remove the schema, shared by every installation, so
 * the schema never disappears under a table's set-up (other tenants may set up tables in the same database).
 */
const SCHEMA_LOCK = `hashtext(${literalPg(TRACKING_SCHEMA)})`;

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** The side table's name (also the row trigger function's): readable, unique by the table's oid, under 63 bytes. */
export function sideTableName(schema: string, table: string, relid: string): string {
  return fitPgIdentifier(`${schema}.${table}#${relid}`, sha1);
}

export { qualifiedTable };

export function qualifiedSide(side: string): string {
  return `${S}.${quotePg(side)}`;
}

/** xid8 has no arithmetic; numeric does. */
export function xidPlusOne(expr: string): string {
  return `((${expr})::text::numeric + 1)::text::xid8`;
}

/** The tracking schema, the epoch row, the registries and the shared TRUNCATE trigger function. Idempotent (also the upgrade of an older layout). */
export function trackingSchemaSql(): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${S}`,
    `CREATE TABLE IF NOT EXISTS ${S}.meta (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       epoch uuid NOT NULL DEFAULT gen_random_uuid(),
       created_at timestamptz NOT NULL DEFAULT now())`,
    `INSERT INTO ${S}.meta DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING`,
    `CREATE TABLE IF NOT EXISTS ${S}.tracked (
       relid oid PRIMARY KEY,
       table_schema text NOT NULL,
       table_name text NOT NULL,
       side_table text NOT NULL UNIQUE,
       key_columns text[] NOT NULL,
       key_types text[] NOT NULL,
       partitions oid[] NOT NULL DEFAULT '{}',
       min_valid_version xid8 NOT NULL,
       enabled_at timestamptz NOT NULL DEFAULT now(),
       retention interval NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS ${S}.truncated (
       relid oid NOT NULL,
       xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
       at timestamptz NOT NULL DEFAULT now())`,
    `CREATE INDEX IF NOT EXISTS truncated_relid ON ${S}.truncated (relid)`,
    ...decodingRegistrySql(),
    `CREATE OR REPLACE FUNCTION ${S}.${quotePg(TRUNCATE_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql
       SECURITY DEFINER SET search_path = pg_catalog, pg_temp
       AS ${literalPg(`
BEGIN
  IF pg_catalog.to_regclass(${literalPg(`${TRACKING_SCHEMA}.truncated`)}) IS NOT NULL THEN
    INSERT INTO ${S}.truncated (relid) VALUES (TG_ARGV[0]::oid);
  END IF;
  RETURN NULL;
END`)}`,
  ];
}

export function sideTableSql(side: string): string[] {
  return [
    `CREATE TABLE ${qualifiedSide(side)} (
       k text[],
       op "char" NOT NULL,
       xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
       recorded_at timestamptz NOT NULL DEFAULT now())`,
    `CREATE INDEX ON ${qualifiedSide(side)} (xid)`,
  ];
}

/**
 * The per-table row trigger function (see the file comment for why it can never fail). SECURITY DEFINER because it
 * runs inside the application's transactions, as the application's role, which has no business holding rights
 * on tenant_mirror_ct: it runs as the role that installed tracking instead, with a pinned search_path so nothing
 * the caller controls can redirect its names. The exception blocks hold no write (no subtransaction id is spent).
 */
export function triggerFunctionSql(side: string, keyColumns: string[]): string {
  const target = qualifiedSide(side);
  const keyOf = (rec: 'NEW' | 'OLD', into: string): string =>
    `BEGIN ${into} := ARRAY[${keyColumns.map((c) => `${rec}.${quotePg(c)}::text`).join(', ')}]; ` +
    `EXCEPTION WHEN OTHERS THEN ${into} := ARRAY[NULL::text]; END;`;
  const body = `
DECLARE n text[]; o text[];
BEGIN
  IF pg_catalog.to_regclass(${literalPg(`${TRACKING_SCHEMA}.${quotePg(side)}`)}) IS NULL THEN RETURN NULL; END IF;
  IF TG_OP <> 'DELETE' THEN ${keyOf('NEW', 'n')} END IF;
  IF TG_OP <> 'INSERT' THEN ${keyOf('OLD', 'o')} END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${target} (k, op) VALUES (n, 'I');
  ELSIF TG_OP = 'UPDATE' THEN
    IF o IS DISTINCT FROM n THEN
      INSERT INTO ${target} (k, op) VALUES (o, 'D'), (n, 'I');
    ELSE
      INSERT INTO ${target} (k, op) VALUES (n, 'U');
    END IF;
  ELSE
    INSERT INTO ${target} (k, op) VALUES (o, 'D');
  END IF;
  RETURN NULL;
END`;
  return `CREATE OR REPLACE FUNCTION ${target}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS ${literalPg(body)}`;
}

/**
 * The row trigger on the table (PostgreSQL clones it onto every partition, also ones attached later) and a
 * TRUNCATE trigger on the table and on each leaf partition (statement triggers are not cloned, and a partition can
 * be truncated on its own). ENABLE ALWAYS: the triggers also fire with session_replication_role = replica (a
 * logical replication apply worker writing into this database, a restore with triggers "disabled" that way), or
 * those writes would be lost.
 */
export function triggersSql(table: TableSchema, relid: string, side: string, partitions: string[]): string[] {
  const t = qualifiedTable(table);
  const truncate = (target: string): string[] => [
    `CREATE TRIGGER ${quotePg(TRUNCATE_TRIGGER)} AFTER TRUNCATE ON ${target} FOR EACH STATEMENT
       EXECUTE FUNCTION ${S}.${quotePg(TRUNCATE_FUNCTION)}(${literalPg(relid)})`,
    `ALTER TABLE ${target} ENABLE ALWAYS TRIGGER ${quotePg(TRUNCATE_TRIGGER)}`,
  ];
  return [
    `CREATE TRIGGER ${quotePg(ROW_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${qualifiedSide(side)}()`,
    `ALTER TABLE ${t} ENABLE ALWAYS TRIGGER ${quotePg(ROW_TRIGGER)}`,
    ...truncate(t),
    ...partitions.flatMap((p) => truncate(`${p}`)),
  ];
}

/** Tracking state of one table as seen by `db` (a snapshot's client sees it as of its snapshot). */
export interface TrackingState {
  relid: string;
  sideTable: string;
  keyColumns: string[];
  keyTypes: string[];
  /** Effective: raised past every TRUNCATE recorded since. */
  minValidVersion: Version;
  /** How the side table is fed. */
  mode: TrackingMode;
  /**
   * The side table exists, whatever feeds it is in place (trigger mode: trigger function and triggers, enabled;
   * logical mode: the table in our publication, a healthy slot), and the partition set is the recorded one.
   */
  intact: boolean;
}

/** The table's oid as `db` sees it (inside a snapshot: the snapshot's), or null when it does not exist. */
async function relidOf(db: Queryable, table: TableSchema): Promise<string | null> {
  // By oid (to_regclass of the quoted name): a prepared statement's generic plan then probes pg_class's oid
  // index, where one by name and namespace scanned the catalog (1 ms a call in a database of 600 tables).
  const { rows } = await db.query<{ relid: string }>(
    `SELECT c.oid::int8::text AS relid FROM pg_catalog.pg_class c
      WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')`,
    [qualifiedTable(table)],
  );
  return rows[0]?.relid ?? null;
}

/**
 * Which parts of the registry exist: `tracked` keyed by oid (every layout since the first), and the logical
 * decoding registries (added later; an installation from before has every table in trigger mode). Plain catalog
 * queries, so that inside a snapshot the answer is the snapshot's.
 */
export interface RegistryLayout {
  tracked: boolean;
  decoding: boolean;
}

export async function registryLayout(db: Queryable): Promise<RegistryLayout> {
  const { rows } = await db.query<RegistryLayout>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = 'tracked' AND a.attname = 'relid' AND NOT a.attisdropped) AS tracked,
            (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname IN ('decoded', 'decoding')) = 2 AS decoding`,
    [TRACKING_SCHEMA],
  );
  return { tracked: rows[0]?.tracked === true, decoding: rows[0]?.decoding === true };
}

async function registryPresent(db: Queryable): Promise<boolean> {
  return (await registryLayout(db)).tracked;
}

/**
 * Returns null when tracking was never installed or the table is not tracked. Reads through plain catalog queries
 * (not to_regclass) so that, inside a snapshot, the answer is the snapshot's. A snapshot passes the registry layout
 * it read once, rather than have it read again for every table.
 */
export async function readTrackingState(db: Queryable, table: TableSchema, known?: RegistryLayout): Promise<TrackingState | null> {
  const layout = known ?? (await registryLayout(db));
  if (!layout.tracked) return null;
  const relid = await relidOf(db, table);
  if (relid === null) return null;
  const triggersIntact = `EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid
                      JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
                     WHERE g.tgrelid = tr.relid AND g.tgname = $3 AND g.tgenabled = 'A'
                       AND pn.nspname = $2 AND p.proname = tr.side_table)
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = tr.relid AND g.tgname = $4 AND g.tgenabled = 'A')
        AND (SELECT count(*) FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = ANY (tr.partitions) AND g.tgname = $4 AND g.tgenabled = 'A') = cardinality(tr.partitions)`;
  // An installation from before logical decoding has no `decoded` registry: every table is in trigger mode.
  const decoded = layout.decoding ? `EXISTS (SELECT 1 FROM ${S}.decoded d WHERE d.relid = tr.relid)` : 'false';
  const { rows } = await db.query<{
    side_table: string;
    key_columns: string[];
    key_types: string[];
    min_valid_version: string;
    decoded: boolean;
    intact: boolean;
  }>(
    `SELECT tr.side_table, tr.key_columns, tr.key_types,
            greatest(tr.min_valid_version,
                     coalesce((SELECT ${xidPlusOne('max(x.xid)')} FROM ${S}.truncated x WHERE x.relid = tr.relid), '0'::xid8))::text
              AS min_valid_version,
            ${decoded} AS decoded,
            EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $2 AND c.relname = tr.side_table)
        AND CASE WHEN ${decoded} THEN ${layout.decoding ? decodedIntactSql('tr.relid') : 'false'} ELSE ${triggersIntact} END
        AND tr.partitions = coalesce((SELECT array_agg(t.relid::oid ORDER BY t.relid::oid) FROM pg_catalog.pg_partition_tree(tr.relid) t
                                       WHERE t.isleaf AND t.relid <> tr.relid), '{}')
        AS intact
     FROM ${S}.tracked tr
     WHERE tr.relid = $1::int8::oid`,
    [relid, TRACKING_SCHEMA, ROW_TRIGGER, TRUNCATE_TRIGGER],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    relid,
    sideTable: row.side_table,
    keyColumns: row.key_columns,
    keyTypes: row.key_types,
    minValidVersion: row.min_valid_version,
    mode: row.decoded ? 'logical' : 'trigger',
    intact: row.intact,
  };
}

/** Tracking that records this table's writes under its current key (names and types); anything else needs reinstalling. */
export function isUsable(state: TrackingState | null, key: NativeKeyColumn[]): state is TrackingState {
  return (
    state !== null &&
    state.intact &&
    state.keyColumns.length === key.length &&
    key.every((k, i) => k.name === state.keyColumns[i] && k.type === state.keyTypes[i])
  );
}

/** A table's tracking state and its current key, read in one place (the snapshot and enableTracking both need both). */
export async function readTracking(db: Queryable, table: TableSchema, layout?: RegistryLayout): Promise<{ state: TrackingState | null; key: NativeKeyColumn[] }> {
  const state = await readTrackingState(db, table, layout);
  return { state, key: await readNativeKey(db, table) };
}

/**
 * Installs the schema, epoch, registries and the truncate function; migrates the first registry layout, and adds
 * the logical decoding registries to an installation from before them.
 */
export async function ensureTrackingSchema(pool: Pool, ctx: ErrorContext, lockTimeoutMs: number): Promise<void> {
  const current = (layout: { tracked: boolean; decoding: boolean }): boolean => layout.tracked && layout.decoding;
  if (current(await withClient(pool, ctx, (c) => registryLayout(c), FailureType.SourceReadFailed))) return;
  await withTransaction(
    pool,
    ctx,
    async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
      const layout = await registryLayout(c);
      if (current(layout)) return;
      await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
      if (!layout.tracked) await migrateFirstLayout(c);
      for (const sql of trackingSchemaSql()) await c.query(sql);
    },
    FailureType.SourceReadFailed,
  );
}

/**
 * The first layout keyed `tracked` by name and wrote native key columns from triggers that named them: remove its
 * triggers, functions and side tables (the epoch stays, so the mirrors see expired tracking, not a restored
 * source, and repopulate once).
 */
async function migrateFirstLayout(c: PoolClient): Promise<void> {
  const old = await c.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass('${TRACKING_SCHEMA}.tracked') IS NOT NULL AS ok`);
  if (!old.rows[0]?.ok) return;
  const rows = (await c.query<{ table_schema: string; table_name: string; side_table: string }>(
    `SELECT table_schema, table_name, side_table FROM ${S}.tracked`,
  )).rows;
  for (const r of rows) {
    const exists = (await c.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok`, [`${quotePg(r.table_schema)}.${quotePg(r.table_name)}`])).rows[0]?.ok;
    if (exists) {
      const t = `${quotePg(r.table_schema)}.${quotePg(r.table_name)}`;
      await c.query(`DROP TRIGGER IF EXISTS ${quotePg(ROW_TRIGGER)} ON ${t}`);
      await c.query(`DROP TRIGGER IF EXISTS ${quotePg(TRUNCATE_TRIGGER)} ON ${t}`);
    }
    await c.query(`DROP TABLE IF EXISTS ${qualifiedSide(r.side_table)}`);
    await c.query(`DROP FUNCTION IF EXISTS ${qualifiedSide(r.side_table)}()`);
  }
  await c.query(`DROP TABLE ${S}.tracked`);
}

export interface EnableOptions {
  retentionMs: number;
  /** How long to wait for a table lock (writers queue behind the request meanwhile). */
  lockTimeoutMs: number;
  /** How the side table is fed; default trigger. */
  mode?: TrackingMode;
  /**
   * Runs before each attempt, once the tracking schema exists: logical mode makes sure the database's slot and
   * publication exist there (decoding.ts), which an install then requires under the decoding set-up lock.
   */
  prepare?: () => Promise<void>;
}

/**
 * Installs (or repairs) tracking for one table. Returns false when it was already recording under the current key
 * — that path only reads, and takes no lock that could stall writers.
 *
 * Ordering against live writers: every INSERT/UPDATE/DELETE holds ROW EXCLUSIVE on the table until its
 * transaction ends, and SHARE ROW EXCLUSIVE (what CREATE TRIGGER needs, taken up front with LOCK TABLE) conflicts
 * with it. So when the lock is granted, every transaction that wrote the table without the trigger has ended,
 * and every later writer blocks until this transaction commits and then sees the triggers. This transaction gets
 * its xid E only after the lock (nothing before it writes), so E is above the xid of every untracked write.
 * min_valid_version = E + 1, not E: any version handed out before now is <= E (a horizon never passes a running
 * or unassigned xid), so every mirror LSN from before the (re)enable reads as expired, including one that equals
 * E on a quiet database — that mirror could have skipped untracked writes of a recreated table.
 * The lock wait is bounded by lock_timeout (short: while the request waits, the tenant's writers queue behind it;
 * a timeout is retried later).
 *
 * Logical mode, the same ordering: the table joins our publication in this transaction, so every write that waited
 * for the lock is decoded after its commit, with the table published; writes that ended before have smaller xids
 * and sit below the min valid version. A table whose key has a generated column stays in trigger mode (pgoutput
 * does not send generated columns, so its key could never be read from a decoded change).
 */
export async function enableTracking(pool: Pool, table: TableSchema, opts: EnableOptions, ctx: ErrorContext): Promise<boolean> {
  if (table.primaryKey.length === 0) {
    throw new MirrorError(FailureType.BadConfig, 'a table without a key has no change tracking (it is mirrored by refresh)', ctx);
  }
  const retention = `make_interval(secs => ${Math.max(0, opts.retentionMs) / 1000})`;
  // An operator's untrack may remove the schema between its creation and this transaction: create it again.
  for (let attempt = 1; ; attempt++) {
    await ensureTrackingSchema(pool, ctx, opts.lockTimeoutMs);
    await opts.prepare?.();
    const enabled = await withTransaction(
      pool,
      ctx,
      async (c) => {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(opts.lockTimeoutMs))}`);
        await c.query(`SELECT pg_advisory_xact_lock_shared(${SCHEMA_LOCK})`);
        if (!(await registryPresent(c))) return null;
        await c.query(`SELECT pg_advisory_xact_lock(hashtext(${literalPg(TRACKING_SCHEMA)}), hashtext($1))`, [
          `${table.source.schema}.${table.source.table}`,
        ]);
        return installOrKeep(c, table, retention, opts.mode ?? 'trigger', ctx);
      },
      FailureType.SourceReadFailed,
    );
    if (enabled !== null) return enabled;
    if (attempt >= 3) {
      throw new MirrorError(FailureType.SourceBusy, 'the tracking schema or the replication slot is being removed (untrack): try again later', ctx);
    }
  }
}

/**
 * Under the table's lock: keeps tracking that still records under the current key in the wanted mode, or installs
 * it anew. Null when logical mode finds no slot to feed it (removed meanwhile by an untrack: the caller retries).
 */
async function installOrKeep(c: PoolClient, table: TableSchema, retention: string, wanted: TrackingMode, ctx: ErrorContext): Promise<boolean | null> {
  const { state, key } = await readTracking(c, table);
  const mode = wanted === 'logical' && (await keyHasGeneratedColumn(c, table)) ? 'trigger' : wanted;
  if (isUsable(state, key) && sameNames(state.keyColumns, table.primaryKey) && state.mode === mode) {
    await c.query(`UPDATE ${S}.tracked SET retention = ${retention} WHERE relid = $1::int8::oid AND retention IS DISTINCT FROM ${retention}`, [
      state.relid,
    ]);
    return false;
  }
  if (mode === 'logical') {
    // Shared with every install, exclusive for the slot's removal: the slot cannot go while a table joins it.
    await c.query(`SELECT pg_advisory_xact_lock_shared(${DECODING_SETUP_LOCK})`);
    const ready = await c.query(`SELECT 1 FROM ${S}.decoding`);
    if (ready.rows.length === 0) return null;
  }
  await install(c, table, retention, mode, ctx);
  return true;
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

async function install(c: PoolClient, table: TableSchema, retention: string, mode: TrackingMode, ctx: ErrorContext): Promise<void> {
  const t = qualifiedTable(table);
  await c.query(`LOCK TABLE ${t} IN SHARE ROW EXCLUSIVE MODE`);
  const relid = await relidOf(c, table);
  const key = await readNativeKey(c, table);
  if (relid === null || !sameNames(key.map((k) => k.name), table.primaryKey)) {
    throw new MirrorError(
      FailureType.SourceReadFailed,
      `the table's key is now (${key.map((k) => k.name).join(', ')}), not (${table.primaryKey.join(', ')}): list tables again`,
      ctx,
    );
  }
  const xid = (await c.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid;
  if (xid === undefined) throw new MirrorError(FailureType.SourceReadFailed, 'no transaction id', ctx);
  await removeTracking(c, relid);

  const partitions = (await c.query<{ relid: string; name: string }>(
    `SELECT t.relid::oid::int8::text AS relid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.relname) AS name
       FROM pg_catalog.pg_partition_tree($1::int8::oid) t
       JOIN pg_catalog.pg_class p ON p.oid = t.relid JOIN pg_catalog.pg_namespace n ON n.oid = p.relnamespace
      WHERE t.isleaf AND t.relid <> $1::int8::oid ORDER BY t.relid::oid`,
    [relid],
  )).rows;
  const side = sideTableName(table.source.schema, table.source.table, relid);
  for (const sql of sideTableSql(side)) await c.query(sql);
  if (mode === 'logical') {
    await installDecoded(c, relid, t, partitions);
  } else {
    await c.query(triggerFunctionSql(side, key.map((k) => k.name)));
    for (const sql of triggersSql(table, relid, side, partitions.map((p) => p.name))) await c.query(sql);
  }
  await c.query(
    `INSERT INTO ${S}.tracked (relid, table_schema, table_name, side_table, key_columns, key_types, partitions, min_valid_version, enabled_at, retention)
     VALUES ($1::int8::oid, $2, $3, $4, $5, $6, $7::int8[]::oid[], ${xidPlusOne(`${literalPg(xid)}::xid8`)}, now(), ${retention})`,
    [relid, table.source.schema, table.source.table, side, key.map((k) => k.name), key.map((k) => k.type), partitions.map((p) => p.relid)],
  );
}

/**
 * Removes one table's tracking objects: its triggers (on the table and on the partitions it had), its trigger
 * function, or (logical mode) its place in our publication and the replica identity it had before; its side
 * table, registry and truncate rows. The caller holds SHARE ROW EXCLUSIVE on the table, if it still exists.
 */
async function removeTracking(c: PoolClient, relid: string): Promise<void> {
  await removeDecoded(c, relid);
  const row = (await c.query<{ side_table: string; partitions: string[] }>(
    `SELECT side_table, partitions::int8[]::text[] AS partitions FROM ${S}.tracked WHERE relid = $1::int8::oid`,
    [relid],
  )).rows[0];
  // The parent first: dropping its row trigger drops the clones on its partitions (which cannot be dropped alone).
  for (const target of await relations(c, [relid])) {
    await c.query(`DROP TRIGGER IF EXISTS ${quotePg(ROW_TRIGGER)} ON ${target.name}`);
    await c.query(`DROP TRIGGER IF EXISTS ${quotePg(TRUNCATE_TRIGGER)} ON ${target.name}`);
  }
  for (const target of await relations(c, row?.partitions ?? [])) {
    await c.query(`DROP TRIGGER IF EXISTS ${quotePg(TRUNCATE_TRIGGER)} ON ${target.name}`);
    // A partition detached since keeps nothing of the parent's, unless an older server left the clone behind.
    if (!target.partition) await c.query(`DROP TRIGGER IF EXISTS ${quotePg(ROW_TRIGGER)} ON ${target.name}`);
  }
  if (row) {
    await c.query(`DROP TABLE IF EXISTS ${qualifiedSide(row.side_table)}`);
    await c.query(`DROP FUNCTION IF EXISTS ${qualifiedSide(row.side_table)}()`);
  }
  await c.query(`DELETE FROM ${S}.tracked WHERE relid = $1::int8::oid`, [relid]);
  await c.query(`DELETE FROM ${S}.truncated WHERE relid = $1::int8::oid`, [relid]);
}

/** The relations among `oids` that still exist: their qualified names, and whether each is a partition now. */
async function relations(c: Queryable, oids: string[]): Promise<{ name: string; partition: boolean }[]> {
  if (oids.length === 0) return [];
  const { rows } = await c.query<{ name: string; partition: boolean }>(
    `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(r.relname) AS name, r.relispartition AS partition
       FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
      WHERE r.oid = ANY (($1::int8[])::oid[])`,
    [oids],
  );
  return rows;
}

/** Every tracked table: its oid, its name now (or as installed, when it is gone), and whether it still exists. */
async function trackedTables(c: Queryable): Promise<{ relid: string; name: string; schema: string; table: string; exists: boolean }[]> {
  const { rows } = await c.query<{ relid: string; schema: string; table: string; exists: boolean }>(
    `SELECT tr.relid::int8::text AS relid, coalesce(n.nspname, tr.table_schema)::text AS schema,
            coalesce(r.relname, tr.table_name)::text AS table, r.oid IS NOT NULL AS exists
       FROM ${S}.tracked tr
       LEFT JOIN pg_catalog.pg_class r ON r.oid = tr.relid
       LEFT JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
      ORDER BY 2, 3`,
  );
  return rows.map((r) => ({ ...r, name: mirrorName(r.schema, r.table) }));
}

/**
 * Removes tracking from every tracked table `select` names (by its name now), dropped tables included; returns
 * their names. With `removeUnused`, the tracking schema goes too once no table is tracked: under the schema lock
 * taken exclusively, which every installation holds shared, so a table another tenant is setting up meanwhile
 * is either counted or sets up after the schema is gone (and creates it again).
 */
export async function untrack(
  pool: Pool,
  select: (name: string) => boolean,
  opts: { lockTimeoutMs: number; removeUnused: boolean },
  ctx: ErrorContext,
): Promise<string[]> {
  const { lockTimeoutMs } = opts;
  const present = await withClient(pool, ctx, (c) => registryPresent(c), FailureType.SourceReadFailed);
  if (!present) return [];
  const tracked = await withClient(pool, ctx, (c) => trackedTables(c), FailureType.SourceReadFailed);
  const removed: string[] = [];
  for (const t of tracked.filter((x) => select(x.name))) {
    await withTransaction(
      pool,
      { ...ctx, table: t.name },
      async (c) => {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
        if (t.exists) await c.query(`LOCK TABLE ${quotePg(t.schema)}.${quotePg(t.table)} IN SHARE ROW EXCLUSIVE MODE`);
        await removeTracking(c, t.relid);
      },
      FailureType.SourceReadFailed,
    );
    removed.push(t.name);
  }
  if (opts.removeUnused) {
    await withTransaction(
      pool,
      ctx,
      async (c) => {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
        await c.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
        if (!(await registryPresent(c))) return;
        const left = (await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${S}.tracked`)).rows[0]?.n;
        if (left === '0') await c.query(`DROP SCHEMA ${S} CASCADE`);
      },
      FailureType.SourceReadFailed,
    );
  }
  return removed;
}

/**
 * Deletes side entries older than the retention, one transaction per table, raising the table's min valid
 * version past the newest deleted xid: a mirror at or below it would need one of them. Entries are ordered by
 * recorded_at (the writer's start time), not by xid, so some older xids may survive: harmless, they are below
 * the new min valid version and never read by a valid mirror. Recorded TRUNCATEs are folded into the min valid
 * version at the same time.
 */
export async function cleanupTracking(pool: Pool, retentionMs: number, ctx: ErrorContext): Promise<void> {
  const present = await withClient(pool, ctx, (c) => registryPresent(c), FailureType.SourceReadFailed);
  if (!present) return;
  const tracked = await withClient(
    pool,
    ctx,
    async (c) => (await c.query<{ relid: string; side_table: string; table_schema: string; table_name: string }>(
      `SELECT relid::int8::text AS relid, side_table, table_schema, table_name FROM ${S}.tracked ORDER BY table_schema, table_name`,
    )).rows,
    FailureType.SourceReadFailed,
  );
  const retention = `make_interval(secs => ${Math.max(0, retentionMs) / 1000})`;
  let firstError: unknown;
  for (const row of tracked) {
    try {
      await withTransaction(
        pool,
        { ...ctx, table: mirrorName(row.table_schema, row.table_name) },
        async (c) => {
          await c.query(
            `UPDATE ${S}.tracked tr SET min_valid_version = greatest(tr.min_valid_version, ${xidPlusOne('m.newest')})
               FROM (SELECT max(xid) AS newest FROM ${S}.truncated WHERE relid = $1::int8::oid) m
              WHERE m.newest IS NOT NULL AND tr.relid = $1::int8::oid`,
            [row.relid],
          );
          await c.query(`DELETE FROM ${S}.truncated WHERE relid = $1::int8::oid`, [row.relid]);
          const exists = (await c.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok`, [qualifiedSide(row.side_table)]))
            .rows[0]?.ok;
          if (!exists) return;
          await c.query(
            `WITH gone AS (DELETE FROM ${qualifiedSide(row.side_table)} WHERE recorded_at < now() - ${retention} RETURNING xid)
             UPDATE ${S}.tracked tr
                SET min_valid_version = greatest(tr.min_valid_version, ${xidPlusOne('m.newest')})
               FROM (SELECT max(xid) AS newest FROM gone) m
              WHERE m.newest IS NOT NULL AND tr.relid = $1::int8::oid`,
            [row.relid],
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
