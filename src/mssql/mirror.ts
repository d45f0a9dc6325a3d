/**
 * SQL Server as a mirror: one tenant's tables in one schema of the partner's database, `_mirror_state` holding
 * each table's LSN, written in the same transaction as the data it covers.
 *
 * Rows arrive as PostgreSQL COPY text. They are bulk loaded (the driver's bulk copy) as strings into a session
 * temporary table of nvarchar(max) columns and converted into the typed table by one set-based statement on the
 * server (sql.ts fromTextExpr). Converting on the server keeps every value exact: the driver's own typed bulk
 * path would pass decimals and datetime2 through JS numbers and Dates.
 *
 * Population: into `<table>__shadow`, a chunk per transaction, with its progress (`_mirror_shadow`: schema hash,
 * last key, rows) in the same transaction, so a crashed population resumes after the last key it committed, in
 * the source's key order. The swap (drop, sp_rename, state row) is one transaction.
 *
 * Changes: per batch (bounded in bytes), one transaction: bulk into #staging, delete every staged key, insert the
 * 'U' rows; only the last batch's transaction moves the LSN, and writes the cycle's `_mirror_log` row.
 *
 * What the partner made on a mirror table goes over to a new population in the swap's transaction: its
 * rowstore indexes are rebuilt on the shadow (index names are per table here, so they keep theirs) and its
 * object and column permissions granted (or denied) again on it, before the shadow is renamed into place. Views
 * that are not schema-bound read the new table by name afterwards; a schema-bound view, extended properties,
 * triggers, constraints and columnstore/XML/spatial indexes are not carried (an index of those kinds fails the
 * swap, naming it, rather than being lost).
 */
import type { Readable } from 'node:stream';
import sql from 'mssql';
import { decodeLine } from '../core/copy-text';
import { FailureType, MirrorError, redact, toMirrorError, withoutValues, type ErrorContext, type FailureTypeName, contextFor } from '../core/errors';
import { expandHook, hookFailed } from '../core/hooks';
import { changedAnything, lastCycleOf, LOG_COLUMNS, logValues, populateEntry, type MirrorLogEntry } from '../core/mirror-log';
import { DDL_LOCK_TIMEOUT_MS, mirrorLockName, parseShadowProgress, schemaResult, schemaStep, toTableState, type StateRow } from '../core/mirror-common';
import type { ExistingTable } from '../core/schema-compat';
import { schemaHash } from '../core/schema-hash';
import type {
  ApplyResult,
  KeyValues,
  Fence,
  Finding,
  HookEvent,
  Mirror,
  MirrorHooks,
  MirrorTableSnapshot,
  PreflightTables,
  MirrorTableState,
  PopulationProgress,
  SchemaApplyResult,
  MirrorOptions,
  ShadowProgress,
  SourceFingerprint,
  TableSchema,
  Version,
} from '../core/types';
import type { CycleCounts } from '../../contract/payloads';
import { errorNumber, LazyPool } from './connection';
import * as mirrorSql from './mirror-sql';
import { MssqlMirrorTableSnapshot } from './mirror-compare';
import { mirrorPreflight } from './preflight';
import { q as quote, tableRef, TABLE_COLUMNS_SQL } from './tsql';
import { readLines } from './stream';
import { keyMisfit, keyPlan, storedSchema, type KeyPlan } from './mirror-keys';
import { mssqlTypeToLogical, type CatalogColumn } from './types';
import { copyFieldToMssql } from './values';

export type MssqlMirrorOptions = MirrorOptions;


const LOAD_TABLE = '#load';
const STAGING_TABLE = '#staging';
/** SQL Server error 208: invalid object name (no state table yet). */
const INVALID_OBJECT = 208;

type Param = { name: string; type: sql.ISqlType | (() => sql.ISqlType); value: unknown };

export class MssqlMirror implements Mirror {
  private readonly schema: string;
  private readonly connections: LazyPool;
  private readonly hooks: MirrorHooks;
  private readonly ctx: (operation: string, table?: string) => ErrorContext;

  constructor(opts: MssqlMirrorOptions) {
    quote(opts.schema); // BadConfig now for an unusable schema name
    this.schema = opts.schema;
    this.hooks = opts.hooks ?? (() => []);
    this.ctx = contextFor(opts.tenant, 'mirror');
    this.connections = new LazyPool(opts.url, opts.maxConnections, this.ctx('connect'));
  }


  private pool(): Promise<sql.ConnectionPool> {
    return this.connections.get();
  }

