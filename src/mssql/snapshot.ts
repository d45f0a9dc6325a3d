/**
 * One SNAPSHOT transaction of a SQL Server source: the version read first, then min valid versions, rows and net
 * changes, all consistent with each other (see source.ts for why the order matters).
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { encodeLine } from '../core/copy-text';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import type {
  ComparableSnapshot,
  DigestForm,
  DigestOptions,
  KeyRange,
  KeyValues,
  LogicalType,
  RangeDigest,
  RowHash,
  SourceFingerprint,
  TableSchema,
  Version,
} from '../core/types';
import { discontinuity } from '../core/versions';
import type { DeclaredTypes } from './catalog';
import { MssqlTableReads } from './compare';
import { streamRows, type QueryParam, type RowStreamHandle } from './stream';
import { col, fromTextExpr, keyColumns, q, readExpr, tableRef, UNAVAILABLE } from './tsql';
import { copyFieldToMssql, mssqlToCopyField } from './values';

/** First statement of a snapshot transaction: the version the mirror's LSN becomes (NULL: tracking is off). */
export const CURRENT_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_CURRENT_VERSION()) AS version`;

/**
 * NULL when the table is not tracked, the database is not, the name is unknown, or the login lacks VIEW CHANGE
 * TRACKING on the table: the permission is read beside it (HAS_PERMS_BY_NAME: 1 granted, 0 not, NULL for an unknown
 * securable), so a missing grant is not taken for expired tracking.
 */
export const MIN_VALID_VERSION_SQL = `SELECT CONVERT(varchar(20), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@object))) AS min_valid_version,
  HAS_PERMS_BY_NAME(@object, N'OBJECT', N'VIEW CHANGE TRACKING') AS can_view_tracking, USER_NAME() AS user_name`;

/**
 * What identifies the table's current tracking incarnation (SourceSnapshot.tableFingerprint): the version at which
 * tracking began (sys.change_tracking_tables.begin_version: set when tracking is enabled, reset by TRUNCATE), and
 * the internal side table Change Tracking keeps the table's changes in (sys.internal_tables, internal_type 209
 * CHANGE_TRACKING; dropped with tracking, created anew when it is enabled again). On an idle database tracking
 * disabled and enabled again can leave min valid version equal to the mirror's LSN, so the version rule alone
 * cannot see that the changes made meanwhile were never recorded; a changed component can. No row: not tracked,
 * or not visible to this login.
 */
export const TABLE_TRACKING_SQL = `SELECT CONVERT(varchar(20), ctt.begin_version) AS begin_version,
  (SELECT MAX(CONVERT(varchar(11), it.object_id) + '@' + CONVERT(varchar(30), it.create_date, 126))
   FROM sys.internal_tables AS it WHERE it.parent_id = ctt.object_id AND it.internal_type = 209) AS side_table
