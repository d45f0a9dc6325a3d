/**
 * SQL Server as a change source, with its built-in Change Tracking.
 *
 * Versions and LSN semantics. CHANGE_TRACKING_CURRENT_VERSION() is the version of the last committed tracked
 * transaction, and CHANGETABLE(CHANGES t, @v) returns the changes with SYS_CHANGE_VERSION > @v. A snapshot reads
 * the current version V first, then the rows or changes, all in one SNAPSHOT transaction; the mirror records V as
 * its LSN, and the next cycle passes it back as `fromVersion`. So on SQL Server an LSN means "every change with
 * version <= LSN is applied", and a cycle ships `fromVersion < change <= version` — the PostgreSQL adapter's
 * `fromVersion <= change < version` shifted by one, because PostgreSQL's horizon is the first version *not* yet
 * visible while SQL Server's is the last one that is. Each dialect only ever receives its own versions back, so
 * both read as: the LSN covers everything before the snapshot it came from.
 *
 * Why V is read first: the snapshot of a SNAPSHOT transaction starts at its first data access, so every change
 * with version <= V (committed before V was read) is visible to the reads that follow. A change committed between
 * reading V and the snapshot's start can show up as well; it is shipped with the row as the snapshot sees it, and
 * again by the next cycle (its version is > V) — applied idempotently. None is ever skipped.
 *
 * Deletes: the change rows are outer-joined to the table (as Microsoft documents), so a key whose row is gone
 * comes back with no row: 'D'. The recorded operation is not used; the row decides.
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { encodeLine } from '../core/copy-text';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import type {
  ChangeSource,
  KeyValues,
  SkippedTable,
  SourceFingerprint,
  SourceOptions,
  SourceSnapshot,
  SourceTables,
  TableSchema,
  Version,
} from '../core/types';
import { errorNumber, LazyPool } from './connection';
import { discontinuity } from '../core/versions';
import * as q from './sql';
import { streamRows, type QueryParam, type RowStreamHandle } from './stream';
import { formatMssqlType, mssqlTypeToLogical, type MssqlColumnFacts, type CatalogColumn } from './types';
import { copyFieldToMssql, mssqlToCopyField } from './values';

export type MssqlChangeSourceOptions = SourceOptions;

interface ColumnRow extends CatalogColumn {
  schema_name: string;
  table_name: string;
}

/** SQL Server error numbers: tracking already enabled on the table / on the database (a concurrent enable). */
const ALREADY_TRACKED_TABLE = 4996;
const ALREADY_TRACKED_DATABASE = 5088;

export class MssqlChangeSource implements ChangeSource {
  readonly dialect = 'mssql' as const;
  private readonly tenant: string;
  private readonly connections: LazyPool;
  private readonly ctx: (operation: string, table?: string) => ErrorContext;
  /** Declared types of each table's columns, for key comparisons (see sql.ts keyValueExpr). */
  private readonly declared = new Map<string, Map<string, string>>();

  constructor(opts: MssqlChangeSourceOptions) {
    this.tenant = opts.tenant;
    this.ctx = contextFor(opts.tenant, 'source');
    this.connections = new LazyPool(opts.url, opts.maxConnections, this.ctx('connect'));
  }


  private pool(): Promise<sql.ConnectionPool> {
    return this.connections.get();
  }

