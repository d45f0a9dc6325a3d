/**
 * A consistent read of a PostgreSQL source: one REPEATABLE READ snapshot whose version is its commit-safe
 * horizon, streaming rows and net changes as COPY text straight from the server, with the SQL of those reads.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type {
  ComparableSnapshot,
  DigestForm,
  DigestOptions,
  KeyRange,
  KeyValues,
  RowFormat,
  RangeDigest,
  RowHash,
  SourceFingerprint,
  SplittableSnapshot,
  TableSchema,
  Version,
} from '../core/types';
import { FailureType, MirrorError, toMirrorError, type ErrorContext } from '../core/errors';
import { literalPg, quotePg } from '../core/identifiers';
import { comparedAsText } from '../core/key-ranges';
import { discontinuity, versionBelow } from '../core/versions';
import { TRACKING_SCHEMA, prepared, readFingerprint, readNativeKey, type NativeKeyColumn, type Queryable } from './catalog';
import { PgTableReads } from './compare';
import { sourceSide } from './compare-sql';
import { connectClient } from './connection';
import { isUsable, qualifiedSide, qualifiedTable, readTracking, registryLayout, type RegistryLayout } from './tracking';
import { columnExpr } from './types';
import { binaryCopyable } from './binary-copy';

export { columnExpr };

/** The fingerprint component naming the table behind a mirror table (a `table.` component: see decide.ts). */
export const TABLE_RELID = 'table.relid';

/** Keys a range split is chosen from: enough for even ranges, few enough to read in a few milliseconds. */
const SAMPLE_KEYS = 20_000;

/** Where a source keeps its open snapshots (to close them with it). */
export interface SnapshotRegistry {
  add(s: PgSourceSnapshot): void;
  delete(s: PgSourceSnapshot): void;
}

/** A snapshot another transaction exported, to be opened again on a new connection (see siblings). */
interface ImportedSnapshot {
  id: string;
  version: Version;
  fingerprint: SourceFingerprint;
  layout: RegistryLayout;
}

/**
 * One REPEATABLE READ READ ONLY transaction on one dedicated connection. Its version is the snapshot's xmin
 * horizon: every xid below it has ended, so a change with a smaller xid can no longer appear later — unlike
 * "the largest xid seen", which a slow writer that started earlier and commits later would slip under. Where
 * tables are tracked by logical decoding, an ended transaction's changes reach the side tables only when they are
 * ingested: the version is then also at most the horizon the last ingestion recorded (decoding.ts), as this
 * snapshot sees it — below it, every change is in the side tables this snapshot reads.
 *
 * One connection runs one COPY at a time: streams (and minValidVersion) are queued and start in call order, each
 * when the previous one has ended. Consume streams one after another, in the order they were requested; a stream
 * that is never consumed holds up every later one. A stream that fails or is destroyed before its end leaves the
 * connection unusable: the snapshot then fails every later call, and close() discards the connection.
 *
 * It also compares tables range by range (TableRangeReads, for tenant-mirror verify), through the same queue and
 * after the same lock as a row read.
 */
export class PgSourceSnapshot implements ComparableSnapshot, SplittableSnapshot {
  private queue: Promise<void> = Promise.resolve();
  private active = 0;
  private broken: Error | null = null;
  private closed = false;
  private readonly keyTypes = new Map<string, NativeKeyColumn[]>();
  /** Each table's tracking as this snapshot sees it, read once: a cycle asks for it up to three times. */
  private readonly trackingReads = new Map<string, ReturnType<typeof readTracking>>();
  readonly version: Version;
  readonly fingerprint: SourceFingerprint;
  private readonly layout: RegistryLayout;
  /** Set once the first range read has put plan_cache_mode back to auto for the rest of the transaction. */
  private customPlans = false;

