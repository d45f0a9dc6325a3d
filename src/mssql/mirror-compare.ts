/**
 * One SQL Server mirror table read for a comparison (tenant-mirror verify): a SNAPSHOT transaction when the
 * partner's database allows snapshot isolation, reading the table's `_mirror_state` row and its rows as of one
 * moment. Without it, a READ COMMITTED transaction: the reads then are not one snapshot (`consistent` false), and
 * verify re-reads the LSN afterwards to see whether the mirror moved meanwhile. A population swapped in under a
 * SNAPSHOT transaction makes its next read fail (error 3961), which reads as MirrorBusy: compared again later.
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { toTableState, type StateRow } from '../core/mirror-common';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import type { DigestForm, DigestOptions, KeyRange, KeyValues, MirrorTableSnapshot, MirrorTableState, RangeDigest, RowHash, TableSchema } from '../core/types';
import { MssqlTableReads } from './compare';
import { errorNumber } from './connection';
import { storedSchema } from './mirror-keys';
import * as mirrorSql from './mirror-sql';
import { RESET_ISOLATION_SQL } from './snapshot';
import { streamRows, type QueryParam } from './stream';
import { tableRef } from './tsql';

/** Whether this database allows SNAPSHOT transactions now (sys.databases.snapshot_isolation_state 1 = ON). */
export const SNAPSHOT_ALLOWED_SQL = `SELECT CAST(CASE WHEN d.snapshot_isolation_state = 1 THEN 1 ELSE 0 END AS int) AS allowed
FROM sys.databases AS d WHERE d.database_id = DB_ID()`;

/** @state: the state table's quoted two-part name; 1 when it exists. */
export const STATE_TABLE_EXISTS_SQL = `SELECT CASE WHEN OBJECT_ID(@state, N'U') IS NULL THEN 0 ELSE 1 END AS present`;

/** SQL Server error 3961: a SNAPSHOT transaction read an object that DDL changed since the transaction began. */
const SNAPSHOT_DDL_CONFLICT = 3961;

export class MssqlMirrorTableSnapshot implements MirrorTableSnapshot {
  private queue: Promise<void> = Promise.resolve();
  private readonly reads: MssqlTableReads;

  private constructor(
    private readonly tx: sql.Transaction,
    readonly state: MirrorTableState | null,
    readonly consistent: boolean,
    relation: string,
    private readonly ctx: ErrorContext,
  ) {
    this.reads = new MssqlTableReads({
      query: (text, params) =>
        this.exclusive(async () => {
          const r = new sql.Request(this.tx);
          for (const p of params) r.input(p.name, p.type, p.value);
          return (await r.query(text)).recordset;
        }),
      lines: (_table, text, params, toLine) => this.lines(text, params, toLine),
      // The mirror's own declarations (bounded keys, types it stores differently), read back as types.
      target: async (table) => ({ relation, table: storedSchema(table), declared: () => undefined }),
    });
  }

  static async open(pool: sql.ConnectionPool, schema: string, table: TableSchema, ctx: ErrorContext): Promise<MssqlMirrorTableSnapshot> {
    let tx: sql.Transaction | null = null;
    try {
      const allowed = (await pool.request().query<{ allowed: number }>(SNAPSHOT_ALLOWED_SQL)).recordset[0]?.allowed === 1;
      tx = new sql.Transaction(pool);
      await tx.begin(allowed ? sql.ISOLATION_LEVEL.SNAPSHOT : sql.ISOLATION_LEVEL.READ_COMMITTED);
      const state = await readTableState(tx, schema, table.name);
      return new MssqlMirrorTableSnapshot(tx, state, allowed, tableRef(schema, mirrorSql.mirrorRelation(table.name)), ctx);
    } catch (err) {
      if (tx) await tx.rollback().catch(() => undefined);
      throw classify(err, ctx);
    }
  }

  get digestForms(): readonly DigestForm[] {
    return this.reads.digestForms;
  }

  splitPoints(table: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]> {
    return this.guard(() => this.reads.splitPoints(table, range, parts));
  }

  rangeDigests(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]> {
    return this.guard(() => this.reads.rangeDigests(table, ranges, opts));
  }

  rowHashes(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]> {
    return this.guard(() => this.reads.rowHashes(table, ranges, opts));
  }

  async close(): Promise<void> {
    await this.queue;
    try {
      // A snapshot transaction leaves its isolation level on the pooled connection.
      await new sql.Request(this.tx).batch(RESET_ISOLATION_SQL);
      await this.tx.commit();
    } catch {
      await this.tx.rollback().catch(() => undefined);
    }
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classify(err, this.ctx);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const task = this.queue.then(fn);
    this.queue = task.then(
      () => undefined,
      () => undefined,
    );
    return task;
  }

  /** A streamed statement on the transaction; later statements wait until it has ended. */
  private lines(text: string, params: QueryParam[], toLine: (row: unknown[]) => string): Readable {
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const turn = this.queue;
    this.queue = this.queue.then(() => done);
    const handle = streamRows({
      makeRequest: () => new sql.Request(this.tx),
      text: () => text,
      params,
      toLine,
      prepare: () => turn,
      mapError: (err) => classify(err, this.ctx),
    });
    void handle.finished.then(release);
    return handle.readable;
  }
}

async function readTableState(tx: sql.Transaction, schema: string, table: string): Promise<MirrorTableState | null> {
  const present = await new sql.Request(tx)
    .input('state', sql.NVarChar(300), tableRef(schema, mirrorSql.STATE_TABLE))
    .query<{ present: number }>(STATE_TABLE_EXISTS_SQL);
  if (present.recordset[0]?.present !== 1) return null;
  const rows = (await new sql.Request(tx).query<StateRow & { needs_backfill: number | null }>(mirrorSql.readStateSql(schema))).recordset;
  const row = rows.find((r) => r.table_name === table);
  return row ? { ...toTableState(row), needsBackfill: row.needs_backfill === 1 } : null;
}

function classify(err: unknown, ctx: ErrorContext): MirrorError {
  if (errorNumber(err) === SNAPSHOT_DDL_CONFLICT) {
    return new MirrorError(FailureType.MirrorBusy, 'the mirror table was replaced (a population swapped in) while it was compared', ctx, { cause: err });
  }
  return toMirrorError(err, ctx, FailureType.Unavailable);
}