  private async run<T>(ctx: ErrorContext, fallback: (typeof FailureType)[keyof typeof FailureType], fn: (pool: sql.ConnectionPool) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.pool());
    } catch (err) {
      throw toMirrorError(err, ctx, fallback);
    }
  }

  async ping(): Promise<void> {
    await this.run(this.ctx('ping'), FailureType.Unavailable, (p) => p.request().query('SELECT 1 AS ok'));
  }

  async listTables(filter: (name: string) => boolean): Promise<SourceTables> {
    return this.run(this.ctx('list tables'), FailureType.SourceReadFailed, async (p) => {
      const res = await p.request().query<ColumnRow>(q.LIST_COLUMNS_SQL);
      const byTable = new Map<string, ColumnRow[]>();
      for (const r of res.recordset) {
        const key = JSON.stringify([r.schema_name, r.table_name]);
        const list = byTable.get(key) ?? [];
        list.push(r);
        byTable.set(key, list);
      }
      const tables: TableSchema[] = [];
      const skipped: SkippedTable[] = [];
      for (const rows of byTable.values()) {
        const { schema_name: schema, table_name: table } = rows[0]!;
        const name = mirrorName(schema, table);
        if (!filter(name)) continue;
        const keyed = rows.filter((r) => r.key_ordinal !== null).sort((a, b) => (a.key_ordinal ?? 0) - (b.key_ordinal ?? 0));
        if (keyed.length === 0) {
          skipped.push({ name, reason: 'no primary key: SQL Server Change Tracking requires one' });
          continue;
        }
        this.declared.set(name, new Map(rows.map((r) => [r.column_name, formatMssqlType(facts(r))])));
        tables.push({
          name,
          source: { schema, table },
          columns: rows.map((r) => ({ name: r.column_name, type: mssqlTypeToLogical(facts(r)), nullable: r.is_nullable })),
          primaryKey: keyed.map((r) => r.column_name),
        });
      }
      return { tables, skipped };
    });
  }

  async enableTracking(table: TableSchema, retentionMs: number): Promise<boolean> {
    const object = q.tableRef(table.source.schema, table.source.table);
    return this.run(this.ctx('enable change tracking', table.name), FailureType.SourceReadFailed, async (p) => {
      const want = q.retentionFor(retentionMs);
      const wantMinutes = q.retentionMinutes(want.amount, want.unit === 'DAYS' ? 3 : want.unit === 'HOURS' ? 2 : 1);
      const db = (await p.request().query<DbState>(q.DATABASE_TRACKING_STATE_SQL)).recordset[0];
      if (!db) throw new MirrorError(FailureType.BadConfig, 'current database not found in sys.databases');
      // DDL must not run under a SNAPSHOT isolation level a pooled connection might still carry.
      const ddl = (text: string) => p.request().batch(`${q.RESET_ISOLATION_SQL};\n${text}`);
      if (db.retention_period === null) {
        await ignoreNumber(ddl(q.enableDatabaseTrackingSql(db.database_name, want)), ALREADY_TRACKED_DATABASE);
      } else if (q.retentionMinutes(db.retention_period, db.retention_period_units ?? 1) < wantMinutes) {
        // Raising a database-wide retention never takes changes away from anyone else.
        await ddl(q.setRetentionSql(db.database_name, want));
      }
      if (db.snapshot_isolation_state !== 1 && db.snapshot_isolation_state !== 3) {
        await ddl(q.allowSnapshotIsolationSql(db.database_name));
      }
      const tracked = await p.request().input('object', sql.NVarChar(4000), object).query(q.TABLE_TRACKED_SQL);
      if (tracked.recordset.length > 0) return false;
      const enabled = await ignoreNumber(ddl(q.enableTableTrackingSql(table.source.schema, table.source.table)).then(() => true), ALREADY_TRACKED_TABLE, false);
      return enabled ?? false;
    });
  }

  async fingerprint(): Promise<SourceFingerprint> {
    return this.run(this.ctx('fingerprint'), FailureType.SourceReadFailed, async (p) => readFingerprint(p.request()));
  }

  async snapshot(): Promise<SourceSnapshot> {
    const ctx = this.ctx('open snapshot');
    const pool = await this.run(ctx, FailureType.Unavailable, async (p) => p);
    const tx = new sql.Transaction(pool);
    try {
      await tx.begin(sql.ISOLATION_LEVEL.SNAPSHOT);
    } catch (err) {
      throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
    }
    try {
      // First statement of the transaction: see the file comment for why the order matters.
      const v = await new sql.Request(tx).query<{ version: string | null }>(q.CURRENT_VERSION_SQL);
      const version = v.recordset[0]?.version ?? null;
      if (version === null) {
        throw new MirrorError(FailureType.TrackingExpired, 'change tracking is not enabled on the source database');
      }
      const fingerprint = await readFingerprint(new sql.Request(tx));
      return new MssqlSnapshot(tx, version, fingerprint, this.tenant, (t) => this.declaredTypes(t));
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
    }
  }

  /** SQL Server cleans up by itself (AUTO_CLEANUP = ON, set when tracking is enabled); min valid versions follow. */
  async cleanup(_retentionMs: number): Promise<void> {
    return;
  }

  async estimateRows(table: TableSchema): Promise<number> {
    const object = q.tableRef(table.source.schema, table.source.table);
    return this.run(this.ctx('estimate rows', table.name), FailureType.SourceReadFailed, async (p) => {
      const res = await p.request().input('object', sql.NVarChar(4000), object).query<{ n: string | null }>(q.ESTIMATE_ROWS_SQL);
      return Number(res.recordset[0]?.n ?? 0);
    });
  }

  async close(): Promise<void> {
    await this.connections.close();
  }

  /** Declared key column types (from listTables, or read now when this process has not listed the table). */
  private async declaredTypes(table: TableSchema): Promise<Map<string, string>> {
    const known = this.declared.get(table.name);
    if (known) return known;
    const p = await this.pool();
    const res = await p
      .request()
      .input('object', sql.NVarChar(4000), q.tableRef(table.source.schema, table.source.table))
      .query<ColumnRow>(q.TABLE_COLUMNS_SQL);
    const map = new Map(res.recordset.map((r) => [r.column_name, formatMssqlType(facts(r))]));
    this.declared.set(table.name, map);
    return map;
  }
}

