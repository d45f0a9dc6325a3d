/**
 * The PostgreSQL mirror: one tenant's tables inside one schema of the partner's database, with `_mirror_state`
 * holding each table's LSN, always written in the same transaction as the data it covers.
 *
 * The mirror owns only what it created: `_mirror_state` registers each table it creates and each shadow it
 * fills, and no DDL here touches a relation the registry does not name — the partner's own tables in the same
 * schema (`public` included) are never dropped, altered or swapped. A name taken by one of them makes that one
 * table fail (TableFailed), not the tenant.
 *
 * Population goes into a shadow table that has no primary key while it loads (COPY into a heap without an index
 * is markedly faster, and the key is built once, in sorted bulk, at swap time). Its progress is recorded in the
 * shadow's own COMMENT, in the same transaction as each chunk: `{table, schemaHash, version, lastKey, rows}`.
 * That gives shadowProgress an exact, O(1) answer in the *source's* key order (an `ORDER BY pk DESC LIMIT 1` over
 * the unindexed shadow would scan the whole table, and would sort text keys by the mirror's collation, which need
 * not be the source's), and the marker disappears with the shadow when it is dropped or swapped in.
 *
 * Writers are fenced (`_mirror_fence`): every write transaction share-locks its scope's epoch and fails if a
 * newer writer took it; a change batch also locks its table's state row and checks the LSN it started from, so
 * a duplicate or timed-out session can neither move an LSN back nor commit older rows after newer ones.
 *
 * DDL waits at most DDL_LOCK_TIMEOUT_MS for a lock a partner's query holds, then fails as MirrorBusy (retried
 * later), so a long report neither blocks a swap for ever nor queues the partner's readers behind our request.
 */