  /**
   * Runs fn in one READ COMMITTED transaction; any failure rolls it back and becomes a typed failure. Every lock
   * it waits for is waited for at most DDL_LOCK_TIMEOUT_MS (a partner's long query on a mirror table must neither
   * block a swap for ever nor queue the partner's readers behind it): then it fails as MirrorBusy, tried later.
   */
  private async inTransaction<T>(
    ctx: ErrorContext,
    fn: (tx: sql.Transaction) => Promise<T>,
    fallback: FailureTypeName = FailureType.MirrorWriteFailed,
  ): Promise<T> {
    let tx: sql.Transaction | null = null;
    try {
      const pool = await this.pool();
      tx = new sql.Transaction(pool);
      await tx.begin(sql.ISOLATION_LEVEL.READ_COMMITTED);
      await new sql.Request(tx).batch(mirrorSql.lockTimeoutSql(DDL_LOCK_TIMEOUT_MS));
      const result = await fn(tx);
      await tx.commit();
      return result;
    } catch (err) {
      if (tx) await tx.rollback().catch(() => undefined);
      throw toMirrorError(err, ctx, fallback);
    }
  }

  private exec(tx: sql.Transaction, text: string, params: Param[] = []): Promise<sql.IResult<Record<string, unknown>>> {
    const r = new sql.Request(tx);
    for (const p of params) r.input(p.name, p.type, p.value);
    return r.query(text);
  }

  private lock(tx: sql.Transaction, table?: string): Promise<unknown> {
    const name = mirrorLockName(this.schema, table);
    // sp_getapplock resource names are at most 255 characters; a long one is cut (a shared lock is only slower).
    return this.exec(tx, mirrorSql.APP_LOCK_SQL, [{ name: 'lock', type: sql.NVarChar(255), value: name.slice(0, 255) }]);
  }

  private tableParam(table: string): Param {
    return { name: 'table', type: sql.NVarChar(450), value: table };
  }

  async ping(): Promise<void> {
    try {
      await (await this.pool()).request().query('SELECT 1 AS ok');
    } catch (err) {
      throw toMirrorError(err, this.ctx('ping'), FailureType.Unavailable);
    }
  }

  async ensureState(): Promise<void> {
    await this.inTransaction(this.ctx('ensure state'), async (tx) => {
      await this.lock(tx);
      await this.createStateTables(tx);
    });
  }

  private async createStateTables(tx: sql.Transaction): Promise<void> {
    await this.exec(tx, mirrorSql.ensureSchemaSql(this.schema), [{ name: 'schema', type: sql.NVarChar(128), value: this.schema }]);
    const state = { name: 'state', type: sql.NVarChar(300), value: tableRef(this.schema, mirrorSql.STATE_TABLE) };
    await this.exec(tx, mirrorSql.ensureStateTableSql(this.schema), [state]);
    await this.exec(tx, mirrorSql.addBackfillColumnSql(this.schema), [state]);
    await this.exec(tx, mirrorSql.ensureFenceTableSql(this.schema), [
      { name: 'fence', type: sql.NVarChar(300), value: tableRef(this.schema, mirrorSql.FENCE_TABLE) },
    ]);
    await this.exec(tx, mirrorSql.ensureShadowTableSql(this.schema), [
      { name: 'shadowState', type: sql.NVarChar(300), value: tableRef(this.schema, mirrorSql.SHADOW_TABLE) },
    ]);
    await this.exec(tx, mirrorSql.ensureLogTableSql(this.schema), [
      { name: 'log', type: sql.NVarChar(300), value: tableRef(this.schema, mirrorSql.LOG_TABLE) },
    ]);
  }

  async pruneLog(retentionMs: number): Promise<number> {
    return this.inTransaction(this.ctx('prune log'), async (tx) => {
      const seconds = Math.min(2_000_000_000, Math.max(1, Math.round(retentionMs / 1000)));
      const res = await this.exec(tx, mirrorSql.pruneLogSql(this.schema), [{ name: 'seconds', type: sql.Int, value: seconds }]);
      return res.rowsAffected.reduce((a, b) => a + b, 0);
    });
  }

  async readLastCycles(): Promise<({ table: string } & CycleCounts)[]> {
    try {
      const res = await (await this.pool()).request().query<{ table_name: string; inserts: string | number | null; updates: string | number | null; deletes: string | number | null; logged_at: Date }>(
        mirrorSql.lastCyclesSql(this.schema),
      );
      return res.recordset.map(lastCycleOf);
    } catch (err) {
      if (errorNumber(err) === INVALID_OBJECT) return [];
      throw toMirrorError(err, this.ctx('read last cycles'), FailureType.Unavailable);
    }
  }

