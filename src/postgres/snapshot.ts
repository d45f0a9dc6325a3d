/**
 * A consistent read of a PostgreSQL source: one REPEATABLE READ snapshot whose version is its commit-safe
 * horizon, streaming rows and net changes as COPY text straight from the server, with the SQL of those reads.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { KeyValues, LogicalType, SourceFingerprint, SourceSnapshot, TableSchema, Version } from '../core/types';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import { literalPg, quotePg } from '../core/identifiers';
import { discontinuity } from '../core/versions';
import { readFingerprint, readNativeKey, type NativeKeyColumn, type Queryable } from './catalog';
import { connectClient } from './connection';
import { isUsable, qualifiedSide, qualifiedTable, readTrackingState, sideKeyColumn } from './tracking';

/**
 * One REPEATABLE READ READ ONLY transaction on one dedicated connection. Its version is the snapshot's xmin
 * horizon: every xid below it has ended, so a change with a smaller xid can no longer appear later — unlike
 * "the largest xid seen", which a slow writer that started earlier and commits later would slip under.
 *
 * One connection runs one COPY at a time: streams (and minValidVersion) are queued and start in call order, each
 * when the previous one has ended. Consume streams one after another, in the order they were requested; a stream
 * that is never consumed holds up every later one. A stream that fails or is destroyed before its end leaves the
 * connection unusable: the snapshot then fails every later call, and close() discards the connection.
 */
export class PgSourceSnapshot implements SourceSnapshot {
  private queue: Promise<void> = Promise.resolve();
  private active = 0;
  private broken: Error | null = null;
  private closed = false;
  private readonly keyTypes = new Map<string, NativeKeyColumn[]>();

  private constructor(
    private readonly client: PoolClient,
    readonly version: Version,
    readonly fingerprint: SourceFingerprint,
    private readonly baseCtx: ErrorContext,
    private readonly onClose: (s: PgSourceSnapshot) => void,
  ) {}

  static async open(pool: Pool, ctx: ErrorContext, onClose: (s: PgSourceSnapshot) => void): Promise<PgSourceSnapshot> {
    const client = await connectClient(pool, ctx);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // The first statement fixes the transaction's snapshot; its xmin is the version.
      const { rows } = await client.query<{ version: string }>(
        'SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS version',
      );
      const version = rows[0]?.version;
      if (version === undefined) throw new MirrorError(FailureType.SourceReadFailed, 'no snapshot version', ctx);
      const fingerprint = await readFingerprint(client);
      return new PgSourceSnapshot(client, version, fingerprint, ctx, onClose);
    } catch (err) {
      client.release(true);
      throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
    }
  }

  private ctx(operation: string, table: TableSchema): ErrorContext {
    return { ...this.baseCtx, operation, table: table.name };
  }

  /** Runs `fn` when everything requested before it has finished. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const task = this.queue.then(() => {
      if (this.closed) throw new MirrorError(FailureType.SourceReadFailed, 'snapshot is closed', this.baseCtx);
      if (this.broken) throw new MirrorError(FailureType.SourceReadFailed, 'snapshot connection failed earlier', this.baseCtx, { cause: this.broken });
      return fn();
    });
    this.queue = task.then(
      () => undefined,
      () => undefined,
    );
    return task;
  }

  /**
   * Statements on the snapshot connection. A server-side error aborts the transaction, so any failure breaks the
   * snapshot for good.
   */
  private readonly db: Queryable = {
    query: async <R extends QueryResultRow>(text: string, values: unknown[] = []): Promise<{ rows: R[] }> => {
      try {
        return await this.client.query<R>(text, values);
      } catch (err) {
        this.broken ??= err instanceof Error ? err : new Error(String(err));
        throw err;
      }
    },
  };

  minValidVersion(table: TableSchema): Promise<Version | null> {
    const ctx = this.ctx('read min valid version', table);
    return this.exclusive(async () => {
      try {
        const state = await readTrackingState(this.db, table);
        // Tracking that stopped recording (table recreated, triggers dropped or disabled, key changed) counts as
        // absent: the caller enables it again, which raises the min valid version.
        return isUsable(state, table) ? state.minValidVersion : null;
      } catch (err) {
        throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
      }
    });
  }

  /** PostgreSQL raises the table's min valid version whenever its tracking restarts: nothing per table to add. */
  async tableFingerprint(_table: TableSchema): Promise<SourceFingerprint> {
    return this.fingerprint;
  }

  changes(table: TableSchema, fromVersion: Version): Readable {
    const ctx = this.ctx('read changes', table);
    return this.stream(ctx, async () => {
      assertVersion(fromVersion);
      // Horizons never go back on one server: a mirror ahead of the source saw a different history.
      const restored = discontinuity(fromVersion, this.version, null);
      if (restored) throw new MirrorError(restored.type, restored.detail, ctx);
      const state = await readTrackingState(this.db, table);
      if (!isUsable(state, table)) {
        throw new MirrorError(FailureType.TrackingExpired, 'change tracking is not (or no longer) recording this table', ctx);
      }
      const expired = discontinuity(fromVersion, this.version, state.minValidVersion);
      if (expired) throw new MirrorError(expired.type, expired.detail, ctx);
      return changesSql(table, state.sideTable, fromVersion, this.version);
    });
  }

  rows(table: TableSchema, afterKey?: KeyValues): Readable {
    const ctx = this.ctx('read rows', table);
    return this.stream(ctx, async () => {
      const after = afterKey && afterKey.length > 0 ? await this.keyPredicate(table, afterKey, ctx) : null;
      return rowsSql(table, after);
    });
  }

  /** `(k1, k2) > ('v1'::type1, 'v2'::type2)` — COPY takes no bind parameters, so the values become literals. */
  private async keyPredicate(table: TableSchema, afterKey: KeyValues, ctx: ErrorContext): Promise<string> {
    let key = this.keyTypes.get(table.name);
    if (!key) {
      key = await readNativeKey(this.db, table);
      this.keyTypes.set(table.name, key);
    }
    const types = key;
    if (types.length !== table.primaryKey.length || types.some((k, i) => k.name !== table.primaryKey[i])) {
      throw new MirrorError(FailureType.SourceReadFailed, 'primary key changed since the table was listed', ctx);
    }
    return keyAfterPredicate(table.primaryKey, types.map((t) => t.type), afterKey, ctx);
  }

  private stream(ctx: ErrorContext, prepare: () => Promise<string>): Readable {
    const out = new PassThrough();
    this.exclusive(async () => {
      if (out.destroyed) return;
      const sql = await prepare();
      this.active++;
      try {
        await copyInto(this.client.query(copyTo(sql)), out);
      } catch (err) {
        // Cut short, the connection still has the rest of the COPY output pending; failed on the server, the
        // transaction is aborted. Either way nothing more can be read in this snapshot.
        this.broken ??= err instanceof Error ? err : new Error(String(err));
        throw err;
      } finally {
        this.active--;
      }
    }).catch((err: unknown) => {
      if (!out.destroyed) out.destroy(toMirrorError(err, ctx, FailureType.SourceReadFailed));
    });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    if (this.broken || this.active > 0) {
      this.client.release(true);
      return;
    }
    try {
      await this.client.query('COMMIT');
      this.client.release();
    } catch {
      this.client.release(true);
    }
  }
}