  private constructor(
    private readonly pool: Pool,
    private readonly client: PoolClient,
    /** What the snapshot's first statements read: its version, the database's fingerprint, the registry layout. */
    opened: { version: Version; fingerprint: SourceFingerprint; layout: RegistryLayout },
    private readonly baseCtx: ErrorContext,
    private readonly registry: SnapshotRegistry,
  ) {
    this.version = opened.version;
    this.fingerprint = opened.fingerprint;
    this.layout = opened.layout;
    this.db = this.guarded(client);
    this.catalogDb = this.guarded(prepared(client));
  }

  static async open(pool: Pool, ctx: ErrorContext, registry: SnapshotRegistry, imported?: ImportedSnapshot): Promise<PgSourceSnapshot> {
    const client = await connectClient(pool, ctx);
    try {
      // Generic plans for the snapshot's catalog reads (prepared() in catalog.ts): with their parameters,
      // PostgreSQL otherwise plans most of them again at every execution (the tracking state read: 0.4 ms a plan
      // for 0.3 ms of work). In the same round trip as BEGIN. The setting also governs any statement with bind
      // values, so the range reads with them (comparisons, split points) set it back first (`compare.prepare`).
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan');
      if (imported) {
        await client.query(`SET TRANSACTION SNAPSHOT ${literalPg(imported.id)}`);
        const snap = new PgSourceSnapshot(pool, client, imported, ctx, registry);
        registry.add(snap);
        return snap;
      }
      // The first statement fixes the transaction's snapshot; its xmin is the version, or the decoding horizon.
      const { rows } = await client.query<{ version: string }>(
        'SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS version',
      );
      let version = rows[0]?.version;
      if (version === undefined) throw new MirrorError(FailureType.SourceReadFailed, 'no snapshot version', ctx);
      const layout = await registryLayout(prepared(client));
      const horizon = await decodingHorizon(prepared(client), layout);
      if (horizon !== null && versionBelow(horizon, version)) version = horizon;
      const fingerprint = await readFingerprint(prepared(client));
      const snap = new PgSourceSnapshot(pool, client, { version, fingerprint, layout }, ctx, registry);
      registry.add(snap);
      return snap;
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
  private readonly db: Queryable;
  /** The same, as prepared statements (see `prepared`): for the catalog reads of constant text a cycle repeats. */
  private readonly catalogDb: Queryable;

  private guarded(db: Queryable): Queryable {
    return {
      query: async <R extends QueryResultRow>(text: string, values: unknown[] = []): Promise<{ rows: R[] }> => {
        try {
          return await db.query<R>(text, values);
        } catch (err) {
          this.broken ??= err instanceof Error ? err : new Error(String(err));
          throw err;
        }
      },
    };
  }

  /** Range reads for a comparison: statements and COPY through the queue, each table locked as a row read locks it. */
  private readonly compare = new PgTableReads(
    {
      query: (text, values) => this.exclusive(() => this.db.query(text, values)),
      copyOut: (sql) => this.stream(this.baseCtx, async () => sql),
      prepare: (table) =>
        this.exclusive(async () => {
          // A key range's selectivity is in its bound values: a generic plan would guess it (see open()).
          if (!this.customPlans) await this.db.query('SET LOCAL plan_cache_mode = auto');
          this.customPlans = true;
          await this.lockForRead(table, this.ctx('compare', table));
        }),
    },
    sourceSide,
  );

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
      throw toMirrorError(err, this.ctx('compare', table), FailureType.SourceReadFailed);
    }
  }

  minValidVersion(table: TableSchema): Promise<Version | null> {
    const ctx = this.ctx('read min valid version', table);
    return this.exclusive(async () => {
      try {
        const { state, key } = await this.trackingOf(table);
        // Tracking that stopped recording (table recreated, triggers dropped or disabled, key renamed or retyped,
        // partitions attached or detached) counts as absent: the caller enables it again, which raises the min
        // valid version.
        return isUsable(state, key) ? state.minValidVersion : null;
      } catch (err) {
        throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
      }
    });
  }

  private trackingOf(table: TableSchema): ReturnType<typeof readTracking> {
    let read = this.trackingReads.get(table.name);
    if (!read) {
      read = readTracking(this.catalogDb, table, this.layout);
      this.trackingReads.set(table.name, read);
    }
    return read;
  }