  /** A `_mirror_log` row, in the caller's transaction (the one that did what it records). */
  private async log(tx: sql.Transaction, entry: MirrorLogEntry): Promise<void> {
    const values = logValues(entry);
    const types: Record<(typeof LOG_COLUMNS)[number], sql.ISqlType | (() => sql.ISqlType)> = {
      table_name: sql.NVarChar(450),
      event: sql.VarChar(16),
      inserts: sql.BigInt,
      updates: sql.BigInt,
      deletes: sql.BigInt,
      row_count: sql.BigInt,
      bytes: sql.BigInt,
      from_lsn: sql.VarChar(40),
      to_lsn: sql.VarChar(40),
      duration_ms: sql.BigInt,
      detail: sql.NVarChar(4000),
    };
    await this.exec(tx, mirrorSql.insertLogSql(this.schema), LOG_COLUMNS.map((name, i) => ({ name, type: types[name], value: values[i] })));
  }

  /** The partner's hooks for `table` at `event`, in the caller's transaction: one failing fails the table and rolls it all back. */
  private async runHooks(tx: sql.Transaction, event: HookEvent, table: string, ctx: ErrorContext): Promise<void> {
    for (const hook of this.hooks(event, table)) {
      const text = expandHook(hook.sql, { table: tableRef(this.schema, mirrorSql.mirrorRelation(table)), schema: quote(this.schema) });
      try {
        // A batch, so that the partner may send several statements (CREATE VIEW must still stand alone in its hook).
        await new sql.Request(tx).batch(text);
      } catch (err) {
        throw hookFailed(event, hook, err, ctx);
      }
    }
  }

  /**
   * Rebuilds the partner's indexes and permissions of the live table on the shadow, before the swap renames the
   * shadow into place (see the file comment).
   */
  private async carryOver(tx: sql.Transaction, live: string, shadow: string, ctx: ErrorContext): Promise<void> {
    const liveRef = { name: 'live', type: sql.NVarChar(300), value: tableRef(this.schema, live) };
    const rows = (await this.exec(tx, mirrorSql.PARTNER_INDEXES_SQL, [liveRef])).recordset as unknown as mirrorSql.PartnerIndexColumn[];
    const { indexes, unsupported } = mirrorSql.partnerIndexes(rows);
    if (unsupported.length) {
      throw new MirrorError(
        FailureType.TableFailed,
        `the partner's index ${unsupported.join(', ')} cannot be carried over to a new population; drop it, or recreate it from a mirror.hooks afterPopulate hook`,
        ctx,
      );
    }
    const permissions = (await this.exec(tx, mirrorSql.PARTNER_PERMISSIONS_SQL, [liveRef])).recordset as unknown as mirrorSql.PartnerPermission[];
    const steps = [
      ...indexes.map((i) => ({ what: `index ${JSON.stringify(i.name)}`, text: mirrorSql.createIndexSql(this.schema, shadow, i) })),
      ...permissions.map((p) => ({ what: `${p.permission_name} permission of ${JSON.stringify(p.grantee)}`, text: mirrorSql.permissionSql(this.schema, shadow, p) })),
    ];
    for (const step of steps) {
      try {
        await this.exec(tx, step.text);
      } catch (err) {
        throw new MirrorError(
          FailureType.TableFailed,
          `carrying the partner's ${step.what} over to the new population failed: ${redact(withoutValues(err))} (the population was not swapped in)`,
          ctx,
          { cause: err },
        );
      }
    }
  }

  relationKey(table: string): string {
    // Default SQL Server collations compare names without case: "Orders" and "orders" are one table here.
    return mirrorSql.mirrorRelation(table).toLowerCase();
  }

  async takeFence(scope: string, holder: string): Promise<Fence> {
    const epoch = await this.inTransaction(this.ctx('take fence'), async (tx) => {
      await this.lock(tx);
      const res = await this.exec(tx, mirrorSql.takeFenceSql(this.schema), [
        { name: 'scope', type: sql.NVarChar(450), value: scope },
        { name: 'holder', type: sql.NVarChar(400), value: holder.slice(0, 400) },
      ]);
      return res.recordsets.flat().map((r) => (r as { epoch?: string }).epoch).find((e) => e !== undefined);
    });
    if (epoch === undefined) throw new MirrorError(FailureType.MirrorWriteFailed, 'no fence epoch', this.ctx('take fence'));
    return { scope, epoch };
  }

  /** Fails unless `fence` is still the newest claim on its scope; holds it until the transaction ends. */
  private async checkFence(tx: sql.Transaction, fence: Fence, ctx: ErrorContext): Promise<void> {
    const res = await this.exec(tx, mirrorSql.checkFenceSql(this.schema), [{ name: 'scope', type: sql.NVarChar(450), value: fence.scope }]);
    const epoch = (res.recordset[0] as { epoch?: string } | undefined)?.epoch;
    if (epoch !== fence.epoch) {
      throw new MirrorError(FailureType.Fenced, `a newer writer took over ${fence.scope} (epoch ${epoch ?? 'none'}, ours ${fence.epoch})`, ctx);
    }
  }