import type { Readable } from 'node:stream';
import type { Pool, PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { decodeLine } from '../core/copy-text';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import { expandHook, hookFailed } from '../core/hooks';
import { quotePg } from '../core/identifiers';
import { changedAnything, lastCycleOf, logValues, populateEntry, type MirrorLogEntry } from '../core/mirror-log';
import { DDL_LOCK_TIMEOUT_MS, mirrorLockName, parseShadowProgress, schemaResult, schemaStep, toTableState, type StateRow } from '../core/mirror-common';
import type { ExistingTable } from '../core/schema-compat';
import { schemaHash } from '../core/schema-hash';
import type {
  ApplyResult,
  Fence,
  Finding,
  HookEvent,
  KeyRange,
  KeyValues,
  LogicalType,
  Mirror,
  MirrorHooks,
  MirrorOptions,
  MirrorTableSnapshot,
  MirrorTableState,
  PreflightTables,
  PopulationProgress,
  RowFormat,
  SchemaApplyResult,
  ShadowProgress,
  ShadowRange,
  SourceFingerprint,
  TableSchema,
  Version,
} from '../core/types';
import type { CycleCounts } from '../../contract/payloads';
import { copyBinaryInChunks, copyInChunks, type ChunkInfo, type ChunkPlan, type CopyInStream } from './chunked-copy';
import { binaryCopyable, binaryKeyReader } from './binary-copy';
import * as sql from './mirror-sql';
import { CONNECT_TIMEOUT_MS, createPgPool, withClient, withTransaction } from './connection';
import { cappedClient, mirrorConnectionCap } from './connection-cap';
import { PgMirrorTableSnapshot } from './mirror-compare';
import { mirrorPreflight } from './preflight';
import { logicalToPgType, pgTypeToLogical } from './types';
import { buildOnShadow, dropDependentViews, readCarried, restoreOnLive } from './partner-objects';

/** Staging tables already created, per connection (a connection the pool replaces starts with none). */
const stagingMade = new WeakMap<PoolClient, Set<string>>();
/** A batch at least this large is analyzed before it is applied (see analyzeStagingSql). */
const ANALYZE_STAGING_ROWS = 1_000;

export interface PgMirrorOptions extends MirrorOptions {
  /** How long mirror DDL (create, alter, swap, drop) waits for a table lock: default DDL_LOCK_TIMEOUT_MS. */
  ddlLockTimeoutMs?: number;
}


interface Owned {
  relation: string;
  shadow: string | null;
}

export class PgMirror implements Mirror {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly ddlLockTimeoutMs: number;
  private readonly hooks: MirrorHooks;
  private readonly ctx: (operation: string, table?: string) => ErrorContext;
  /** Native type names the mirror database knows, learnt once per adapter (one activity). */
  private readonly knownTypes = new Map<string, boolean>();
  private closed = false;

  constructor(opts: PgMirrorOptions) {
    this.schema = opts.schema;
    this.ddlLockTimeoutMs = opts.ddlLockTimeoutMs ?? DDL_LOCK_TIMEOUT_MS;
    this.hooks = opts.hooks ?? (() => []);
    this.ctx = contextFor(opts.tenant, 'mirror');
    // The cap's wait ends before the pool's connect timeout, so a full cap reads as MirrorBusy, not a timeout.
    const Client = cappedClient(mirrorConnectionCap(opts.url), CONNECT_TIMEOUT_MS - 2_000);
    this.pool = createPgPool(opts.url, { max: opts.maxConnections ?? 4, applicationName: 'tenant-mirror', Client });
  }

  async ping(): Promise<void> {
    await withClient(this.pool, this.ctx('ping'), (c) => c.query('SELECT 1'), FailureType.Unavailable);
  }

  relationKey(table: string): string {
    return sql.mirrorRelation(table);
  }

  async ensureState(): Promise<void> {
    // Two workers may start the same tenant at once: CREATE ... IF NOT EXISTS is not safe against a concurrent
    // create (unique violation in the catalog), so the creation is serialised by an advisory lock.
    await withTransaction(
      this.pool,
      this.ctx('ensure state'),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema)]);
        await c.query(sql.createSchemaSql(this.schema));
        await c.query(sql.createStateTableSql(this.schema));
        await c.query(sql.createFenceTableSql(this.schema));
        await c.query(sql.createLogTableSql(this.schema));
        // A state table of the first layout gains its registry columns (ALTER only when one is missing: it locks).
        const have = new Set((await c.query<{ name: string }>(sql.STATE_COLUMNS_SQL, [this.schema])).rows.map((r) => r.name));
        for (const [column, definition] of sql.STATE_COLUMNS_SINCE_FIRST_LAYOUT) {
          if (!have.has(column)) await c.query(sql.addStateColumnSql(this.schema, column, definition));
        }
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async takeFence(scope: string, holder: string): Promise<Fence> {
    const epoch = await withClient(
      this.pool,
      this.ctx('take fence'),
      async (c) => (await c.query<{ epoch: string }>(sql.takeFenceSql(this.schema), [scope, holder])).rows[0]?.epoch,
      FailureType.MirrorWriteFailed,
    );
    if (epoch === undefined) throw new MirrorError(FailureType.MirrorWriteFailed, 'no fence epoch', this.ctx('take fence'));
    return { scope, epoch };
  }

  /** Fails unless `fence` is still the newest claim on its scope; holds it until the transaction ends. */
  private async checkFence(c: PoolClient, fence: Fence, ctx: ErrorContext): Promise<void> {
    const epoch = (await c.query<{ epoch: string }>(sql.checkFenceSql(this.schema), [fence.scope])).rows[0]?.epoch;
    if (epoch !== fence.epoch) {
      throw new MirrorError(FailureType.Fenced, `a newer writer took over ${fence.scope} (epoch ${epoch ?? 'none'}, ours ${fence.epoch})`, ctx);
    }
  }

  async readState(): Promise<MirrorTableState[]> {
    return withClient(
      this.pool,
      this.ctx('read state'),
      async (c) => {
        let rows: (StateRow & { needs_backfill?: boolean })[];
        try {
          rows = (await c.query<StateRow & { needs_backfill?: boolean }>(sql.readStateSql(this.schema))).rows;
        } catch (err) {
          // No state table yet (ensureState not run): nothing is mirrored.
          if (pgCode(err) === '42P01' || pgCode(err) === '3F000') return [];
          throw err;
        }
        return rows.map((r) => ({ ...toTableState(r), needsBackfill: r.needs_backfill === true }));
      },
      FailureType.Unavailable,
    );
  }

  async readPopulations(): Promise<{ table: string; rows: number }[]> {
    return withClient(
      this.pool,
      this.ctx('read populations'),
      async (c) => {
        const { rows } = await c.query<{ comment: string | null }>(sql.SHADOW_MARKERS_SQL, [this.schema]);
        return rows.flatMap((r) => {
          const marker = r.comment ? parseShadowProgress(r.comment) : null;
          return marker?.table === undefined ? [] : [{ table: marker.table, rows: marker.rows }];
        });
      },
      FailureType.Unavailable,
    );
  }

  async pruneLog(retentionMs: number): Promise<number> {
    return withClient(
      this.pool,
      this.ctx('prune log'),
      async (c) => (await c.query(sql.pruneLogSql(this.schema), [Math.round(retentionMs)])).rowCount ?? 0,
      FailureType.MirrorWriteFailed,
    );
  }

  async readLastCycles(): Promise<({ table: string } & CycleCounts)[]> {
    return withClient(
      this.pool,
      this.ctx('read last cycles'),
      async (c) => {
        try {
          const { rows } = await c.query<{ table_name: string; inserts: string | null; updates: string | null; deletes: string | null; logged_at: Date }>(sql.lastCyclesSql(this.schema));
          return rows.map(lastCycleOf);
        } catch (err) {
          if (pgCode(err) === '42P01' || pgCode(err) === '3F000') return [];
          throw err;
        }
      },
      FailureType.Unavailable,
    );
  }

  /** A `_mirror_log` row, in the caller's transaction (the one that did what it records). */
  private async log(c: PoolClient, entry: MirrorLogEntry): Promise<void> {
    await c.query(sql.insertLogSql(this.schema), logValues(entry));
  }

  /** The partner's hooks for `table` at `event`, in the caller's transaction: one failing fails the table and rolls it all back. */
  private async runHooks(c: PoolClient, event: HookEvent, table: string, relation: string, ctx: ErrorContext): Promise<void> {
    for (const hook of this.hooks(event, table)) {
      try {
        await c.query(expandHook(hook.sql, { table: sql.qualified(this.schema, relation), schema: quotePg(this.schema) }));
      } catch (err) {
        throw hookFailed(event, hook, err, ctx);
      }
    }
  }

  /** What the state registry says this mirror owns for `table`; null when it owns nothing of that name. */
  private async owned(c: PoolClient, table: string): Promise<Owned | null> {
    let row: { relation: string | null; shadow: string | null } | undefined;
    try {
      row = (await c.query<{ relation: string | null; shadow: string | null }>(sql.ownedRelationsSql(this.schema), [table])).rows[0];
    } catch (err) {
      if (pgCode(err) === '42P01' || pgCode(err) === '3F000') return null;
      throw err;
    }
    // A row of the first layout names no relation: its table is the one the naming rule gives.
    return row ? { relation: row.relation ?? sql.mirrorRelation(table), shadow: row.shadow } : null;
  }

  async applySchema(schema: TableSchema): Promise<SchemaApplyResult> {
    const live = sql.mirrorRelation(schema.name);
    const hash = schemaHash(schema);
    const ctx = this.ctx('apply schema', schema.name);
    return withTransaction(
      this.pool,
      ctx,
      async (c) => {
        await c.query(sql.lockTimeoutSql(this.ddlLockTimeoutMs));
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, schema.name)]);
        const { stored, notes } = await this.storedShape(c, schema);
        const existing = await this.readTable(c, live);
        if (existing && !(await this.owned(c, schema.name)) && !(await this.adopt(c, schema.name, live))) {
          throw new MirrorError(
            FailureType.TableFailed,
            `a table named ${JSON.stringify(live)} already exists in the mirror schema and was not created by tenant-mirror: rename it, or exclude the source table`,
            ctx,
          );
        }
        const step = schemaStep(existing, normalised(stored), { keyTypeFixed: false });
        switch (step.step) {
          case 'create':
            await c.query(sql.createTableSql(this.schema, live, stored, { primaryKey: true }));
            await c.query(sql.registerTableSql(this.schema), [schema.name, live]);
            await this.runHooks(c, 'afterCreate', schema.name, live, ctx);
            break;
          case 'alter': {
            const alter = sql.alterTableSql(this.schema, live, step.changes);
            if (alter) await c.query(alter);
            await c.query(sql.setSchemaHashSql(this.schema), [schema.name, hash]);
            // Remembered with the change itself, so a failure before anyone acts on it cannot lose the backfill.
            if (step.changes.some((ch) => ch.kind === 'addColumn')) await c.query(sql.markBackfillSql(this.schema), [schema.name]);
            break;
          }
          case 'unchanged':
            await c.query(sql.setSchemaHashSql(this.schema), [schema.name, hash]);
            break;
          case 'replace':
            await this.dropOwned(c, schema.name, `schema replaced: ${step.reason}`);
            await c.query(sql.createTableSql(this.schema, live, stored, { primaryKey: true }));
            await c.query(sql.registerTableSql(this.schema), [schema.name, live]);
            await this.runHooks(c, 'afterCreate', schema.name, live, ctx);
        }
        return { ...schemaResult(step), ...(notes.length ? { notes } : {}) };
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /** A table of the first layout, created but never populated, had no state row: recognise it by our key's name. */
  private async adopt(c: PoolClient, table: string, live: string): Promise<boolean> {
    const ours = (await c.query<{ ours: boolean }>(sql.HAS_OUR_KEY_SQL, [this.schema, live, sql.pkConstraintName(live)])).rows[0]?.ours;
    if (ours) await c.query(sql.registerTableSql(this.schema), [table, live]);
    return ours === true;
  }

  /**
   * The shape the mirror stores the table in: a native type this database does not have (a composite, a domain
   * over one, an extension's type, a range of a custom type) is stored as its text form, with a note saying so.
   */
  private async storedShape(c: PoolClient, schema: TableSchema): Promise<{ stored: TableSchema; notes: string[] }> {
    const natives = [...new Set(schema.columns.map((col) => nativeName(col.type)).filter((n): n is string => n !== null))];
    const unknown = natives.filter((n) => !this.knownTypes.has(n));
    if (unknown.length) {
      for (const r of (await c.query<{ name: string; known: boolean }>(sql.KNOWN_TYPES_SQL, [unknown])).rows) this.knownTypes.set(r.name, r.known);
    }
    const notes: string[] = [];
    const columns = schema.columns.map((col) => {
      const name = nativeName(col.type);
      if (name === null || this.knownTypes.get(name) !== false) return col;
      notes.push(`column ${JSON.stringify(col.name)} (type ${name}) is stored as text: the mirror database has no type ${name}`);
      return { ...col, type: { kind: 'string' } as LogicalType };
    });
    return { stored: { ...schema, columns }, notes };
  }

  /** storedShape for the statements that only need the shape (types are learnt by applySchema first). */
  private async stored(c: PoolClient, schema: TableSchema): Promise<TableSchema> {
    return (await this.storedShape(c, schema)).stored;
  }

  async copyIntoShadow(
    schema: TableSchema,
    rows: Readable,
    opts: { resume: boolean; version: Version; chunkBytes: number; fence: Fence; onChunk: (progress: PopulationProgress) => void; format?: RowFormat },
  ): Promise<PopulationProgress> {
    const shadow = sql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    return withClient(
      this.pool,
      this.ctx('populate', schema.name),
      async (c) => {
        const marker = await this.prepareShadow(c, schema, shadow, { hash, ...opts });
        let shadowRows = marker.rows;
        let shadowBytes = marker.bytes ?? 0;
        return this.chunksIntoShadow(c, schema, rows, { ...opts, begin: 'BEGIN', lastKey: marker.lastKey }, async (chunk, lastKey) => {
          const next: ShadowProgress = { ...marker, lastKey, rows: shadowRows + chunk.rows, bytes: shadowBytes + chunk.bytes };
          await c.query(sql.commentOnTableSql(this.schema, shadow, JSON.stringify(next)));
          shadowRows = next.rows;
          shadowBytes = next.bytes ?? 0;
        });
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /**
   * Streams rows into the table's shadow in chunks of about `chunkBytes`, each its own transaction: `begin`, the
   * fence check, the COPY, `mark` (the chunk's progress into the shadow's marker), COMMIT. Returns what this call
   * copied; `lastKey` is where the shadow stood before it (kept for a chunk that ends at no key).
   */
  private async chunksIntoShadow(
    c: PoolClient,
    schema: TableSchema,
    rows: Readable,
    opts: { chunkBytes: number; fence: Fence; format?: RowFormat; onChunk: (progress: PopulationProgress) => void; begin: string; lastKey: KeyValues | null },
    mark: (chunk: ChunkInfo, lastKey: KeyValues | null) => Promise<void>,
  ): Promise<PopulationProgress> {
    const ctx = this.ctx('populate', schema.name);
    const keyIndexes = schema.primaryKey.map((k) => schema.columns.findIndex((col) => col.name === k));
    const format = opts.format ?? 'text';
    const copySql = sql.copyFromStdinSql(this.schema, sql.shadowRelation(schema.name), schema, format);
    const total: PopulationProgress = { rows: 0, bytes: 0, lastKey: opts.lastKey };
    try {
      await copyShadowChunks(
        schema,
        format,
        rows,
        opts.chunkBytes,
        {
          open: async () => {
            await c.query(opts.begin);
            await this.checkFence(c, opts.fence, ctx);
            return c.query(copyFrom(copySql)) as CopyInStream;
          },
          close: async (chunk: ChunkInfo) => {
            // A keyless table has no resume point: it is always copied whole.
            const lastKey = keyIndexes.length === 0 ? null : chunkKey(chunk, keyIndexes, total.lastKey);
            await mark(chunk, lastKey);
            await c.query('COMMIT');
            total.rows += chunk.rows;
            total.bytes += chunk.bytes;
            total.lastKey = lastKey;
            opts.onChunk({ ...total });
          },
          empty: async () => undefined,
        },
        (err) => toMirrorError(err, { ...ctx, side: 'source' }, FailureType.SourceReadFailed),
      );
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    return { ...total };
  }

  rowFormats(schema: TableSchema): RowFormat[] {
    return binaryCopyable(schema) ? ['pg-binary', 'text'] : ['text'];
  }

  planShadow(schema: TableSchema, opts: { resume: boolean; version: Version; fence: Fence; ranges: KeyRange[] }): Promise<ShadowProgress> {
    const ctx = this.ctx('populate', schema.name);
    return withClient(
      this.pool,
      ctx,
      (c) => this.prepareShadow(c, schema, sql.shadowRelation(schema.name), { hash: schemaHash(schema), ...opts }),
      FailureType.MirrorWriteFailed,
    );
  }

  /**
   * One range of a split population, on a connection of its own. The ranges' commits share the shadow's marker:
   * each takes the shadow's advisory lock, reads the marker as the others last committed it and writes it back
   * with its own range's progress, so two ranges never overwrite each other's (the lock is held only from the end
   * of a chunk's COPY to its commit). Each transaction is READ COMMITTED whatever the database's default: the
   * marker read after the lock must see the other ranges' last commits, not a snapshot from before the lock.
   */
  async copyRangeIntoShadow(
    schema: TableSchema,
    range: number,
    rows: Readable,
    opts: { version: Version; chunkBytes: number; fence: Fence; onChunk: (progress: PopulationProgress) => void; format?: RowFormat },
  ): Promise<PopulationProgress> {
    const ctx = this.ctx('populate', schema.name);
    const shadow = sql.shadowRelation(schema.name);
    return withClient(
      this.pool,
      ctx,
      async (c) => {
        const record = async (update: (r: ShadowRange) => ShadowRange): Promise<void> => {
          await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, `shadow:${schema.name}`)]);
          const marker = await this.readMarker(c, shadow);
          const mine = marker?.ranges?.[range];
          if (!marker?.ranges || marker.version !== opts.version || !mine) {
            throw new MirrorError(FailureType.Fenced, 'the shadow was replaced by another population', ctx);
          }
          const ranges = marker.ranges.map((r, i) => (i === range ? update(r) : r));
          const next: ShadowProgress = { ...marker, ranges, rows: sum(ranges, 'rows'), bytes: sum(ranges, 'bytes') };
          await c.query(sql.commentOnTableSql(this.schema, shadow, JSON.stringify(next)));
        };
        const copied = await this.chunksIntoShadow(c, schema, rows, { ...opts, begin: READ_COMMITTED, lastKey: null }, (chunk, lastKey) =>
          record((r) => ({ ...r, lastKey: lastKey ?? r.lastKey, rows: r.rows + chunk.rows, bytes: r.bytes + chunk.bytes })),
        );
        try {
          await c.query(READ_COMMITTED);
          await this.checkFence(c, opts.fence, ctx);
          await record((r) => ({ ...r, done: true }));
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        return copied;
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /**
   * Makes sure a shadow built for this exact schema and version (and, for a split population, these ranges)
   * exists, and returns its progress. Without `resume`, or when the shadow was built for another schema, version
   * or split (or lost its marker), it starts over from an empty shadow, registered as ours in the same transaction.
   */
  private async prepareShadow(
    c: PoolClient,
    schema: TableSchema,
    shadow: string,
    opts: { hash: string; resume: boolean; version: Version; fence: Fence; ranges?: KeyRange[] },
  ): Promise<ShadowProgress> {
    if (opts.resume) {
      const marker = await this.readMarker(c, shadow);
      if (marker && marker.schemaHash === opts.hash && marker.version === opts.version && sameSplit(marker.ranges, opts.ranges)) return marker;
    }
    const fresh: ShadowProgress = {
      table: schema.name,
      schemaHash: opts.hash,
      version: opts.version,
      lastKey: null,
      rows: 0,
      bytes: 0,
      startedAt: new Date().toISOString(),
      ...(opts.ranges ? { ranges: opts.ranges.map((r) => ({ ...r, lastKey: null, rows: 0, bytes: 0, done: false })) } : {}),
    };
    await c.query('BEGIN');
    try {
      await c.query(sql.lockTimeoutSql(this.ddlLockTimeoutMs));
      await this.checkFence(c, opts.fence, this.ctx('populate', schema.name));
      const owned = await this.owned(c, schema.name);
      if (!owned) throw new MirrorError(FailureType.TableFailed, 'the mirror table is not registered (applySchema first)', this.ctx('populate', schema.name));
      if (owned.shadow) await c.query(sql.dropTableSql(this.schema, owned.shadow));
      // The first layout did not register shadows; one that carries our marker is ours all the same.
      else if (await this.readMarker(c, shadow)) await c.query(sql.dropTableSql(this.schema, shadow));
      await c.query(sql.createTableSql(this.schema, shadow, await this.stored(c, schema), { primaryKey: false }));
      await c.query(sql.registerShadowSql(this.schema), [schema.name, shadow]);
      await c.query(sql.commentOnTableSql(this.schema, shadow, JSON.stringify(fresh)));
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    return fresh;
  }

  /** The shadow's marker, or null when the shadow is absent or its comment is not ours. */
  private async readMarker(c: PoolClient, shadow: string): Promise<ShadowProgress | null> {
    const res = await c.query<{ comment: string | null }>(sql.TABLE_COMMENT_SQL, [this.schema, shadow]);
    const text = res.rows[0]?.comment;
    return text ? parseShadowProgress(text) : null;
  }

  async shadowProgress(schema: TableSchema): Promise<ShadowProgress | null> {
    const hash = schemaHash(schema);
    return withClient(
      this.pool,
      this.ctx('read shadow progress', schema.name),
      async (c) => {
        const owned = await this.owned(c, schema.name);
        if (!owned?.shadow) return null;
        const marker = await this.readMarker(c, owned.shadow);
        // A shadow built for another schema is rebuilt by copyIntoShadow, so it has nothing to resume.
        return marker && marker.schemaHash === hash ? marker : null;
      },
      FailureType.Unavailable,
    );
  }

  async swapInShadow(schema: TableSchema, lsn: Version, fingerprint: SourceFingerprint, fence: Fence): Promise<{ rows: number }> {
    const live = sql.mirrorRelation(schema.name);
    const hash = schemaHash(schema);
    const ctx = this.ctx('swap in population', schema.name);
    return withTransaction(
      this.pool,
      ctx,
      async (c) => {
        await c.query(sql.lockTimeoutSql(this.ddlLockTimeoutMs));
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, schema.name)]);
        await this.checkFence(c, fence, ctx);
        const owned = await this.owned(c, schema.name);
        const marker = owned?.shadow ? await this.readMarker(c, owned.shadow) : null;
        if (!owned?.shadow || !marker) throw new MirrorError(FailureType.MirrorWriteFailed, 'no population to swap in (shadow table missing)', ctx);
        if (marker.schemaHash !== hash) throw new MirrorError(FailureType.MirrorWriteFailed, 'the population was built for another table schema', ctx);
        if (marker.ranges?.some((r) => !r.done)) throw new MirrorError(FailureType.MirrorWriteFailed, 'the population has key ranges still to copy', ctx);
        const shadow = owned.shadow;
        // What the partner made on the table being replaced goes over to the new one (partner-objects.ts).
        const carried = await readCarried(c, this.schema, owned.relation, shadow, ctx);
        // The key and the partner's indexes are built on the shadow before the live table is locked, so readers
        // of the live table are blocked only for the drop and the renames, not for the index builds.
        if (schema.primaryKey.length > 0) await c.query(sql.addPrimaryKeySql(this.schema, shadow, schema));
        if (carried) await buildOnShadow(c, carried, ctx);
        await c.query(sql.commentOnTableSql(this.schema, shadow, null));
        if (carried) await dropDependentViews(c, carried, ctx);
        await c.query(sql.dropTableSql(this.schema, owned.relation));
        await c.query(sql.renameTableSql(this.schema, shadow, live));
        if (schema.primaryKey.length > 0) {
          await c.query(sql.renameConstraintSql(this.schema, live, sql.pkConstraintName(shadow), sql.pkConstraintName(live)));
        }
        if (carried) await restoreOnLive(c, this.schema, live, carried, ctx);
        await c.query(sql.recordPopulationSql(this.schema), [schema.name, lsn, hash, JSON.stringify(fingerprint), marker.rows, live]);
        await this.log(c, populateEntry(schema.name, marker, lsn));
        await this.runHooks(c, 'afterPopulate', schema.name, live, ctx);
        return { rows: marker.rows };
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async applyChanges(
    schema: TableSchema,
    changes: Readable,
    opts: { fromVersion: Version; toVersion: Version; fingerprint: SourceFingerprint; batchBytes: number; fence: Fence },
  ): Promise<ApplyResult> {
    const ctx = this.ctx('apply changes', schema.name);
    const live = sql.mirrorRelation(schema.name);
    const fingerprint = JSON.stringify(opts.fingerprint);
    const result: ApplyResult = { upserts: 0, inserts: 0, updates: 0, deletes: 0, bytes: 0 };
    const started = Date.now();

    return withClient(
      this.pool,
      ctx,
      async (c) => {
        const stored = await this.stored(c, schema);
        const text = {
          copy: sql.copyStagingSql(stored),
          analyze: sql.analyzeStagingSql(stored),
          del: sql.deleteFromStagingSql(this.schema, live, stored),
          upsert: sql.upsertFromStagingSql(this.schema, live, stored),
          recordSync: sql.recordSyncSql(this.schema),
          adjust: sql.adjustRowCountSql(this.schema),
        };
        /** Every batch: still our scope, and the LSN still the one the changes were read from. */
        const claim = async (): Promise<void> => {
          await this.checkFence(c, opts.fence, ctx);
          const lsn = (await c.query<{ lsn: string | null }>(sql.lockStateRowSql(this.schema), [schema.name])).rows[0]?.lsn;
          if (lsn !== opts.fromVersion) {
            throw new MirrorError(FailureType.Fenced, `the LSN moved to ${lsn ?? 'none'} while changes from ${opts.fromVersion} were applied`, ctx);
          }
        };
        /** The LSN moves, and the cycle's `_mirror_log` row (when it changed anything) goes in with it. */
        const recordSync = async (delta: number, counts: Pick<ApplyResult, 'inserts' | 'updates' | 'deletes' | 'bytes'>): Promise<void> => {
          const moved = (await c.query(text.recordSync, [schema.name, opts.toVersion, fingerprint, delta, opts.fromVersion])).rowCount;
          if (moved !== 1) throw new MirrorError(FailureType.Fenced, `the LSN is no longer ${opts.fromVersion}`, ctx);
          if (changedAnything(counts)) {
            await this.log(c, { table: schema.name, event: 'sync', ...counts, fromLsn: opts.fromVersion, toLsn: opts.toVersion, durationMs: Date.now() - started });
          }
        };
        await this.ensureStaging(c, stored);
        try {
          await copyInChunks(
            changes,
            opts.batchBytes,
            {
              // Only the last batch may move the LSN, so each batch waits to learn whether it is the last.
              needsLastFlag: true,
              open: async () => {
                await c.query('BEGIN');
                await claim();
                return c.query(copyFrom(text.copy)) as CopyInStream;
              },
              close: async (chunk: ChunkInfo, isLast: boolean) => {
                // Without statistics the planner takes the staging table for a small one (it is, unless
                // analyzed after a large batch): right for a few rows, a full scan of the mirror table for many.
                if (chunk.rows >= ANALYZE_STAGING_ROWS) await c.query(text.analyze);
                const deleted = (await c.query(text.del)).rowCount ?? 0;
                const up = (await c.query<{ upserts: string; inserted: string }>(text.upsert)).rows[0];
                const upserts = Number(up?.upserts ?? 0);
                const inserted = Number(up?.inserted ?? 0);
                const delta = inserted - deleted;
                if (isLast) {
                  await recordSync(delta, {
                    inserts: result.inserts + inserted,
                    updates: result.updates + upserts - inserted,
                    deletes: result.deletes + deleted,
                    bytes: result.bytes + chunk.bytes,
                  });
                } else await c.query(text.adjust, [schema.name, delta]);
                await c.query('COMMIT');
                result.upserts += upserts;
                result.inserts += inserted;
                result.updates += upserts - inserted;
                result.deletes += deleted;
                result.bytes += chunk.bytes;
              },
              empty: async () => {
                await c.query('BEGIN');
                await claim();
                await recordSync(0, { inserts: 0, updates: 0, deletes: 0, bytes: 0 });
                await c.query('COMMIT');
              },
            },
            (err) => toMirrorError(err, { ...ctx, side: 'source' }, FailureType.SourceReadFailed),
          );
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          await this.dropStaging(c, stored);
          throw err;
        }
        return result;
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /** Creates the staging table for `stored`'s shape on this connection unless it did already (outside any transaction, so it stays). */
  private async ensureStaging(c: PoolClient, stored: TableSchema): Promise<void> {
    const name = sql.stagingTable(stored);
    let made = stagingMade.get(c);
    if (made?.has(name)) return;
    await c.query(sql.createStagingSql(stored));
    if (!made) {
      made = new Set();
      stagingMade.set(c, made);
    }
    made.add(name);
  }

  /**
   * After a failed apply the staging table may be what failed (dropped by a partner's DISCARD, a column lost to a
   * DROP TYPE … CASCADE): drop it, so the next apply on this connection creates it afresh.
   */
  private async dropStaging(c: PoolClient, stored: TableSchema): Promise<void> {
    const name = sql.stagingTable(stored);
    stagingMade.get(c)?.delete(name);
    await c.query(sql.dropStagingSql(stored)).catch(() => undefined);
  }

  /** Drops the relations the registry names for `table`, and its state row, recording a `wipe` in `_mirror_log`. */
  private async dropOwned(c: PoolClient, table: string, reason: string | null): Promise<void> {
    const owned = await this.owned(c, table);
    if (!owned) return;
    if (owned.shadow) await c.query(sql.dropTableSql(this.schema, owned.shadow));
    await c.query(sql.dropTableSql(this.schema, owned.relation));
    await c.query(sql.deleteStateSql(this.schema), [table]);
    await this.log(c, { table, event: 'wipe', detail: reason });
  }

  async dropTable(table: string, reason?: string): Promise<void> {
    await withTransaction(
      this.pool,
      this.ctx('drop table', table),
      async (c) => {
        await c.query(sql.lockTimeoutSql(this.ddlLockTimeoutMs));
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, table)]);
        await this.dropOwned(c, table, reason ?? null);
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async release(table: string): Promise<void> {
    await withTransaction(
      this.pool,
      this.ctx('release table', table),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, table)]);
        const owned = await this.owned(c, table);
        if (owned?.shadow) await c.query(sql.dropTableSql(this.schema, owned.shadow));
        await c.query(sql.deleteStateSql(this.schema), [table]);
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async wipeAll(reason?: string): Promise<void> {
    await withTransaction(
      this.pool,
      this.ctx('wipe'),
      async (c) => {
        await c.query(sql.lockTimeoutSql(this.ddlLockTimeoutMs));
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema)]);
        // Only what the registry names: the partner's own tables in this schema stay.
        const owned = (await c.query<{ table_name: string }>(sql.allOwnedRelationsSql(this.schema))).rows;
        for (const { table_name: table } of owned) await this.dropOwned(c, table, reason ?? null);
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /** One table in one REPEATABLE READ snapshot with its state row (see mirror-compare.ts). */
  compareSnapshot(table: TableSchema): Promise<MirrorTableSnapshot> {
    return PgMirrorTableSnapshot.open(this.pool, this.schema, table, this.ddlLockTimeoutMs, this.ctx('compare', table.name));
  }

  preflight(plan: PreflightTables): Promise<Finding[]> {
    return withClient(this.pool, this.ctx('preflight'), (c) => mirrorPreflight(c, this.schema, plan), FailureType.Unavailable);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private async readTable(c: PoolClient, relation: string): Promise<ExistingTable | null> {
    const cols = await c.query<{ name: string; type: string; not_null: boolean }>(sql.COLUMNS_SQL, [this.schema, relation]);
    if (cols.rows.length === 0) return null;
    const pk = await c.query<{ name: string }>(sql.PRIMARY_KEY_SQL, [this.schema, relation]);
    return {
      columns: cols.rows.map((r) => ({ name: r.name, type: pgTypeToLogical(r.type), nullable: !r.not_null })),
      primaryKey: pk.rows.map((r) => r.name),
    };
  }
}

/** The native PostgreSQL type a column names (an array's element type included), or null for a portable type. */
function nativeName(type: LogicalType): string | null {
  if (type.kind === 'array') {
    const element = nativeName(type.element);
    return element === null ? null : `${element}[]`;
  }
  return type.kind === 'native' && type.dialect === 'postgres' ? type.name : null;
}

/** The schema as this mirror would store it (types through the PostgreSQL mapping and back). */
function normalised(schema: TableSchema): TableSchema {
  return { ...schema, columns: schema.columns.map((c) => ({ ...c, type: pgTypeToLogical(logicalToPgType(c.type)) })) };
}

/** Population chunks in the format the rows come in (binary COPY is cut at tuples, text at lines). */
function copyShadowChunks(
  schema: TableSchema,
  format: RowFormat,
  rows: Readable,
  chunkBytes: number,
  plan: Omit<ChunkPlan, 'needsLastFlag'>,
  onSourceError: (err: unknown) => unknown,
): Promise<void> {
  return format === 'pg-binary'
    ? copyBinaryInChunks(rows, chunkBytes, plan, onSourceError, binaryKeyReader(schema))
    : copyInChunks(rows, chunkBytes, { ...plan, needsLastFlag: false }, onSourceError);
}

/** The key a chunk ended at (`previous` for a chunk that held no line). */
function chunkKey(chunk: ChunkInfo, keyIndexes: number[], previous: KeyValues | null): KeyValues | null {
  if (chunk.lastKey) return chunk.lastKey;
  return chunk.lastLine === null ? previous : keyOf(chunk.lastLine, keyIndexes, 0);
}

/** Decoded key fields of one COPY text line; `offset` skips leading fields (the change stream's operation). */
function keyOf(line: string, keyIndexes: number[], offset: number): KeyValues {
  const fields = decodeLine(line);
  return keyIndexes.map((i) => fields[i + offset] ?? null);
}

function pgCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}

/** A split population's marker is read after a lock: it must see what the other ranges committed before it. */
const READ_COMMITTED = 'BEGIN ISOLATION LEVEL READ COMMITTED';

function sum(ranges: ShadowRange[], field: 'rows' | 'bytes'): number {
  return ranges.reduce((n, r) => n + r[field], 0);
}

/** Whether a shadow's ranges are the split asked for (both unsplit, or the same bounds in the same order). */
function sameSplit(have: ShadowRange[] | undefined, want: KeyRange[] | undefined): boolean {
  if (!have || !want) return !have && !want;
  const bounds = (r: KeyRange): string => JSON.stringify([r.after ?? null, r.upTo ?? null]);
  return have.length === want.length && have.every((r, i) => bounds(r) === bounds(want[i]!));
}
