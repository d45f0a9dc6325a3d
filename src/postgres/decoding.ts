/**
 * `tracking: logical`, the database-wide part: one logical replication slot per source database (pgoutput) and our
 * publication, whose changes ingestion (ingest.ts) copies into the side tables of decoded tables — so the reader,
 * min valid versions, retention and a mirror restored from backup work as in trigger mode. The side table keeps
 * every change for the retention period however far the slot has confirmed: the slot is only the way in.
 *
 * `decoding` (one row) names the slot and records how far ingestion got: every transaction that committed before
 * ingested_lsn is in the side tables, and every xid below horizon committed before ingested_lsn. The slot never
 * confirms past ingested_lsn; one that did (someone else consumed it), one that is gone, or one that lost WAL it
 * needed (wal_status lost) means changes may be missing: resetDecoding raises every decoded table's min valid
 * version above every xid so far and removes the row (the tables read as not intact: expired, repopulate), and the
 * next enableTracking creates a new slot.
 */
import type { Pool, PoolClient } from 'pg';
import { FailureType, MirrorError, type ErrorContext } from '../core/errors';
import { quotePg } from '../core/identifiers';
import { TRACKING_SCHEMA } from './catalog';
import { withClient } from './connection';
import { DECODING_SETUP_LOCK, DECODING_SLOT_LOCK, PUBLICATION, SLOT_NAME_SQL } from './decoded-tables';
import { parseLsn } from './pgoutput';
import { registryLayout, xidPlusOne } from './tracking';

const S = quotePg(TRACKING_SCHEMA);

export interface DecodingOptions {
  /** How long to wait for the slot lock or a table lock. */
  lockTimeoutMs: number;
  /** How long creating the slot may wait for the source's running transactions to end. */
  slotCreateTimeoutMs: number;
}

/** pgoutput's publication options: every kind of change, each leaf partition under its own oid. */
const PUBLICATION_OPTIONS = `publish = 'insert, update, delete, truncate', publish_via_partition_root = false`;

export interface SlotRow {
  slot_name: string;
  ingested_lsn: string;
  horizon: string;
}

interface SlotState {
  confirmed: string | null;
  lost: boolean;
  /** In this database, logical, pgoutput. */
  ours: boolean;
}

export async function slotState(c: PoolClient, name: string): Promise<SlotState | null> {
  const { rows } = await c.query<SlotState>(
    `SELECT confirmed_flush_lsn::text AS confirmed, wal_status = 'lost' AS lost,
            (database = pg_catalog.current_database() AND slot_type = 'logical' AND plugin = 'pgoutput') AS ours
       FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`,
    [name],
  );
  return rows[0] ?? null;
}

/**
 * The database's slot as an operator needs to see it (status): a slot that is not advanced keeps every WAL segment
 * after its restart point, and can fill the source's disk.
 */
export interface DecodingSlotFigures {
  slot: string;
  /** pg_replication_slots.wal_status (reserved, extended, unreserved, lost), or null when the slot is gone. */
  walStatus: string | null;
  /** WAL the server keeps for the slot: from its restart point to the current position. */
  retainedBytes: number | null;
  /** When the side tables were last fed from it. */
  ingestedAt: string;
}

/** The slot feeding this database's side tables, or null when no table is decoded here. */
export async function readDecodingSlot(c: PoolClient): Promise<DecodingSlotFigures | null> {
  if (!(await registryLayout(c)).decoding) return null;
  const { rows } = await c.query<{ slot: string; wal_status: string | null; retained: string | null; ingested_at: string }>(
    `SELECT d.slot_name AS slot, rs.wal_status,
            pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.restart_lsn)::int8::text AS retained,
            to_char(d.ingested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ingested_at
       FROM ${S}.decoding d LEFT JOIN pg_catalog.pg_replication_slots rs ON rs.slot_name = d.slot_name`,
  );
  const row = rows[0];
  if (!row) return null;
  return { slot: row.slot, walStatus: row.wal_status, retainedBytes: row.retained === null ? null : Number(row.retained), ingestedAt: row.ingested_at };
}

/** Why the slot cannot go on feeding the side tables from `row`, or null when it can. */
export function slotBroken(row: SlotRow, slot: SlotState | null): string | null {
  if (!slot) return `the replication slot ${row.slot_name} is gone`;
  if (!slot.ours) return `the replication slot ${row.slot_name} is not this database's pgoutput slot`;
  if (slot.lost) return `the replication slot ${row.slot_name} lost WAL it needed (wal_status lost: max_slot_wal_keep_size)`;
  if (slot.confirmed !== null && parseLsn(slot.confirmed) > parseLsn(row.ingested_lsn)) {
    return `the replication slot ${row.slot_name} confirmed ${slot.confirmed}, past what was ingested (${row.ingested_lsn}): someone else consumed it`;
  }
  return null;
}