  private async owned(tx: sql.Transaction, table: string): Promise<{ live: boolean; shadow: boolean }> {
    const row = (await this.exec(tx, mirrorSql.ownedSql(this.schema), [this.tableParam(table)])).recordset[0] as { live: number; shadow: number } | undefined;
    return { live: row?.live === 1, shadow: row?.shadow === 1 };
  }

  async readState(): Promise<MirrorTableState[]> {
    try {
      const res = await (await this.pool()).request().query<StateRow & { needs_backfill: number | null }>(mirrorSql.readStateSql(this.schema));
      return res.recordset.map((r) => ({ ...toTableState(r), needsBackfill: r.needs_backfill === 1 }));
    } catch (err) {
      if (errorNumber(err) === INVALID_OBJECT) return [];
      throw toMirrorError(err, this.ctx('read state'), FailureType.Unavailable);
    }
  }

  async readPopulations(): Promise<{ table: string; rows: number }[]> {
    try {
      const res = await (await this.pool()).request().query<{ table_name: string; marker: string }>(mirrorSql.readMarkersSql(this.schema));
      return res.recordset.flatMap((r) => {
        const marker = parseShadowProgress(r.marker);
        return marker ? [{ table: r.table_name, rows: marker.rows }] : [];
      });
    } catch (err) {
      if (errorNumber(err) === INVALID_OBJECT) return [];
      throw toMirrorError(err, this.ctx('read populations'), FailureType.Unavailable);
    }
  }

  async applySchema(schema: TableSchema): Promise<SchemaApplyResult> {
    const live = mirrorSql.mirrorRelation(schema.name);
    const hash = schemaHash(schema);
    return this.inTransaction(this.ctx('apply schema', schema.name), async (tx) => {
      await this.lock(tx, schema.name);
      const existing = await this.readTable(tx, live);
      const table = this.tableParam(schema.name);
      if (existing && !(await this.owned(tx, schema.name)).live) {
        throw new MirrorError(
          FailureType.TableFailed,
          `a table named ${JSON.stringify(live)} already exists in the mirror schema and was not created by tenant-mirror: rename it, or exclude the source table`,
          this.ctx('apply schema', schema.name),
        );
      }
      const step = schemaStep(existing, storedSchema(schema), { keyTypeFixed: true });
      const setHash = (): Promise<unknown> => this.exec(tx, mirrorSql.setSchemaHashSql(this.schema), [table, { name: 'hash', type: sql.VarChar(64), value: hash }]);
      switch (step.step) {
        case 'create':
          await this.exec(tx, mirrorSql.createTableSql(this.schema, live, schema));
          await this.exec(tx, mirrorSql.registerTableSql(this.schema), [table]);
          await this.runHooks(tx, 'afterCreate', schema.name, this.ctx('apply schema', schema.name));
          break;
        case 'alter':
          for (const text of mirrorSql.alterStatements(this.schema, live, schema, step.changes)) await this.exec(tx, text);
          await setHash();
          // Remembered with the change itself, so a failure before anyone acts on it cannot lose the backfill.
          if (step.changes.some((c) => c.kind === 'addColumn')) await this.exec(tx, mirrorSql.markBackfillSql(this.schema), [table]);
          break;
        case 'unchanged':
          await setHash();
          break;
        case 'replace':
          await this.exec(tx, mirrorSql.dropTableSql(this.schema, live));
          await this.exec(tx, mirrorSql.dropTableSql(this.schema, mirrorSql.shadowRelation(schema.name)));
          await this.exec(tx, mirrorSql.deleteMarkerSql(this.schema), [table]);
          await this.log(tx, { table: schema.name, event: 'wipe', detail: `schema replaced: ${step.reason}` });
          await this.exec(tx, mirrorSql.createTableSql(this.schema, live, schema));
          await this.exec(tx, mirrorSql.registerTableSql(this.schema), [table]);
          await this.runHooks(tx, 'afterCreate', schema.name, this.ctx('apply schema', schema.name));
      }
      return schemaResult(step);
    });
  }

  private async readTable(tx: sql.Transaction, name: string): Promise<ExistingTable | null> {
    const res = await this.exec(tx, TABLE_COLUMNS_SQL, [{ name: 'object', type: sql.NVarChar(300), value: tableRef(this.schema, name) }]);
    const rows = res.recordset as unknown as CatalogColumn[];
    if (rows.length === 0) return null;
    return {
      columns: rows.map((r) => ({
        name: r.column_name,
        type: mssqlTypeToLogical({ typeName: r.type_name, maxLength: r.max_length, precision: r.precision, scale: r.scale }),
        nullable: r.is_nullable,
      })),
      primaryKey: rows
        .filter((r) => r.key_ordinal !== null)
        .sort((a, b) => (a.key_ordinal ?? 0) - (b.key_ordinal ?? 0))
        .map((r) => r.column_name),
    };
  }