FROM sys.change_tracking_tables AS ctt WHERE ctt.object_id = OBJECT_ID(@object)`;

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
 * A key parameter compared with a key column: its text parsed by the logical type's lossless conversion, then cast
 * to the column's own declared type, so the comparison is exactly in the column's type and order. A string compares
 * in the column's collation (an nvarchar parameter against a varchar column with a SQL_* collation would compare in
 * Unicode order, which need not be the ORDER BY order); a `datetime` compares as datetime (its '.997' is really
 * .99666…, which a datetime2(3) parameter would put after the row, skipping the rest of a composite key's rows).
 * rowversion cannot be a CAST target; its 8 bytes compare as binary(8).
 */
export function keyValueExpr(type: LogicalType, param: string, declared: string | undefined): string {
  const parsed = fromTextExpr(type, param);
  if (declared === undefined) return parsed;
  const target = declared === 'timestamp' || declared === 'rowversion' ? 'binary(8)' : declared;
  return `CAST(${parsed} AS ${target})`;
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
  // A table without a key is read in no particular order (it is refreshed whole, never resumed).
  return `SELECT ${select}\nFROM ${tableRef(schema, name)} AS t${where}${order ? `\nORDER BY ${order}` : ''}`;
}

/**
 * Net changes since @from (a decimal string: bigint does not fit a JS number), as Microsoft documents them: the
 * CHANGES rows outer-joined to the table on the primary key, so a key whose row is gone comes back with NULLs
 * ('D': delete it) and any other key with its current row ('U': upsert). CHANGETABLE's last_sync_version must be
 * a scalar, not an expression, hence the variable. Rows with SYS_CHANGE_VERSION > @v are returned.
 *
 * Columns: [op], the row's columns c0..cn from the table (keys included: NULL for a deleted row), then the key as
 * Change Tracking recorded it, k0..km. The row's key is the one to upsert: under a case-insensitive collation the
 * join matches a key whose case was changed, and Change Tracking may still spell it the old way ('a' for 'A'); a
 * mirror that tells 'a' from 'A' must receive 'A'. changeLines then also deletes the recorded spelling.
 */
export function changesSql(table: TableSchema): string {
  const { schema, table: name } = table.source;
  const present = col('t', table.primaryKey[0]!);
  const row = table.columns.map((c, i) => `${readExpr(c.type, col('t', c.name))} AS ${q(`c${i}`)}`);
  const recorded = keyColumns(table).map((k, j) => `${readExpr(k.type, col('ct', k.name))} AS ${q(`k${j}`)}`);
  const join = table.primaryKey.map((k) => `${col('t', k)} = ${col('ct', k)}`).join(' AND ');
  return `DECLARE @v bigint = CAST(@from AS bigint);
SELECT CASE WHEN ${present} IS NULL THEN 'D' ELSE 'U' END AS [op],
  ${[...row, ...recorded].join(',\n  ')}