interface DbState {
  database_name: string;
  retention_period: number | null;
  retention_period_units: number | null;
  snapshot_isolation_state: number;
}

function facts(r: Pick<ColumnRow, 'type_name' | 'max_length' | 'precision' | 'scale'>): MssqlColumnFacts {
  return { typeName: r.type_name, maxLength: r.max_length, precision: r.precision, scale: r.scale };
}

/** `schema.table` with `dbo.` dropped: the name the mirror uses. */
export function mirrorName(schema: string, table: string): string {
  return schema === 'dbo' ? table : `${schema}.${table}`;
}

async function readFingerprint(request: sql.Request): Promise<SourceFingerprint> {
  const res = await request.query<{ database_guid: string | null; recovery_fork_guid: string | null; database_name: string }>(q.FINGERPRINT_SQL);
  const row = res.recordset[0];
  if (!row) throw new MirrorError(FailureType.SourceReadFailed, 'no recovery status for the current database');
  return {
    database_guid: (row.database_guid ?? '').toLowerCase(),
    recovery_fork_guid: (row.recovery_fork_guid ?? '').toLowerCase(),
    database_name: row.database_name,
  };
}

async function ignoreNumber<T>(p: Promise<T>, number: number, fallback?: T): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (errorNumber(err) === number) return fallback;
    throw err;
  }
}

/**
 * One SNAPSHOT transaction: one connection, so requests run one after another. Streams are serialized: a stream
 * starts reading when the previous one has ended (consume them one at a time).
 */
class MssqlSnapshot implements SourceSnapshot {
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly open = new Set<RowStreamHandle>();

  constructor(
    private readonly tx: sql.Transaction,
    readonly version: Version,
    readonly fingerprint: SourceFingerprint,
    tenant: string,
    private readonly declaredTypes: (t: TableSchema) => Promise<Map<string, string>>,
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
      .input('object', sql.NVarChar(4000), q.tableRef(table.source.schema, table.source.table))
      .query<{ min_valid_version: string | null }>(q.MIN_VALID_VERSION_SQL);
    return res.recordset[0]?.min_valid_version ?? null;
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
    return this.stream(() => q.changesSql(table), [{ name: 'from', type: sql.VarChar(20), value: fromVersion }], toLine, table, 'read changes', validate);
  }

  rows(table: TableSchema, afterKey?: KeyValues): Readable {
    const types = table.columns.map((c) => c.type);
    const toLine = (row: unknown[]): string => encodeLine(types.map((t, i) => mssqlToCopyField(t, row[i])));
    if (!afterKey) return this.stream(() => q.rowsSql(table, false), [], toLine, table, 'read rows');
    const keyTypes = q.keyColumns(table).map((k) => k.type);
    if (afterKey.length !== keyTypes.length) {
      throw new MirrorError(FailureType.BadConfig, `resume key has ${afterKey.length} values, the primary key ${keyTypes.length}`, this.ctx('read rows', table.name));
    }
    const params: QueryParam[] = afterKey.map((v, i) => ({ name: `k${i}`, type: sql.NVarChar(sql.MAX), value: copyFieldToMssql(keyTypes[i]!, v) }));
    let text = '';
    const prepare = async (): Promise<void> => {
      const declared = await this.declaredTypes(table);
      text = q.rowsSql(table, true, (c) => declared.get(c));
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
      await new sql.Request(this.tx).batch(q.RESET_ISOLATION_SQL);
      await this.tx.commit();
    } catch (err) {
      await this.tx.rollback().catch(() => undefined);
      throw toMirrorError(err, this.ctx('close snapshot'), FailureType.SourceReadFailed);
    }
  }
}