/**
 * Changes may be missing from the side tables: every decoded table's min valid version goes above every xid
 * assigned so far, and the slot's row goes (its tables read as not intact until enableTracking sets them up again).
 */
export async function resetDecoding(c: PoolClient): Promise<void> {
  await c.query(
    `UPDATE ${S}.tracked tr SET min_valid_version = greatest(tr.min_valid_version, ${xidPlusOne('pg_snapshot_xmax(pg_current_snapshot())')})
       FROM ${S}.decoded d WHERE d.relid = tr.relid`,
  );
  await c.query(`DELETE FROM ${S}.decoding`);
}

export async function dropSlotIfPresent(c: PoolClient, name: string): Promise<void> {
  // A walsender whose connection just closed (ours, a moment ago) releases the slot shortly after: wait for it.
  for (let i = 0; i < 50; i++) {
    const { rows } = await c.query<{ active: boolean }>(
      `SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = pg_catalog.current_database()`,
      [name],
    );
    if (rows.length === 0) return;
    if (!rows[0]!.active) {
      await c.query(`SELECT pg_catalog.pg_drop_replication_slot($1)`, [name]);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function inTransaction<T>(c: PoolClient, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    const result = await fn();
    await c.query('COMMIT');
    return result;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Session-level settings on a pooled connection are put back before it returns to the pool. */
async function withSlotLock<T>(c: PoolClient, lockTimeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await c.query(`SELECT pg_catalog.set_config('lock_timeout', $1, false)`, [String(Math.max(1, Math.round(lockTimeoutMs)))]);
  try {
    await c.query(`SELECT pg_advisory_lock(${DECODING_SLOT_LOCK})`);
  } finally {
    await c.query('RESET lock_timeout');
  }
  try {
    return await fn();
  } finally {
    await c.query(`SELECT pg_advisory_unlock(${DECODING_SLOT_LOCK})`);
  }
}

/**
 * The database's slot, publication and `decoding` row, created when missing (or when the slot broke: see
 * resetDecoding). Needs wal_level = logical (BadConfig naming the setting otherwise) and a role with REPLICATION
 * (AuthFailed). Creating a slot waits until every transaction running at that moment has ended, at most
 * `slotCreateTimeoutMs` (SourceBusy after, retried later).
 */
export async function ensureDecoding(pool: Pool, ctx: ErrorContext, opts: DecodingOptions): Promise<void> {
  await withClient(
    pool,
    ctx,
    async (c) => {
      const wal = (await c.query<{ wal_level: string }>(`SELECT pg_catalog.current_setting('wal_level') AS wal_level`)).rows[0]?.wal_level;
      if (wal !== 'logical') {
        throw new MirrorError(
          FailureType.BadConfig,
          `source.tracking is logical, but the source server runs with wal_level = ${wal ?? 'unknown'}: set wal_level = logical (a server restart) or use source.tracking: trigger`,
          ctx,
        );
      }
      const name = (await c.query<{ name: string }>(`SELECT ${SLOT_NAME_SQL} AS name`)).rows[0]?.name ?? '';
      if (await ready(c, name)) return;
      await withSlotLock(c, opts.lockTimeoutMs, async () => {
        if (await ready(c, name)) return;
        await inTransaction(c, async () => {
          const row = (await c.query<SlotRow>(`SELECT slot_name, ingested_lsn::text, horizon::text FROM ${S}.decoding FOR UPDATE`)).rows[0];
          if (row) await resetDecoding(c);
        });
        await dropSlotIfPresent(c, name);
        // The publication first: pgoutput looks it up as of each decoded transaction, and fails on one from before
        // the publication existed.
        await inTransaction(c, () => ensurePublication(c));
        const created = await createSlot(c, name, opts.slotCreateTimeoutMs, ctx);
        await inTransaction(c, async () => {
          // Every xid below the horizon read now ended before the slot's consistent point or after it, and no
          // table is decoded yet: nothing below it can be missing.
          await c.query(
            `INSERT INTO ${S}.decoding (slot_name, publication, ingested_lsn, horizon)
             VALUES ($1, $2, $3::pg_lsn, pg_snapshot_xmin(pg_current_snapshot()))`,
            [name, PUBLICATION, created],
          );
        });
      });
    },
    FailureType.SourceReadFailed,
  );
}

/** The slot, the row that feeds from it and the publication are all in order. */
async function ready(c: PoolClient, name: string): Promise<boolean> {
  const row = (await c.query<SlotRow>(`SELECT slot_name, ingested_lsn::text, horizon::text FROM ${S}.decoding`)).rows[0];
  if (!row || row.slot_name !== name || slotBroken(row, await slotState(c, name)) !== null) return false;
  return publicationReady(c);
}

/** Our publication exists and publishes every kind of change, per leaf partition. */
export async function publicationReady(c: PoolClient): Promise<boolean> {
  const pub = await c.query(
    `SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1 AND pubinsert AND pubupdate AND pubdelete AND pubtruncate AND NOT pubviaroot`,
    [PUBLICATION],
  );
  return pub.rows.length > 0;
}

async function ensurePublication(c: PoolClient): Promise<void> {
  const exists = await c.query(`SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1`, [PUBLICATION]);
  if (exists.rows.length === 0) await c.query(`CREATE PUBLICATION ${quotePg(PUBLICATION)} WITH (${PUBLICATION_OPTIONS})`);
  else await c.query(`ALTER PUBLICATION ${quotePg(PUBLICATION)} SET (${PUBLICATION_OPTIONS})`);
}

async function createSlot(c: PoolClient, name: string, timeoutMs: number, ctx: ErrorContext): Promise<string> {
  await c.query(`SELECT pg_catalog.set_config('statement_timeout', $1, false)`, [String(Math.max(1, Math.round(timeoutMs)))]);
  try {
    const { rows } = await c.query<{ lsn: string }>(`SELECT lsn::text AS lsn FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
    const lsn = rows[0]?.lsn;
    if (!lsn) throw new MirrorError(FailureType.SourceReadFailed, 'creating the replication slot returned no LSN', ctx);
    return lsn;
  } catch (err) {
    throw slotFailure(err, ctx, timeoutMs);
  } finally {
    await c.query('RESET statement_timeout');
  }
}

/** What a failed slot operation means for the operator. */
function slotFailure(err: unknown, ctx: ErrorContext, timeoutMs: number): unknown {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const message = err instanceof Error ? err.message : String(err);
  if (code === '42501') {
    return new MirrorError(FailureType.AuthFailed, `source.tracking: logical needs a role with the REPLICATION attribute: ${message}`, ctx, { cause: err });
  }
  if (code === '53400' || code === '55000') {
    return new MirrorError(FailureType.BadConfig, `source.tracking: logical needs a free replication slot on the source server (max_replication_slots): ${message}`, ctx, { cause: err });
  }
  if (code === '57014') {
    return new MirrorError(
      FailureType.SourceBusy,
      `creating the replication slot waits for the source's running transactions to end; some ran longer than ${Math.round(timeoutMs / 1000)} s: trying again later`,
      ctx,
      { cause: err },
    );
  }
  return err;
}

/**
 * Removes the slot, the publication and the `decoding` row once no table is decoded any more (a slot nobody
 * advances keeps WAL forever). The row and publication go in a transaction holding the set-up lock exclusively,
 * which every install of a decoded table holds shared: a table being set up meanwhile keeps them. The slot goes
 * at once when nobody streams from it; otherwise its streamer drops it (ingest.ts), finding the row gone.
 */
export async function dropDecodingIfUnused(pool: Pool, ctx: ErrorContext, opts: DecodingOptions): Promise<boolean> {
  return withClient(
    pool,
    ctx,
    async (c) => {
      const name = (await c.query<{ name: string }>(`SELECT ${SLOT_NAME_SQL} AS name`)).rows[0]?.name ?? '';
      const anything = await c.query(
        `SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 UNION ALL SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $2`,
        [name, PUBLICATION],
      );
      if (anything.rows.length === 0) return false;
      const unused = await inTransaction(c, async () => {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(opts.lockTimeoutMs))}`);
        const { decoding } = await registryLayout(c);
        if (decoding) {
          await c.query(`SELECT pg_advisory_xact_lock(${DECODING_SETUP_LOCK})`);
          const left = await c.query(`SELECT 1 FROM ${S}.decoded LIMIT 1`);
          if (left.rows.length > 0) return false;
          await c.query(`DELETE FROM ${S}.decoding`);
        }
        await c.query(`DROP PUBLICATION IF EXISTS ${quotePg(PUBLICATION)}`);
        return true;
      });
      if (!unused) return false;
      const free = (await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${DECODING_SLOT_LOCK}) AS ok`)).rows[0]?.ok === true;
      if (free) {
        try {
          await dropSlotIfPresent(c, name);
        } finally {
          await c.query(`SELECT pg_advisory_unlock(${DECODING_SLOT_LOCK})`);
        }
      }
      return true;
    },
    FailureType.SourceReadFailed,
  );
}