  async copyIntoShadow(
    schema: TableSchema,
    rows: Readable,
    opts: { resume: boolean; version: Version; chunkBytes: number; fence: Fence; onChunk: (progress: PopulationProgress) => void },
  ): Promise<PopulationProgress> {
    const ctx = this.ctx('populate', schema.name);
    const shadow = mirrorSql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    const keyIndexes = schema.primaryKey.map((k) => schema.columns.findIndex((c) => c.name === k));
    const table = this.tableParam(schema.name);
    const plan = keyPlanIn(schema, ctx);

    const marker = await this.inTransaction(ctx, async (tx) => {
      await this.lock(tx, schema.name);
      const current = await this.readMarker(tx, schema.name);
      const exists = (await this.exec(tx, mirrorSql.OBJECT_EXISTS_SQL, [{ name: 'object', type: sql.NVarChar(300), value: tableRef(this.schema, shadow) }]))
        .recordset[0]?.present === 1;
      if (opts.resume && exists && current && current.schemaHash === hash && current.version === opts.version) return current;
      await this.checkFence(tx, opts.fence, ctx);
      if (!(await this.owned(tx, schema.name)).live) {
        throw new MirrorError(FailureType.TableFailed, 'the mirror table is not registered (applySchema first)', ctx);
      }
      const fresh: ShadowProgress = {
        table: schema.name,
        schemaHash: hash,
        version: opts.version,
        lastKey: null,
        rows: 0,
        bytes: 0,
        startedAt: new Date().toISOString(),
      };
      await this.exec(tx, mirrorSql.dropTableSql(this.schema, shadow));
      await this.exec(tx, mirrorSql.createTableSql(this.schema, shadow, schema));
      await this.exec(tx, mirrorSql.writeMarkerSql(this.schema), [table, markerParam(fresh)]);
      return fresh;
    });

    const progress: PopulationProgress = { rows: marker.rows, bytes: 0, lastKey: marker.lastKey };
    const insert = mirrorSql.insertFromLoadSql(this.schema, shadow, schema, LOAD_TABLE, false);
    let batch: (string | null)[][] = [];
    let batchBytes = 0;
    let batchKey: KeyValues | null = null;

    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const next: ShadowProgress = { ...marker, lastKey: batchKey, rows: progress.rows + batch.length, bytes: (marker.bytes ?? 0) + progress.bytes + batchBytes };
      const rowsNow = batch;
      await this.inTransaction(ctx, async (tx) => {
        await this.checkFence(tx, opts.fence, ctx);
        await this.bulkLoad(tx, LOAD_TABLE, schema.columns.length, false, rowsNow);
        await this.exec(tx, insert);
        await this.exec(tx, mirrorSql.dropLoadTableSql(LOAD_TABLE));
        await this.exec(tx, mirrorSql.writeMarkerSql(this.schema), [table, markerParam(next)]);
      });
      progress.rows = next.rows;
      progress.bytes += batchBytes;
      progress.lastKey = next.lastKey;
      batch = [];
      batchBytes = 0;
      opts.onChunk({ ...progress });
    };