/**
 * Pipes a COPY stream into `out` and settles when it has all been handed over. Unlike stream.pipeline, a failure
 * does not reach `out` as the raw driver error: the caller destroys `out` with a classified one. `out` closing
 * early (the consumer gave up) rejects too, since the COPY is then left unfinished on the connection.
 */
function copyInto(copy: Readable, out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    copy.once('error', (err) => {
      done = true;
      copy.unpipe(out);
      reject(err);
    });
    copy.once('end', () => {
      done = true;
      resolve();
    });
    out.once('close', () => {
      if (done) return;
      copy.unpipe(out);
      copy.destroy();
      reject(new Error('the consumer closed the stream before its end'));
    });
    copy.pipe(out);
  });
}

/** Every row after `after` (a ready predicate), all columns in schema order, in key order. */
export function rowsSql(table: TableSchema, after: string | null): string {
  const cols = table.columns.map((c) => columnExpr(quotePg(c.name), c.type)).join(', ');
  const order = table.primaryKey.map(quotePg).join(', ');
  return `COPY (SELECT ${cols} FROM ${qualifiedTable(table)}${after ? ` WHERE ${after}` : ''} ORDER BY ${order}) TO STDOUT`;
}

/** The row-comparison predicate for "key greater than these values"; values are COPY text fields (decoded). */
export function keyAfterPredicate(key: string[], types: string[], values: KeyValues, ctx: ErrorContext = {}): string {
  if (values.length !== key.length) {
    throw new MirrorError(FailureType.BadConfig, `resume key has ${values.length} values, the primary key ${key.length}`, ctx);
  }
  const literals = values.map((v, i) => {
    if (v === null) throw new MirrorError(FailureType.BadConfig, 'resume key contains NULL', ctx);
    return `${literalPg(v)}::${types[i]}`;
  });
  return `(${key.map(quotePg).join(', ')}) > (${literals.join(', ')})`;
}

/**
 * Net changes as COPY text, one line per key: `U` + the current row when the key has a row in this snapshot,
 * else `D` + the key (other columns NULL). The recorded op is not consulted: xids do not order two writes to
 * the same key, the row itself does.
 */
export function changesSql(table: TableSchema, side: string, from: Version, to: Version): string {
  const keyIndex = new Map(table.primaryKey.map((c, i) => [c, i]));
  const cols = table.columns.map((c) => {
    const i = keyIndex.get(c.name);
    return i === undefined ? columnExpr(`t.${quotePg(c.name)}`, c.type) : columnExpr(`k.${sideKeyColumn(i)}`, c.type);
  });
  const sideCols = table.primaryKey.map((_, i) => sideKeyColumn(i)).join(', ');
  const join = table.primaryKey.map((c, i) => `t.${quotePg(c)} = k.${sideKeyColumn(i)}`).join(' AND ');
  const exists = `CASE WHEN t.${quotePg(table.primaryKey[0] ?? '')} IS NULL THEN 'D' ELSE 'U' END`;
  return (
    `COPY (SELECT ${[exists, ...cols].join(', ')} ` +
    `FROM (SELECT DISTINCT ${sideCols} FROM ${qualifiedSide(side)} ` +
    `WHERE xid >= ${literalPg(assertVersion(from))}::xid8 AND xid < ${literalPg(assertVersion(to))}::xid8) k ` +
    `LEFT JOIN ${qualifiedTable(table)} t ON ${join}) TO STDOUT`
  );
}

/**
 * A column as it goes on the wire. money's text form depends on lc_monetary ("$1,234.50") and the mirror stores it
 * as numeric, so it is sent as numeric; every other type's own text form is what the mirror loads.
 */
export function columnExpr(expr: string, type: LogicalType): string {
  if (type.kind === 'money') return `${expr}::numeric`;
  if (type.kind === 'array' && type.element.kind === 'money') return `${expr}::numeric[]`;
  return expr;
}

export function assertVersion(v: string): string {
  if (!/^\d{1,20}$/.test(v)) throw new MirrorError(FailureType.BadConfig, `not a PostgreSQL source version: ${JSON.stringify(v)}`);
  return v;
}