  /**
   * The side table's entries in range, counted up to `limit` along its xid index (an idle table costs one probe).
   * Tracking that is not usable counts `limit`, so that changes() raises its typed failure; every other break of
   * continuity (restore, TRUNCATE, retention) shows in the version, the fingerprint and the min valid version,
   * which the caller checks first.
   */
  pendingChanges(table: TableSchema, fromVersion: Version, limit: number): Promise<number> {
    const ctx = this.ctx('look for changes', table);
    return this.exclusive(async () => {
      try {
        assertVersion(fromVersion);
        const cap = Math.max(1, Math.floor(limit));
        const { state, key } = await this.trackingOf(table);
        if (!isUsable(state, key)) return cap;
        const { rows } = await this.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${qualifiedSide(state.sideTable)}
                                            WHERE ${xidRange(fromVersion, this.version)} LIMIT ${cap}) s`,
        );
        return rows[0]?.n ?? cap;
      } catch (err) {
        throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
      }
    });
  }

  /**
   * The source's fingerprint and the tracked table's oid. Tracking that restarts raises the min valid version;
   * the oid catches what does not restart it: two tracked tables that swapped names (each name then leads to the
   * other table's tracking and rows, with nothing else changed).
   */
  tableFingerprint(table: TableSchema): Promise<SourceFingerprint> {
    const ctx = this.ctx('read fingerprint', table);
    return this.exclusive(async () => {
      try {
        const { state } = await this.trackingOf(table);
        return state ? { ...this.fingerprint, [TABLE_RELID]: state.relid } : this.fingerprint;
      } catch (err) {
        throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
      }
    });
  }

  changes(table: TableSchema, fromVersion: Version): Readable {
    const ctx = this.ctx('read changes', table);
    return this.stream(ctx, async () => {
      assertVersion(fromVersion);
      // Horizons never go back on one server: a mirror ahead of the source saw a different history.
      const restored = discontinuity(fromVersion, this.version, null);
      if (restored) throw new MirrorError(restored.type, restored.detail, ctx);
      const { state, key } = await this.trackingOf(table);
      if (!isUsable(state, key)) {
        throw new MirrorError(
          FailureType.TrackingExpired,
          'change tracking is not (or no longer) recording this table as it is now (its key, partitions or triggers changed)',
          ctx,
        );
      }
      const expired = discontinuity(fromVersion, this.version, state.minValidVersion);
      if (expired) throw new MirrorError(expired.type, expired.detail, ctx);
      if (await this.hasKeylessEntries(state.sideTable, fromVersion)) {
        throw new MirrorError(FailureType.TrackingExpired, 'a key column was renamed or dropped while writes were recorded: repopulate', ctx);
      }
      await this.lockForRead(table, ctx);
      return changesSql(table, state.sideTable, state.keyTypes, fromVersion, this.version);
    });
  }

  rows(table: TableSchema, afterKey?: KeyValues, format: RowFormat = 'text'): Readable {
    const ctx = this.ctx('read rows', table);
    return this.stream(ctx, async () => {
      const after = afterKey && afterKey.length > 0 ? await this.keyPredicate(table, '>', afterKey, ctx) : null;
      await this.lockForRead(table, ctx);
      return rowsSql(table, after, format);
    });
  }

  rowFormats(table: TableSchema): RowFormat[] {
    return binaryCopyable(table) ? ['pg-binary', 'text'] : ['text'];
  }

  rowsInRange(table: TableSchema, range: KeyRange, format: RowFormat = 'text'): Readable {
    const ctx = this.ctx('read rows', table);
    return this.stream(ctx, async () => {
      const bounds: string[] = [];
      if (range.after) bounds.push(await this.keyPredicate(table, '>', range.after, ctx));
      if (range.upTo) bounds.push(await this.keyPredicate(table, '<=', range.upTo, ctx));
      await this.lockForRead(table, ctx);
      return rowsSql(table, bounds.length ? bounds.join(' AND ') : null, format);
    });
  }

  /**
   * Cut points from a page sample (TABLESAMPLE SYSTEM reads ~SAMPLE_KEYS rows' worth of pages, not the table).
   * Only plain tables whose key columns all compare by value: a text key's order depends on its collation, which
   * the range bounds and the resume key would then have to agree on.
   */
  rangeCuts(table: TableSchema, parts: number): Promise<KeyValues[]> {
    const ctx = this.ctx('choose key ranges', table);
    const keyTypes = table.primaryKey.map((k) => table.columns.find((c) => c.name === k)?.type);
    if (parts < 2 || keyTypes.length === 0 || keyTypes.some((t) => t === undefined || comparedAsText(t))) return Promise.resolve([]);
    return this.exclusive(async () => {
      try {
        await this.lockForRead(table, ctx);
        const rel = qualifiedTable(table);
        const { rows: meta } = await this.catalogDb.query<{ plain: boolean; tuples: number }>(
          `SELECT c.relkind = 'r' AS plain, greatest(c.reltuples, 0)::float8 AS tuples FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass`,
          [rel],
        );
        if (!meta[0]?.plain) return [];
        const percent = meta[0].tuples > 0 ? Math.min(100, (100 * SAMPLE_KEYS) / meta[0].tuples) : 100;
        const keys = table.primaryKey.map(quotePg);
        const { rows } = await this.db.query<{ k: KeyValues }>(
          `SELECT ARRAY[${keys.map((k) => `${k}::text`).join(', ')}] AS k FROM ${rel} TABLESAMPLE SYSTEM (${percent.toFixed(6)}) ORDER BY ${keys.join(', ')}`,
        );
        return cutsOf(rows.map((r) => r.k), parts);
      } catch (err) {
        throw toMirrorError(err, ctx, FailureType.SourceReadFailed);
      }
    });
  }

  /** Exports this snapshot and opens it again on `count` more connections. */
  async siblings(count: number): Promise<PgSourceSnapshot[]> {
    if (count < 1) return [];
    const id = await this.exclusive(async () => {
      try {
        return (await this.db.query<{ id: string }>('SELECT pg_catalog.pg_export_snapshot() AS id')).rows[0]?.id;
      } catch (err) {
        throw toMirrorError(err, { ...this.baseCtx, operation: 'export snapshot' }, FailureType.SourceReadFailed);
      }
    });
    if (!id) throw new MirrorError(FailureType.SourceReadFailed, 'the snapshot could not be exported', this.baseCtx);
    const out: PgSourceSnapshot[] = [];
    try {
      for (let i = 0; i < count; i++) {
        out.push(await PgSourceSnapshot.open(this.pool, this.baseCtx, this.registry, { id, version: this.version, fingerprint: this.fingerprint, layout: this.layout }));
      }
    } catch (err) {
      await Promise.all(out.map((s) => s.close()));
      throw toMirrorError(err, { ...this.baseCtx, operation: 'import snapshot' }, FailureType.SourceReadFailed);
    }
    return out;
  }

  /** A side entry with a NULL key: the trigger could not read a key column (renamed, dropped) when it fired. */
  private async hasKeylessEntries(side: string, from: Version): Promise<boolean> {
    const { rows } = await this.db.query<{ found: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${qualifiedSide(side)}
                       WHERE ${xidRange(from, this.version)}
                         AND pg_catalog.array_position(k, NULL) IS NOT NULL) AS found`,
    );
    return rows[0]?.found === true;
  }

  /**
   * TRUNCATE and the table-rewriting forms of ALTER TABLE are not MVCC-safe (PostgreSQL docs, 13.6): once one has
   * committed, a snapshot taken before it sees the table empty, which a change read would turn into "every key
   * deleted". So before reading a table this snapshot takes ACCESS SHARE on it — a rewrite can then no longer
   * commit while we read — and checks that no rewrite committed since the snapshot began (the relation's storage,
   * as the snapshot's catalog rows record it, is still the one the server uses now). NOWAIT under a savepoint: a
   * DDL holding or waiting for the table makes us skip it this cycle, not wait (nor make the tenant wait behind us).
   */
  private async lockForRead(table: TableSchema, ctx: ErrorContext): Promise<void> {
    await this.client.query('SAVEPOINT tenant_mirror_read');
    try {
      await this.client.query(`LOCK TABLE ${qualifiedTable(table)} IN ACCESS SHARE MODE NOWAIT`);
    } catch (err) {
      await this.client.query('ROLLBACK TO SAVEPOINT tenant_mirror_read');
      if (pgCode(err) === '55P03') throw new MirrorError(FailureType.SourceBusy, 'the table is locked by DDL right now', ctx);
      throw err;
    }
    await this.client.query('RELEASE SAVEPOINT tenant_mirror_read');
    const { rows } = await this.catalogDb.query<{ rewritten: boolean }>(
      // The table itself and, when it is partitioned, its leaves (a plain table has no partition tree). One index
      // lookup of pg_class per relation: a join, or one condition with OR, scanned all of it (0.5–1 ms with
      // thousands of relations: many tenants in one database).
      `SELECT coalesce(bool_or((SELECT c.relfilenode FROM pg_catalog.pg_class c WHERE c.oid = r.relid) <> pg_catalog.pg_relation_filenode(r.relid)), false) AS rewritten
         FROM (SELECT $1::regclass::oid AS relid
               UNION ALL SELECT t.relid FROM pg_catalog.pg_partition_tree($1::regclass) t WHERE t.isleaf) r`,
      [qualifiedTable(table)],
    );
    if (rows[0]?.rewritten) {
      throw new MirrorError(FailureType.SourceBusy, 'the table was rewritten (TRUNCATE or ALTER TABLE) after this snapshot began', ctx);
    }
  }

  /** `(k1, k2) > ('v1'::type1, 'v2'::type2)` — COPY takes no bind parameters, so the values become literals. */
  private async keyPredicate(table: TableSchema, op: KeyOp, bound: KeyValues, ctx: ErrorContext): Promise<string> {
    let key = this.keyTypes.get(table.name);
    if (!key) {
      key = await readNativeKey(this.catalogDb, table);
      this.keyTypes.set(table.name, key);
    }
    const types = key;
    if (types.length !== table.primaryKey.length || types.some((k, i) => k.name !== table.primaryKey[i])) {
      throw new MirrorError(FailureType.SourceReadFailed, 'primary key changed since the table was listed', ctx);
    }
    return keyPredicate(table.primaryKey, types.map((t) => t.type), op, bound, ctx);
  }

  private stream(ctx: ErrorContext, prepare: () => Promise<string>): Readable {
    const out = new PassThrough();
    this.exclusive(async () => {
      if (out.destroyed) return;
      // Counted from the first statement: a close() meanwhile discards the connection instead of committing on it.
      this.active++;
      try {
        const sql = await prepare();
        if (this.closed || out.destroyed) return;
        try {
          await copyInto(this.client.query(copyTo(sql)), out);
        } catch (err) {
          // Cut short, the connection still has the rest of the COPY output pending; failed on the server, the
          // transaction is aborted. Either way nothing more can be read in this snapshot.
          this.broken ??= err instanceof Error ? err : new Error(String(err));
          throw err;
        }
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
    this.registry.delete(this);
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

/** The horizon of the last ingestion of decoded changes, or null when no table is decoded in this database. */
async function decodingHorizon(db: Queryable, layout: RegistryLayout): Promise<Version | null> {
  if (!layout.decoding) return null;
  const { rows } = await db.query<{ horizon: string }>(`SELECT horizon::text AS horizon FROM ${quotePg(TRACKING_SCHEMA)}.decoding`);
  return rows[0]?.horizon ?? null;
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
export function rowsSql(table: TableSchema, after: string | null, format: RowFormat = 'text'): string {
  const cols = table.columns.map((c) => columnExpr(quotePg(c.name), c.type)).join(', ');
  const order = table.primaryKey.map(quotePg).join(', ');
  // A table without a key is read in no particular order (it is refreshed whole, never resumed).
  const orderBy = order ? ` ORDER BY ${order}` : '';
  return `COPY (SELECT ${cols} FROM ${qualifiedTable(table)}${after ? ` WHERE ${after}` : ''}${orderBy}) TO STDOUT${format === 'pg-binary' ? ' (FORMAT binary)' : ''}`;
}

type KeyOp = '>' | '<=';

/**
 * The row-comparison predicate "key > values" (after a resume key or a range's lower bound) or "key <= values"
 * (a range's upper bound); values are COPY text fields (decoded), cast to the key's types.
 */
export function keyPredicate(key: string[], types: string[], op: KeyOp, values: KeyValues, ctx: ErrorContext = {}): string {
  if (values.length !== key.length) {
    throw new MirrorError(FailureType.BadConfig, `key bound has ${values.length} values, the primary key ${key.length}`, ctx);
  }
  const literals = values.map((v, i) => {
    if (v === null) throw new MirrorError(FailureType.BadConfig, 'key bound contains NULL', ctx);
    return `${literalPg(v)}::${types[i]}`;
  });
  return `(${key.map(quotePg).join(', ')}) ${op} (${literals.join(', ')})`;
}

/** `parts - 1` cut points at even quantiles of sorted sample keys, without repeats; none from too small a sample. */
export function cutsOf(sorted: KeyValues[], parts: number): KeyValues[] {
  if (parts < 2 || sorted.length < 2 * parts) return [];
  const cuts: KeyValues[] = [];
  for (let j = 1; j < parts; j++) {
    const cut = sorted[Math.floor((j * sorted.length) / parts)]!;
    const prev = cuts[cuts.length - 1];
    if (!prev || prev.some((v, i) => v !== cut[i])) cuts.push(cut);
  }
  return cuts;
}

/**
 * Net changes as COPY text, one line per key: `U` + the current row when the key has a row in this snapshot,
 * else `D` + the key (other columns NULL). The recorded op is not consulted: xids do not order two writes to
 * the same key, the row itself does. Keys are recorded as text and cast back to the key types they were
 * recorded under (`keyTypes`, equal to the current ones: see isUsable).
 */
export function changesSql(table: TableSchema, side: string, keyTypes: string[], from: Version, to: Version): string {
  const keyIndex = new Map(table.primaryKey.map((c, i) => [c, i]));
  const keyAlias = (i: number): string => quotePg(`k${i + 1}`);
  const cols = table.columns.map((c) => {
    const i = keyIndex.get(c.name);
    return i === undefined ? columnExpr(`t.${quotePg(c.name)}`, c.type) : columnExpr(`kk.${keyAlias(i)}`, c.type);
  });
  const casts = keyTypes.map((type, i) => `(c.k[${i + 1}])::${type} AS ${keyAlias(i)}`).join(', ');
  const join = table.primaryKey.map((c, i) => `t.${quotePg(c)} = kk.${keyAlias(i)}`).join(' AND ');
  const exists = `CASE WHEN t.${quotePg(table.primaryKey[0] ?? '')} IS NULL THEN 'D' ELSE 'U' END`;
  return (
    `COPY (SELECT ${[exists, ...cols].join(', ')} ` +
    `FROM (SELECT DISTINCT k FROM ${qualifiedSide(side)} ` +
    `WHERE ${xidRange(from, to)}) c ` +
    `CROSS JOIN LATERAL (SELECT ${casts}) kk ` +
    `LEFT JOIN ${qualifiedTable(table)} t ON ${join}) TO STDOUT`
  );
}

/** Side-table entries of transactions `from <= xid < to`: the range a mirror at `from` reads up to a snapshot at `to`. */
export function xidRange(from: Version, to: Version): string {
  return `xid >= ${literalPg(assertVersion(from))}::xid8 AND xid < ${literalPg(assertVersion(to))}::xid8`;
}

export function assertVersion(v: string): string {
  if (!/^\d{1,20}$/.test(v)) throw new MirrorError(FailureType.BadConfig, `not a PostgreSQL source version: ${JSON.stringify(v)}`);
  return v;
}

function pgCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}
