/**
 * One SNAPSHOT transaction of a SQL Server source: the version read first, then min valid versions, rows and net
 * changes, all consistent with each other (see source.ts for why the order matters).
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { encodeLine } from '../core/copy-text';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import type { KeyValues, LogicalType, SourceFingerprint, SourceSnapshot, TableSchema, Version } from '../core/types';
import { discontinuity } from '../core/versions';
import type { DeclaredTypes } from './catalog';
import { streamRows, type QueryParam, type RowStreamHandle } from './stream';
import { col, fromTextExpr, keyColumns, q, readExpr, tableRef } from './tsql';
import { copyFieldToMssql, mssqlToCopyField } from './values';

/** First statement of a snapshot transaction: the version the mirror's LSN becomes (NULL: tracking is off). */
export const CURRENT_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_CURRENT_VERSION()) AS version`;

/** NULL when the table is not tracked (or the database is not, or the name is unknown). */
export const MIN_VALID_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object))) AS min_valid_version`;

/** A snapshot transaction leaves its isolation level on the pooled connection; this puts the default back. */
export const RESET_ISOLATION_SQL = `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`;

/**
 * "key > (@k0, @k1, ...)" in key order, as T-SQL has no row-value comparison:
 * k0 >= @k0 AND (k0 > @k0 OR (k0 = @k0 AND (k1 > @k1 OR ...))). The leading `>=` lets the optimizer seek.
 */
export function keyAfterPredicate(
  table: TableSchema,
  alias: string,
  param: (i: number) => string,
  declaredType: (column: string) => string | undefined = () => undefined,
): string {
  const keys = keyColumns(table);
  const v = (i: number): string => keyValueExpr(keys[i]!.type, param(i), declaredType(keys[i]!.name));
  const build = (i: number): string => {
    const c = col(alias, keys[i]!.name);
    if (i === keys.length - 1) return `${c} > ${v(i)}`;
    return `(${c} > ${v(i)} OR (${c} = ${v(i)} AND ${build(i + 1)}))`;
  };
  if (keys.length === 1) return build(0);
  return `${col(alias, keys[0]!.name)} >= ${v(0)} AND ${build(0)}`;
}

/**
 * A key parameter compared with a key column. A string parameter is cast to the column's own declared type, so the
 * comparison uses exactly the column's collation and sort order (an nvarchar parameter against a varchar column
 * with a SQL_* collation would compare in Unicode order, which need not be the ORDER BY order).
 */
function keyValueExpr(type: LogicalType, param: string, declared: string | undefined): string {
  if (type.kind === 'string' && declared !== undefined) return `CAST(${param} AS ${declared})`;
  return fromTextExpr(type, param);
}

/**
 * Every row (after a key, when given as parameters @k0..@kn), in key order, each column read as a string.
 * `declaredType` gives a key column's declaration (e.g. varchar(20)) for the comparison.
 */
export function rowsSql(
  table: TableSchema,
  afterKey: boolean,
  declaredType: (column: string) => string | undefined = () => undefined,
): string {
  const { schema, table: name } = table.source;
  const select = table.columns.map((c, i) => `${readExpr(c.type, col('t', c.name))} AS ${q(`c${i}`)}`).join(',\n  ');
  const where = afterKey ? `\nWHERE ${keyAfterPredicate(table, 't', (i) => `@k${i}`, declaredType)}` : '';
  const order = table.primaryKey.map((k) => col('t', k)).join(', ');
  return `SELECT ${select}\nFROM ${tableRef(schema, name)} AS t${where}\nORDER BY ${order}`;
}

/**
 * Net changes since @from (a decimal string: bigint does not fit a JS number), as Microsoft documents them: the
 * CHANGES rows outer-joined to the table on the primary key, so a key whose row is gone comes back with NULLs
 * ('D': delete it) and any other key with its current row ('U': upsert). CHANGETABLE's last_sync_version must be
 * a scalar, not an expression, hence the variable. Rows with SYS_CHANGE_VERSION > @v are returned.
 */
export function changesSql(table: TableSchema): string {
  const { schema, table: name } = table.source;
  const keys = new Set(table.primaryKey);
  const present = col('t', table.primaryKey[0]!);
  const select = table.columns
    .map((c, i) => {
      // Key values come from the change table (they exist for deletes too); the rest from the current row.
      const source = keys.has(c.name) ? col('ct', c.name) : col('t', c.name);
      return `${readExpr(c.type, source)} AS ${q(`c${i}`)}`;
    })
    .join(',\n  ');
  const join = table.primaryKey.map((k) => `${col('t', k)} = ${col('ct', k)}`).join(' AND ');
  return `DECLARE @v bigint = CAST(@from AS bigint);
SELECT CASE WHEN ${present} IS NULL THEN 'D' ELSE 'U' END AS [op],
  ${select}
FROM CHANGETABLE(CHANGES ${tableRef(schema, name)}, @v) AS ct
LEFT OUTER JOIN ${tableRef(schema, name)} AS t ON ${join}`;
}

/**
 * One SNAPSHOT transaction: one connection, so requests run one after another. Streams are serialized: a stream
 * starts reading when the previous one has ended (consume them one at a time).
 */
export class MssqlSnapshot implements SourceSnapshot {
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly open = new Set<RowStreamHandle>();

