/**
 * One PostgreSQL mirror table read for a comparison (tenant-mirror verify): a REPEATABLE READ READ ONLY transaction
 * that locks the table (ACCESS SHARE) before its snapshot is taken, then reads the table's `_mirror_state` row in
 * that snapshot. Data and LSN change in one transaction (and a population's swap needs ACCESS EXCLUSIVE, which the
 * lock holds off), so the rows read are exactly those at that LSN — save the first batches of a change cycle in
 * flight, which the source's changes since that LSN name.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { toTableState, type StateRow } from '../core/mirror-common';
import { FailureType, toMirrorError, type ErrorContext } from '../core/errors';
import type { DigestForm, DigestOptions, KeyRange, KeyValues, MirrorTableSnapshot, MirrorTableState, RangeDigest, RowHash, TableSchema } from '../core/types';
import { PgTableReads } from './compare';
import { mirrorSide } from './compare-sql';
import { connectClient } from './connection';
import * as sql from './mirror-sql';

export class PgMirrorTableSnapshot implements MirrorTableSnapshot {
  readonly consistent = true;
  private queue: Promise<void> = Promise.resolve();
  private readonly reads: PgTableReads;

  private constructor(
    private readonly client: PoolClient,
    readonly state: MirrorTableState | null,
    schema: string,
    relation: string,
    private readonly ctx: ErrorContext,
  ) {
    this.reads = new PgTableReads(
      {
        query: (text, values) => this.exclusive(() => this.client.query(text, values)),
        copyOut: (text) => this.copyOut(text),
        prepare: async () => undefined,
      },
      () => mirrorSide(schema, relation),
    );
  }

  static async open(pool: Pool, schema: string, table: TableSchema, lockTimeoutMs: number, ctx: ErrorContext): Promise<PgMirrorTableSnapshot> {
    const relation = sql.mirrorRelation(table.name);
    const client = await connectClient(pool, ctx);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(sql.lockTimeoutSql(lockTimeoutMs));
      // Before the first query, which takes the snapshot: locked, the table cannot be swapped or dropped under it.
      await client.query('SAVEPOINT tenant_mirror_compare');
      try {
        await client.query(`LOCK TABLE ${sql.qualified(schema, relation)} IN ACCESS SHARE MODE`);
        await client.query('RELEASE SAVEPOINT tenant_mirror_compare');
      } catch (err) {
        // No such table (not created yet): there is no state to compare either; anything else is an error.
        if (pgCode(err) !== '42P01' && pgCode(err) !== '3F000') throw err;
        await client.query('ROLLBACK TO SAVEPOINT tenant_mirror_compare');
      }
      const state = await readTableState(client, schema, table.name);
      return new PgMirrorTableSnapshot(client, state, schema, relation, ctx);
    } catch (err) {
      client.release(true);
      throw toMirrorError(err, ctx, FailureType.Unavailable);
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
      await this.client.query('COMMIT');
      this.client.release();
    } catch {
      this.client.release(true);
    }
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toMirrorError(err, this.ctx, FailureType.Unavailable);
    }
  }

  private exclusive<T extends QueryResultRow>(fn: () => Promise<{ rows: T[] }>): Promise<{ rows: T[] }> {
    const task = this.queue.then(fn);
    this.queue = task.then(
      () => undefined,
      () => undefined,
    );
    return task;
  }

  /** A COPY on the snapshot's connection; later statements wait until it has been read to its end. */
  private copyOut(text: string): Readable {
    const out = new PassThrough();
    const task = this.queue.then(
      () =>
        new Promise<void>((resolve, reject) => {
          const copy = this.client.query(copyTo(text));
          copy.once('error', (err) => {
            out.destroy(err);
            reject(err);
          });
          copy.once('end', () => resolve());
          copy.pipe(out);
        }),
    );
    this.queue = task.catch(() => undefined);
    return out;
  }
}

/** The table's state row, in the snapshot; null when the mirror has no state table or no row for it. */
async function readTableState(client: PoolClient, schema: string, table: string): Promise<MirrorTableState | null> {
  const present = await client.query<{ ok: boolean }>('SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok', [sql.qualified(schema, sql.STATE_TABLE)]);
  if (!present.rows[0]?.ok) return null;
  const rows = (await client.query<StateRow & { needs_backfill?: boolean }>(sql.readStateSql(schema))).rows;
  const row = rows.find((r) => r.table_name === table);
  return row ? { ...toTableState(row), needsBackfill: row.needs_backfill === true } : null;
}

function pgCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}