FROM CHANGETABLE(CHANGES ${tableRef(schema, name)}, @v) AS ct
LEFT OUTER JOIN ${tableRef(schema, name)} AS t ON ${join}`;
}

/**
 * The COPY text lines of one row of changesSql: 'D' with the recorded key, or 'U' with the row, preceded by a 'D'
 * of the recorded key when it is spelled otherwise than the row's (a case-only or trailing-space-only key update
 * under the source's collation: the mirror may hold the old spelling as a key of its own).
 */
export function changeLines(table: TableSchema, row: readonly unknown[]): string {
  const types = table.columns.map((c) => c.type);
  const keyIndexes = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k));
  const fields = types.map((t, i) => mssqlToCopyField(t, row[i + 1]));
  const recorded = keyIndexes.map((ci, j) => mssqlToCopyField(types[ci]!, row[1 + types.length + j]));
  const deleteRecorded = (): string => {
    const keyed: (string | null)[] = types.map(() => null);
    keyIndexes.forEach((ci, j) => (keyed[ci] = recorded[j] ?? null));
    return encodeLine(['D', ...keyed]);
  };
  if (row[0] === 'D') return deleteRecorded();
  const respelled = keyIndexes.some((ci, j) => fields[ci] !== recorded[j]);
  return (respelled ? deleteRecorded() : '') + encodeLine(['U', ...fields]);
}

/**
 * One SNAPSHOT transaction: one connection, so requests run one after another (the driver refuses two at once).
 * Streams are serialized in the order they are first read: a stream starts when every request queued before it has
 * ended, so two streams read at the same time must both be consumed (or one of them waits for ever). *
 * It also compares tables range by range (TableRangeReads, for tenant-mirror verify), through the same queue.
 */
export class MssqlSnapshot implements ComparableSnapshot {
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

  /** Range reads for a comparison (tenant-mirror verify), through the same queue as every request. */
  private readonly compare = new MssqlTableReads({
    query: (text, params) =>
      this.exclusive(async () => {
        const r = new sql.Request(this.tx);
        for (const p of params) r.input(p.name, p.type, p.value);
        return (await r.query(text)).recordset;
      }),
    lines: (table, text, params, toLine) => this.stream(() => text, params, toLine, table, 'compare'),
    target: async (table) => {
      const declared = await this.declaredTypes(table);
      return { relation: tableRef(table.source.schema, table.source.table), table, declared: (c) => declared.get(c) };
    },
  });

  get digestForms(): readonly DigestForm[] {
    return this.compare.digestForms;
  }

  splitPoints(table: TableSchema, range: KeyRange, parts: number): Promise<KeyValues[]> {
    return this.compared(table, () => this.compare.splitPoints(table, range, parts));
  }

  rangeDigests(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RangeDigest[]> {
    return this.compared(table, () => this.compare.rangeDigests(table, ranges, opts));
  }

  rowHashes(table: TableSchema, ranges: KeyRange[], opts: DigestOptions): Promise<RowHash[]> {
    return this.compared(table, () => this.compare.rowHashes(table, ranges, opts));
  }

  private async compared<T>(table: TableSchema, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toMirrorError(err, this.ctx('compare', table.name), FailureType.SourceReadFailed);
    }
  }

  async minValidVersion(table: TableSchema): Promise<Version | null> {
    return this.exclusive(() => this.readMinValid(table)).catch((err: unknown) => {
      throw toMirrorError(err, this.ctx('min valid version', table.name), FailureType.SourceReadFailed);
    });
  }

  private async readMinValid(table: TableSchema): Promise<Version | null> {
    const object = tableRef(table.source.schema, table.source.table);
    const res = await new sql.Request(this.tx)
      .input('object', sql.NVarChar(4000), object)
      .query<{ min_valid_version: string | null; can_view_tracking: number | null; user_name: string | null }>(MIN_VALID_VERSION_SQL);
    const row = res.recordset[0];
    if (row?.min_valid_version == null && row?.can_view_tracking === 0) throw missingViewChangeTracking(object, row.user_name);
    return row?.min_valid_version ?? null;
  }

  async tableFingerprint(table: TableSchema): Promise<SourceFingerprint> {
    const facts = await this.exclusive(() => this.readTableTracking(table)).catch((err: unknown) => {
      throw toMirrorError(err, this.ctx('table fingerprint', table.name), FailureType.SourceReadFailed);
    });
    return { ...this.fingerprint, 'table.trackingBegin': facts.begin, 'table.trackingSideTable': facts.sideTable };
  }

  private async readTableTracking(table: TableSchema): Promise<{ begin: string; sideTable: string }> {
    const res = await new sql.Request(this.tx)
      .input('object', sql.NVarChar(4000), tableRef(table.source.schema, table.source.table))
      .query<{ begin_version: string | null; side_table: string | null }>(TABLE_TRACKING_SQL);
    const row = res.recordset[0];
    return { begin: row?.begin_version ?? UNAVAILABLE, sideTable: row?.side_table ?? UNAVAILABLE };
  }

  changes(table: TableSchema, fromVersion: Version): Readable {
    if (!/^\d+$/.test(fromVersion)) {
      throw new MirrorError(FailureType.BadConfig, `not a SQL Server change tracking version: ${JSON.stringify(fromVersion)}`, this.ctx('read changes', table.name));
    }
    const toLine = (row: unknown[]): string => changeLines(table, row);
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
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    // A stream takes its place in the queue when it is first read, not when it is made: one nobody reads (yet)
    // must not hold back the requests asked for after it. Its turn comes when every request queued before has
    // ended; the queue then waits for this one.
    let turn: Promise<void> | null = null;
    const takeTurn = (): Promise<void> =>
      (turn ??= new Promise<void>((resolve) => {
        this.queue = this.queue.then(() => {
          resolve();
          return done;
        });
      }));
    const handle = streamRows({
      makeRequest: () => new sql.Request(this.tx),
      text,
      params,
      toLine,
      prepare: async () => {
        await takeTurn();
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

/** Without VIEW CHANGE TRACKING the min valid version reads as NULL: say which grant is missing, and block. */
function missingViewChangeTracking(object: string, user: string | null): MirrorError {
  const grantee = user ? q(user) : '<the source login\'s user>';
  return new MirrorError(
    FailureType.AuthFailed,
    `the source login may not read change tracking of ${object} (CHANGE_TRACKING_MIN_VALID_VERSION is NULL without it): GRANT VIEW CHANGE TRACKING ON ${object} TO ${grantee}`,
  );
}
