/**
 * The PostgreSQL change source: tables and schemas from the catalog (catalog.ts), change tracking into side tables
 * fed by triggers or by logical decoding (tracking.ts, decoding.ts), and consistent snapshots that stream rows and
 * net changes as COPY text straight from the server (snapshot.ts). Where any table of the database is decoded,
 * every snapshot first ingests what the slot has decoded since the last one.
 */
import type { Pool } from 'pg';
import type { ChangeSource, ComparableSnapshot, Finding, ListOptions, PreflightTables, SourceOptions, SourceSnapshot, SourceTables, TableFilter, TableSchema, Version } from '../core/types';
import { FailureType, type ErrorContext, contextFor } from '../core/errors';
import { literalPg } from '../core/identifiers';
import { CatalogMemo, TRACKING_SCHEMA, estimateRows, prepared, type Queryable } from './catalog';
import { createPgPool, withClient } from './connection';
import { sourcePreflight } from './preflight';
import { PgSourceSnapshot, assertVersion } from './snapshot';
import { cleanupTracking, enableTracking, qualifiedSide, qualifiedTable, untrack, type TrackingMode } from './tracking';
import { dropDecodingIfUnused, ensureDecoding, readDecodingSlot, type DecodingOptions, type DecodingSlotFigures } from './decoding';
import { DecodedIngestion } from './ingest';

/** maxConnections: a snapshot holds one connection for its lifetime; default 4. */
export interface PgChangeSourceOptions extends SourceOptions {
  /**
   * How long enableTracking (and untrack) waits for a table lock before failing, retryably. Short, because the
   * tenant's writers queue behind the waiting request: default 1 s.
   */
  lockTimeoutMs?: number;
  /** How tables get their side tables filled: row triggers (default) or logical decoding (needs wal_level = logical). */
  tracking?: TrackingMode;
}

/** One ingestion stops after this long (at a transaction boundary); the next snapshot goes on from there. */
const INGEST_BUDGET_MS = 20_000;
/** changesPending gives up after waiting this long for a lock (and four times as long in all). */
const PROBE_TIMEOUT_MS = 200;
/** Side table names for changesPending are looked up again after this long. */
const SIDE_TABLES_TTL_MS = 30_000;
/** The slot is let go after this long without a snapshot (a population's source, say), for the next session to take. */
const INGEST_IDLE_RELEASE_MS = 15_000;

export class PgChangeSource implements ChangeSource {
  private readonly pool: Pool;
  private readonly lockTimeoutMs: number;
  private readonly tracking: TrackingMode;
  private readonly openSnapshots = new Set<PgSourceSnapshot>();
  private readonly ingestion: DecodedIngestion;
  /** The last listing, and columns and keys as last listed: read again when their catalog rows change (a session lists every cycle). */
  readonly catalog = new CatalogMemo();

  constructor(opts: PgChangeSourceOptions) {
    this.ctx = contextFor(opts.tenant, 'source');
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 1_000;
    this.tracking = opts.tracking ?? 'trigger';
    this.pool = createPgPool(opts.url, { max: opts.maxConnections ?? 4, applicationName: 'tenant-mirror' });
    this.ingestion = new DecodedIngestion(this.pool, opts.url, this.ctx('ingest decoded changes'), {
      mode: this.tracking,
      budgetMs: INGEST_BUDGET_MS,
      idleReleaseMs: INGEST_IDLE_RELEASE_MS,
    });
  }

  private readonly ctx: (operation: string, table?: string) => ErrorContext;

  async ping(): Promise<void> {
    await withClient(this.pool, this.ctx('ping'), (c) => c.query('SELECT 1'), FailureType.Unavailable);
  }

  listTables(filter: TableFilter, opts: ListOptions = {}): Promise<SourceTables> {
    return withClient(
      this.pool,
      this.ctx('list tables'),
      (c) => this.catalog.listing(prepared(c), filter, opts.reuse === true),
      FailureType.SourceReadFailed,
    );
  }

  private decodingOptions(): DecodingOptions {
    // The slot lock is held by an ingestion for up to its budget: wait a little longer than that.
    return { lockTimeoutMs: Math.max(this.lockTimeoutMs, INGEST_BUDGET_MS + 10_000), slotCreateTimeoutMs: 60_000 };
  }

  enableTracking(table: TableSchema, retentionMs: number): Promise<boolean> {
    const ctx = this.ctx('enable tracking', table.name);
    const prepare = this.tracking === 'logical' ? () => ensureDecoding(this.pool, this.ctx('set up logical decoding'), this.decodingOptions()) : undefined;
    return enableTracking(this.pool, table, { retentionMs, lockTimeoutMs: this.lockTimeoutMs, mode: this.tracking, ...(prepare ? { prepare } : {}) }, ctx);
  }