  constructor(
    private readonly tx: sql.Transaction,
    readonly version: Version,
    readonly fingerprint: SourceFingerprint,
    tenant: string,
    private readonly declaredTypes: (t: TableSchema) => Promise<DeclaredTypes>,
  ) {
    this.ctx = contextFor(tenant, 'source');
  }

  private readonly ctx: (operation: string, table?: string) => ErrorContext;


  /** Runs `fn` after everything queued before it; the returned promise settles when fn's work is over. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  async minValidVersion(table: TableSchema): Promise<Version | null> {
    return this.exclusive(() => this.readMinValid(table)).catch((err: unknown) => {
      throw toMirrorError(err, this.ctx('min valid version', table.name), FailureType.SourceReadFailed);
    });
  }

  private async readMinValid(table: TableSchema): Promise<Version | null> {
    const res = await new sql.Request(this.tx)
      .input('object', sql.NVarChar(4000), tableRef(table.source.schema, table.source.table))
      .query<{ min_valid_version: string | null }>(MIN_VALID_VERSION_SQL);
    return res.recordset[0]?.min_valid_version ?? null;
  }

  // Issue 13 (tracking disabled and re-enabled on an idle database) adds the table's begin_version here.
  async tableFingerprint(_table: TableSchema): Promise<SourceFingerprint> {
    return this.fingerprint;
  }

  changes(table: TableSchema, fromVersion: Version): Readable {
    if (!/^\d+$/.test(fromVersion)) {
      throw new MirrorError(FailureType.BadConfig, `not a SQL Server change tracking version: ${JSON.stringify(fromVersion)}`, this.ctx('read changes', table.name));
    }
    const types = table.columns.map((c) => c.type);
    const toLine = (row: unknown[]): string => {
      const op = row[0] === 'D' ? 'D' : 'U';
      return encodeLine([op, ...types.map((t, i) => mssqlToCopyField(t, row[i + 1]))]);
    };
    // Validated inside the same snapshot as the read, so retention cleanup cannot slip in between (Microsoft's
    // "obtaining consistent and correct results").
    const validate = async (): Promise<void> => {
      const min = await this.readMinValid(table);
      if (min === null) {
        throw new MirrorError(FailureType.TrackingExpired, 'change tracking is not enabled on this table (or it was disabled): repopulate', this.ctx('read changes', table.name));
      }
      const broken = discontinuity(fromVersion, this.version, min);
      if (broken) throw new MirrorError(broken.type, `${broken.detail}: repopulate`, this.ctx('read changes', table.name));
    };
    return this.stream(() => changesSql(table), [{ name: 'from', type: sql.VarChar(20), value: fromVersion }], toLine, table, 'read changes', validate);
  }

  rows(table: TableSchema, afterKey?: KeyValues): Readable {
    const types = table.columns.map((c) => c.type);
    const toLine = (row: unknown[]): string => encodeLine(types.map((t, i) => mssqlToCopyField(t, row[i])));
    if (!afterKey) return this.stream(() => rowsSql(table, false), [], toLine, table, 'read rows');
    const keyTypes = keyColumns(table).map((k) => k.type);
    if (afterKey.length !== keyTypes.length) {
      throw new MirrorError(FailureType.BadConfig, `resume key has ${afterKey.length} values, the primary key ${keyTypes.length}`, this.ctx('read rows', table.name));
    }
    const params: QueryParam[] = afterKey.map((v, i) => ({ name: `k${i}`, type: sql.NVarChar(sql.MAX), value: copyFieldToMssql(keyTypes[i]!, v) }));
    let text = '';
    const prepare = async (): Promise<void> => {
      const declared = await this.declaredTypes(table);
      text = rowsSql(table, true, (c) => declared.get(c));
    };
    return this.stream(() => text, params, toLine, table, 'read rows', prepare);
  }

  private stream(
    text: () => string,
    params: QueryParam[],
    toLine: (row: unknown[]) => string,
    table: TableSchema,
    operation: string,
    prepare?: () => Promise<void>,
  ): Readable {
    if (this.closed) throw new MirrorError(FailureType.SourceReadFailed, 'snapshot is closed', this.ctx(operation, table.name));
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    // Our turn comes when every earlier request on this transaction has ended; the queue then waits for ours.
    this.queue = this.queue.then(() => {
      openGate();
      return done;
    });
    const handle = streamRows({
      makeRequest: () => new sql.Request(this.tx),
      text,
      params,
      toLine,
      prepare: async () => {
        await gate;
        if (prepare) await prepare();
      },
      mapError: (err) => toMirrorError(err, this.ctx(operation, table.name), FailureType.SourceReadFailed),
    });
    void handle.finished.then(() => {
      this.open.delete(handle);
      release();
    });
    this.open.add(handle);
    return handle.readable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Streams nobody read are let go; one being read runs to its end (destroyed, it is drained) first.
    for (const h of this.open) {
      h.abandon();
      h.readable.destroy();
    }
    await this.queue;
    try {
      await new sql.Request(this.tx).batch(RESET_ISOLATION_SQL);
      await this.tx.commit();
    } catch (err) {
      await this.tx.rollback().catch(() => undefined);
      throw toMirrorError(err, this.ctx('close snapshot'), FailureType.SourceReadFailed);
    }
  }
}