    try {
      for await (const { line, bytes } of readLines(rows)) {
        const fields = decodeLine(line);
        if (fields.length !== schema.columns.length) {
          throw new MirrorError(FailureType.SourceReadFailed, `row has ${fields.length} fields, the table ${schema.columns.length} columns`, ctx);
        }
        const staged = schema.columns.map((c, i) => copyFieldToMssql(c.type, fields[i] ?? null));
        assertKeyFits(schema, plan, staged, 0, ctx);
        batch.push(staged);
        batchKey = keyIndexes.map((i) => fields[i] ?? null);
        batchBytes += bytes;
        if (batchBytes >= opts.chunkBytes) await flush();
      }
      await flush();
    } catch (err) {
      throw duplicateKeyError(err, ctx) ?? toMirrorError(err, ctx, FailureType.MirrorWriteFailed);
    }
    return progress;
  }

  /** Creates the session temporary table and bulk loads string rows into it, in the caller's transaction. */
  private async bulkLoad(tx: sql.Transaction, name: string, columns: number, withOp: boolean, rows: (string | null)[][]): Promise<void> {
    // A batch, not a parameterized query: the driver runs queries through sp_executesql, and a temporary table
    // created inside sp_executesql disappears when that call ends.
    await new sql.Request(tx).batch(mirrorSql.createLoadTableSql(name, columns, withOp));
    const t = new sql.Table(name);
    t.create = false;
    if (withOp) t.columns.add('op', sql.NChar(1), { nullable: false });
    for (let i = 0; i < columns; i++) t.columns.add(`c${i}`, sql.NVarChar(sql.MAX), { nullable: true });
    for (const r of rows) t.rows.add(...r);
    await new sql.Request(tx).bulk(t);
  }

  private async readMarker(tx: sql.Transaction, table: string): Promise<ShadowProgress | null> {
    const res = await this.exec(tx, mirrorSql.readMarkerSql(this.schema), [this.tableParam(table)]);
    const text = res.recordset[0]?.marker;
    return typeof text === 'string' ? parseShadowProgress(text) : null;
  }

  async shadowProgress(schema: TableSchema): Promise<ShadowProgress | null> {
    const hash = schemaHash(schema);
    const shadow = mirrorSql.shadowRelation(schema.name);
    return this.inTransaction(
      this.ctx('read shadow progress', schema.name),
      async (tx) => {
        const exists = (await this.exec(tx, mirrorSql.OBJECT_EXISTS_SQL, [{ name: 'object', type: sql.NVarChar(300), value: tableRef(this.schema, shadow) }]))
          .recordset[0]?.present === 1;
        if (!exists) return null;
        const marker = await this.readMarker(tx, schema.name).catch((err: unknown) => {
          if (errorNumber(err) === INVALID_OBJECT) return null;
          throw err;
        });
        return marker && marker.schemaHash === hash ? marker : null;
      },
      FailureType.Unavailable,
    );
  }

  async swapInShadow(schema: TableSchema, lsn: Version, fingerprint: SourceFingerprint, fence: Fence): Promise<{ rows: number }> {
    const live = mirrorSql.mirrorRelation(schema.name);
    const shadow = mirrorSql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    const table = this.tableParam(schema.name);
    return this.inTransaction(this.ctx('swap in population', schema.name), async (tx) => {
      await this.lock(tx, schema.name);
      await this.checkFence(tx, fence, this.ctx('swap in population', schema.name));
      const marker = await this.readMarker(tx, schema.name);
      const exists = (await this.exec(tx, mirrorSql.OBJECT_EXISTS_SQL, [{ name: 'object', type: sql.NVarChar(300), value: tableRef(this.schema, shadow) }]))
        .recordset[0]?.present === 1;
      if (!marker || !exists) throw new MirrorError(FailureType.MirrorWriteFailed, 'no population to swap in (shadow table missing)');
      if (marker.schemaHash !== hash) throw new MirrorError(FailureType.MirrorWriteFailed, 'the population was built for another table schema');
      await this.carryOver(tx, live, shadow, this.ctx('swap in population', schema.name));
      await this.exec(tx, mirrorSql.swapShadowSql(this.schema, live), [
        { name: 'live', type: sql.NVarChar(300), value: tableRef(this.schema, live) },
        { name: 'shadow', type: sql.NVarChar(300), value: tableRef(this.schema, shadow) },
        { name: 'newname', type: sql.NVarChar(128), value: live },
      ]);
      await this.exec(tx, mirrorSql.deleteMarkerSql(this.schema), [table]);
      await this.exec(
        tx,
        mirrorSql.upsertStateSql(this.schema, {
          lsn: '@lsn',
          schema_hash: '@hash',
          fingerprint: '@fp',
          populated_at: 'SYSUTCDATETIME()',
          last_sync_at: 'SYSUTCDATETIME()',
          row_count: '@rows',
          needs_backfill: '0',
        }),
        [
          table,
          { name: 'lsn', type: sql.VarChar(40), value: lsn },
          { name: 'hash', type: sql.VarChar(64), value: hash },
          { name: 'fp', type: sql.NVarChar(sql.MAX), value: JSON.stringify(fingerprint) },
          { name: 'rows', type: sql.BigInt, value: marker.rows },
        ],
      );
      await this.log(tx, populateEntry(schema.name, marker, lsn));
      await this.runHooks(tx, 'afterPopulate', schema.name, this.ctx('swap in population', schema.name));
      return { rows: marker.rows };
    });
  }

  async applyChanges(
    schema: TableSchema,
    changes: Readable,
    opts: { fromVersion: Version; toVersion: Version; fingerprint: SourceFingerprint; batchBytes: number; fence: Fence },
  ): Promise<ApplyResult> {
    const ctx = this.ctx('apply changes', schema.name);
    const live = mirrorSql.mirrorRelation(schema.name);
    const plan = keyPlanIn(schema, ctx);
    const table = this.tableParam(schema.name);
    const text = {
      del: mirrorSql.deleteStagedKeysSql(this.schema, live, schema, STAGING_TABLE, 'D'),
      replace: mirrorSql.deleteStagedKeysSql(this.schema, live, schema, STAGING_TABLE, 'U'),
      ins: mirrorSql.insertFromLoadSql(this.schema, live, schema, STAGING_TABLE, true),
      adjust: mirrorSql.adjustRowCountSql(this.schema),
      record: mirrorSql.recordSyncSql(this.schema),
    };
    const result: ApplyResult = { upserts: 0, inserts: 0, updates: 0, deletes: 0, bytes: 0 };
    const started = Date.now();
    let batch: (string | null)[][] = [];
    let bytes = 0;

    const apply = async (isLast: boolean): Promise<void> => {
      const rows = batch;
      const counts = { deleted: 0, replaced: 0, inserted: 0 };
      await this.inTransaction(ctx, async (tx) => {
        // Every batch: still our scope, and the LSN still the one the changes were read from.
        await this.checkFence(tx, opts.fence, ctx);
        const lsn = ((await this.exec(tx, mirrorSql.lockStateRowSql(this.schema), [table])).recordset[0] as { lsn?: string | null } | undefined)?.lsn;
        if (lsn !== opts.fromVersion) {
          throw new MirrorError(FailureType.Fenced, `the LSN moved to ${lsn ?? 'none'} while changes from ${opts.fromVersion} were applied`, ctx);
        }
        if (rows.length > 0) {
          await this.bulkLoad(tx, STAGING_TABLE, schema.columns.length, true, rows);
          const affected = async (statement: string): Promise<number> => (await this.exec(tx, statement)).rowsAffected.reduce((a, b) => a + b, 0);
          counts.deleted = await affected(text.del);
          // The old versions of updated rows: how the counts tell an update from an insert.
          counts.replaced = await affected(text.replace);
          counts.inserted = await affected(text.ins);
          await this.exec(tx, mirrorSql.dropLoadTableSql(STAGING_TABLE));
          const delta = counts.inserted - counts.deleted - counts.replaced;
          await this.exec(tx, text.adjust, [table, { name: 'delta', type: sql.BigInt, value: delta }]);
        }
        if (isLast) {
          const res = await this.exec(tx, text.record, [
            table,
            { name: 'lsn', type: sql.VarChar(40), value: opts.toVersion },
            { name: 'from', type: sql.VarChar(40), value: opts.fromVersion },
            { name: 'fp', type: sql.NVarChar(sql.MAX), value: JSON.stringify(opts.fingerprint) },
          ]);
          if ((res.recordset[0] as { moved?: number } | undefined)?.moved !== 1) throw new MirrorError(FailureType.Fenced, `the LSN is no longer ${opts.fromVersion}`, ctx);
          const cycle = {
            inserts: result.inserts + counts.inserted - counts.replaced,
            updates: result.updates + counts.replaced,
            deletes: result.deletes + counts.deleted,
            bytes: result.bytes + bytes,
          };
          if (changedAnything(cycle)) {
            await this.log(tx, { table: schema.name, event: 'sync', ...cycle, fromLsn: opts.fromVersion, toLsn: opts.toVersion, durationMs: Date.now() - started });
          }
        }
      });
      result.upserts += counts.inserted;
      result.inserts += counts.inserted - counts.replaced;
      result.updates += counts.replaced;
      result.deletes += counts.deleted;
      result.bytes += bytes;
      batch = [];
      bytes = 0;
    };

    try {
      for await (const { line, bytes: n } of readLines(changes)) {
        // Only the last batch may move the LSN, so a full batch waits until a further line shows it is not last.
        if (bytes >= opts.batchBytes && batch.length > 0) await apply(false);
        const fields = decodeLine(line);
        const op = fields[0];
        if ((op !== 'U' && op !== 'D') || fields.length !== schema.columns.length + 1) {
          throw new MirrorError(FailureType.SourceReadFailed, 'malformed change line (expected U or D and one field per column)', ctx);
        }
        const staged = [op, ...schema.columns.map((c, i) => copyFieldToMssql(c.type, fields[i + 1] ?? null))];
        // A delete of a key the mirror could never hold matches nothing: only rows to insert must fit.
        if (op === 'U') assertKeyFits(schema, plan, staged, 1, ctx);
        batch.push(staged);
        bytes += n;
      }
      await apply(true);
    } catch (err) {
      throw duplicateKeyError(err, ctx) ?? toMirrorError(err, ctx, FailureType.MirrorWriteFailed);
    }
    return result;
  }

  /** Drops what the registry says the mirror owns for `table` (its table, its shadow) and their rows; logs the wipe. */
  private async dropOwned(tx: sql.Transaction, table: string, reason: string | null): Promise<void> {
    const owned = await this.owned(tx, table);
    if (owned.shadow) await this.exec(tx, mirrorSql.dropTableSql(this.schema, mirrorSql.shadowRelation(table)));
    if (owned.live) await this.exec(tx, mirrorSql.dropTableSql(this.schema, mirrorSql.mirrorRelation(table)));
    await this.exec(tx, mirrorSql.deleteStateSql(this.schema), [this.tableParam(table)]);
    await this.exec(tx, mirrorSql.deleteMarkerSql(this.schema), [this.tableParam(table)]);
    if (owned.live || owned.shadow) await this.log(tx, { table, event: 'wipe', detail: reason });
  }

  async dropTable(table: string, reason?: string): Promise<void> {
    await this.inTransaction(this.ctx('drop table', table), async (tx) => {
      await this.lock(tx, table);
      await this.dropOwned(tx, table, reason ?? null);
    });
  }

  async release(table: string): Promise<void> {
    await this.inTransaction(this.ctx('release table', table), async (tx) => {
      await this.lock(tx, table);
      if ((await this.owned(tx, table)).shadow) await this.exec(tx, mirrorSql.dropTableSql(this.schema, mirrorSql.shadowRelation(table)));
      await this.exec(tx, mirrorSql.deleteStateSql(this.schema), [this.tableParam(table)]);
      await this.exec(tx, mirrorSql.deleteMarkerSql(this.schema), [this.tableParam(table)]);
    });
  }

  async wipeAll(reason?: string): Promise<void> {
    await this.inTransaction(this.ctx('wipe'), async (tx) => {
      await this.lock(tx);
      await this.createStateTables(tx);
      // Only what the registry names: the partner's own tables in this schema stay.
      const tables = await this.exec(tx, mirrorSql.ownedTablesSql(this.schema));
      for (const r of tables.recordset) await this.dropOwned(tx, String(r.table_name), reason ?? null);
    });
  }

  /** One table with its state row, in one SNAPSHOT transaction where the database allows it (see mirror-compare.ts). */
  async compareSnapshot(table: TableSchema): Promise<MirrorTableSnapshot> {
    const ctx = this.ctx('compare', table.name);
    let pool: sql.ConnectionPool;
    try {
      pool = await this.pool();
    } catch (err) {
      throw toMirrorError(err, ctx, FailureType.Unavailable);
    }
    return MssqlMirrorTableSnapshot.open(pool, this.schema, table, ctx);
  }

  async preflight(plan: PreflightTables): Promise<Finding[]> {
    try {
      return await mirrorPreflight(await this.pool(), this.schema, plan);
    } catch (err) {
      throw toMirrorError(err, this.ctx('preflight'), FailureType.Unavailable);
    }
  }

  async close(): Promise<void> {
    await this.connections.close();
  }
}