  snapshot(): Promise<SourceSnapshot> {
    return this.comparableSnapshot();
  }

  async comparableSnapshot(): Promise<ComparableSnapshot> {
    await this.ingestion.ingest();
    return PgSourceSnapshot.open(this.pool, this.ctx('snapshot'), this.openSnapshots);
  }

  /** Also removes the slot and publication once no table is decoded (a slot nobody advances keeps WAL forever). */
  async untrack(select: (name: string) => boolean, opts: { removeUnused?: boolean } = {}): Promise<string[]> {
    const removed = await untrack(this.pool, select, { lockTimeoutMs: this.lockTimeoutMs, removeUnused: opts.removeUnused ?? false }, this.ctx('untrack'));
    // Our own stream would keep the slot active (undroppable); the next snapshot takes it again if it is still there.
    await this.ingestion.release();
    await dropDecodingIfUnused(this.pool, this.ctx('untrack'), this.decodingOptions());
    return removed;
  }

  /** The replication slot feeding this database's decoded tables (status: the WAL it retains), or null. */
  decodingSlot(): Promise<DecodingSlotFigures | null> {
    return withClient(this.pool, this.ctx('read the replication slot'), (c) => readDecodingSlot(c), FailureType.SourceReadFailed);
  }

  cleanup(retentionMs: number): Promise<void> {
    return cleanupTracking(this.pool, retentionMs, this.ctx('tracking cleanup'));
  }

  preflight(plan: PreflightTables): Promise<Finding[]> {
    return withClient(this.pool, this.ctx('preflight'), (c) => sourcePreflight(c, plan), FailureType.SourceReadFailed);
  }

  estimateRows(table: TableSchema): Promise<number> {
    return withClient(this.pool, this.ctx('estimate rows', table.name), (c) => estimateRows(c, table), FailureType.SourceReadFailed);
  }

  /**
   * One statement: does any of the tables' side tables hold an entry at or above `since` from a transaction
   * that has ended (below the current snapshot's xmin), which a cycle would therefore read? Trigger tracking only:
   * decoded changes reach the side tables when a snapshot ingests them. Side table names are looked up in the
   * registry and kept for a while; a failure (tracking reinstalled meanwhile, say) answers null and forgets them.
   */
  async changesPending(tables: TableSchema[], since: Version): Promise<boolean | null> {
    if (this.tracking !== 'trigger' || tables.length === 0) return null;
    try {
      const from = literalPg(assertVersion(since));
      return await withClient(
        this.pool,
        this.ctx('look for changes'),
        async (c) => {
          const sides = await this.sideTables(prepared(c), tables);
          if (sides.length === 0) return null;
          const pending = sides
            .map((s) => `EXISTS (SELECT 1 FROM ${qualifiedSide(s)} WHERE xid >= ${from}::xid8 AND xid < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()))`)
            .join(' OR ');
          // One round trip, bounded: a side table locked by DDL (another tenant untracking, a VACUUM FULL) must not
          // hold the session, which sends no heartbeat while it waits; the answer is then "cannot tell".
          try {
            const results = (await c.query(
              `BEGIN; SET LOCAL lock_timeout = ${PROBE_TIMEOUT_MS}; SET LOCAL statement_timeout = ${4 * PROBE_TIMEOUT_MS}; SELECT (${pending}) AS pending; COMMIT`,
            )) as unknown as { rows: { pending?: boolean }[] }[];
            return results[3]?.rows[0]?.pending === true;
          } catch (err) {
            await c.query('ROLLBACK').catch(() => undefined);
            throw err;
          }
        },
        FailureType.SourceReadFailed,
      );
    } catch {
      this.sides = null;
      return null;
    }
  }

  private sides: { key: string; names: string[]; readAt: number } | null = null;

  private async sideTables(db: Queryable, tables: TableSchema[]): Promise<string[]> {
    const qualified = tables.map(qualifiedTable);
    const key = qualified.join('\n');
    if (this.sides && this.sides.key === key && Date.now() - this.sides.readAt < SIDE_TABLES_TTL_MS) return this.sides.names;
    const { rows } = await db.query<{ side_table: string }>(
      `SELECT tr.side_table FROM ${TRACKING_SCHEMA}.tracked tr
        WHERE tr.relid = ANY (SELECT pg_catalog.to_regclass(x)::oid FROM unnest($1::text[]) x)
        ORDER BY tr.side_table`,
      [qualified],
    );
    this.sides = { key, names: rows.map((r) => r.side_table), readAt: Date.now() };
    return this.sides.names;
  }

  /** Closes snapshots still open (pool.end() would wait for their connections forever), then the pool. */
  async close(): Promise<void> {
    await this.ingestion.close();
    await Promise.all([...this.openSnapshots].map((s) => s.close()));
    await this.pool.end();
  }
}