function keyPlanIn(schema: TableSchema, ctx: ErrorContext): KeyPlan {
  try {
    return keyPlan(schema);
  } catch (err) {
    throw toMirrorError(err, ctx, FailureType.TableFailed);
  }
}

/** Fails the table, before anything is written, when a staged row's key cannot be stored (mirror-keys.ts). */
function assertKeyFits(schema: TableSchema, plan: KeyPlan, row: readonly (string | null)[], offset: number, ctx: ErrorContext): void {
  const misfit = keyMisfit(schema, plan, row, offset);
  if (misfit) throw new MirrorError(FailureType.TableFailed, misfit, ctx);
}

/** SQL Server error numbers: duplicate key in a unique index / in a primary key constraint. */
const DUPLICATE_KEY = new Set([2601, 2627]);

/**
 * The source's keys are unique, so a duplicate in the mirror means SQL Server compares two of them as equal: keys
 * that differ only in trailing spaces (docs/type-mapping.md). Retrying cannot help, and the driver's message quotes
 * the key value, which must not reach the workflow history.
 */
function duplicateKeyError(err: unknown, ctx: ErrorContext): MirrorError | null {
  // inTransaction has already typed the driver's error: its number is on the cause.
  const n = errorNumber(err instanceof MirrorError ? err.cause : err);
  if (n === undefined || !DUPLICATE_KEY.has(n)) return null;
  return new MirrorError(
    FailureType.TableFailed,
    'two source keys are equal under SQL Server comparison rules (keys that differ only in trailing spaces collide); mirror this table to PostgreSQL or exclude it',
    ctx,
  );
}

function markerParam(m: ShadowProgress): Param {
  return { name: 'marker', type: sql.NVarChar(sql.MAX), value: JSON.stringify(m) };
}
