/**
 * The PostgreSQL mirror: one tenant's tables inside one schema of the partner's database, with `_mirror_state`
 * holding each table's LSN, always written in the same transaction as the data it covers.
 *
 * Population goes into a shadow table that has no primary key while it loads (COPY into a heap without an index
 * is markedly faster, and the key is built once, in sorted bulk, at swap time). Its progress is recorded in the
 * shadow's own COMMENT, in the same transaction as each chunk: `{schemaHash, lastKey, rows}`. That gives
 * shadowLastKey an exact, O(1) answer in the *source's* key order (an `ORDER BY pk DESC LIMIT 1` over the
 * unindexed shadow would scan the whole table, and would sort text keys by the mirror's collation, which need
 * not be the source's), and the marker disappears with the shadow when it is dropped or swapped in.
 */
import type { Readable } from 'node:stream';
import type { Pool, PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { decodeLine } from '../core/copy-text';
import { FailureType, MirrorError, toMirrorError, type ErrorContext, contextFor } from '../core/errors';
import { mirrorLockName, parseShadowProgress, schemaResult, schemaStep, toTableState, type StateRow } from '../core/mirror-common';
import type { ExistingTable } from '../core/schema-compat';
import { schemaHash } from '../core/schema-hash';
import type {
  ApplyResult,
  KeyValues,
  Mirror,
  MirrorTableState,
  PopulationProgress,
  SchemaApplyResult,
  MirrorOptions,
  ShadowProgress,
  SourceFingerprint,
  TableSchema,
  Version,
} from '../core/types';
import { copyInChunks, type ChunkInfo, type CopyInStream } from './chunked-copy';
import * as sql from './mirror-sql';
import { createPgPool, withClient, withTransaction } from './connection';
import { logicalToPgType, pgTypeToLogical } from './types';

export type PgMirrorOptions = MirrorOptions;

export class PgMirror implements Mirror {
  private readonly pool: Pool;
  private readonly schema: string;
  private closed = false;

  constructor(opts: PgMirrorOptions) {
    this.schema = opts.schema;
    this.ctx = contextFor(opts.tenant, 'mirror');
    this.pool = createPgPool(opts.url, { max: opts.maxConnections ?? 4, applicationName: 'tenant-mirror' });
  }

  private readonly ctx: (operation: string, table?: string) => ErrorContext;

  async ping(): Promise<void> {
    await withClient(this.pool, this.ctx('ping'), (c) => c.query('SELECT 1'), FailureType.Unavailable);
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
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async readState(): Promise<MirrorTableState[]> {
    return withClient(
      this.pool,
      this.ctx('read state'),
      async (c) => {
        let rows: StateRow[];
        try {
          rows = (await c.query<StateRow>(sql.readStateSql(this.schema))).rows;
        } catch (err) {
          // No state table yet (ensureState not run): nothing is mirrored.
          if (pgCode(err) === '42P01' || pgCode(err) === '3F000') return [];
          throw err;
        }
        return rows.map(toTableState);
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

  async applySchema(schema: TableSchema): Promise<SchemaApplyResult> {
    const live = sql.mirrorRelation(schema.name);
    const hash = schemaHash(schema);
    return withTransaction(
      this.pool,
      this.ctx('apply schema', schema.name),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, schema.name)]);
        const step = schemaStep(await this.readTable(c, live), normalised(schema), { keyTypeFixed: false });
        switch (step.step) {
          case 'create':
            await c.query(sql.createTableSql(this.schema, live, schema, { primaryKey: true }));
            // A state row without its table (dropped by hand) would claim rows the new, empty table lacks.
            await c.query(sql.deleteStateSql(this.schema), [schema.name]);
            break;
          case 'alter': {
            const alter = sql.alterTableSql(this.schema, live, step.changes);
            if (alter) await c.query(alter);
            await c.query(sql.setSchemaHashSql(this.schema), [schema.name, hash]);
            break;
          }
          case 'unchanged':
            await c.query(sql.setSchemaHashSql(this.schema), [schema.name, hash]);
            break;
          case 'replace':
            await c.query(sql.dropTableSql(this.schema, live));
            await c.query(sql.dropTableSql(this.schema, sql.shadowRelation(schema.name)));
            await c.query(sql.deleteStateSql(this.schema), [schema.name]);
        }
        return schemaResult(step);
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async copyIntoShadow(
    schema: TableSchema,
    rows: Readable,
    opts: { resume: boolean; chunkBytes: number; onChunk: (progress: PopulationProgress) => void },
  ): Promise<PopulationProgress> {
    const ctx = this.ctx('populate', schema.name);
    const shadow = sql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    const keyIndexes = schema.primaryKey.map((k) => schema.columns.findIndex((c) => c.name === k));
    const copySql = sql.copyFromStdinSql(this.schema, shadow, schema);
    const total: PopulationProgress = { rows: 0, bytes: 0, lastKey: null };

    return withClient(
      this.pool,
      ctx,
      async (c) => {
        const marker = await this.prepareShadow(c, schema, shadow, hash, opts.resume);
        let shadowRows = marker.rows;
        total.lastKey = marker.lastKey;
        try {
          await copyInChunks(
            rows,
            opts.chunkBytes,
            {
              needsLastFlag: false,
              open: async () => {
                await c.query('BEGIN');
                return c.query(copyFrom(copySql)) as CopyInStream;
              },
              close: async (chunk: ChunkInfo) => {
                const lastKey = chunk.lastLine === null ? total.lastKey : keyOf(chunk.lastLine, keyIndexes, 0);
                const next: ShadowProgress = { table: schema.name, schemaHash: hash, lastKey, rows: shadowRows + chunk.rows };
                await c.query(sql.commentOnTableSql(this.schema, shadow, JSON.stringify(next)));
                await c.query('COMMIT');
                shadowRows = next.rows;
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
      },
      FailureType.MirrorWriteFailed,
    );
  }

  /**
   * Makes sure a shadow built for this exact schema exists, and returns its progress. Without `resume`, or when
   * the shadow was built for another schema (or lost its marker), it starts over from an empty shadow.
   */
  private async prepareShadow(
    c: PoolClient,
    schema: TableSchema,
    shadow: string,
    hash: string,
    resume: boolean,
  ): Promise<ShadowProgress> {
    if (resume) {
      const marker = await this.readMarker(c, shadow);
      if (marker && marker.schemaHash === hash) return marker;
    }
    const fresh: ShadowProgress = { table: schema.name, schemaHash: hash, lastKey: null, rows: 0 };
    await c.query('BEGIN');
    try {
      await c.query(sql.dropTableSql(this.schema, shadow));
      await c.query(sql.createTableSql(this.schema, shadow, schema, { primaryKey: false }));
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

  async shadowLastKey(schema: TableSchema): Promise<KeyValues | null> {
    const shadow = sql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    return withClient(
      this.pool,
      this.ctx('read shadow progress', schema.name),
      async (c) => {
        const marker = await this.readMarker(c, shadow);
        // A shadow built for another schema is rebuilt by copyIntoShadow, so it has no key to resume after.
        return marker && marker.schemaHash === hash ? marker.lastKey : null;
      },
      FailureType.Unavailable,
    );
  }

  async swapInShadow(schema: TableSchema, lsn: Version, fingerprint: SourceFingerprint): Promise<{ rows: number }> {
    const live = sql.mirrorRelation(schema.name);
    const shadow = sql.shadowRelation(schema.name);
    const hash = schemaHash(schema);
    return withTransaction(
      this.pool,
      this.ctx('swap in population', schema.name),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, schema.name)]);
        const marker = await this.readMarker(c, shadow);
        if (!marker) {
          throw new MirrorError(FailureType.MirrorWriteFailed, 'no population to swap in (shadow table missing)');
        }
        if (marker.schemaHash !== hash) {
          throw new MirrorError(FailureType.MirrorWriteFailed, 'the population was built for another table schema');
        }
        // The key is built on the shadow before the live table is locked, so readers of the live table are
        // blocked only for the drop and the renames, not for the index build.
        await c.query(sql.addPrimaryKeySql(this.schema, shadow, schema));
        await c.query(sql.commentOnTableSql(this.schema, shadow, null));
        await c.query(sql.dropTableSql(this.schema, live));
        await c.query(sql.renameTableSql(this.schema, shadow, live));
        await c.query(sql.renameConstraintSql(this.schema, live, sql.pkConstraintName(shadow), sql.pkConstraintName(live)));
        await c.query(sql.recordPopulationSql(this.schema), [schema.name, lsn, hash, JSON.stringify(fingerprint), marker.rows]);
        return { rows: marker.rows };
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async applyChanges(
    schema: TableSchema,
    changes: Readable,
    opts: { toVersion: Version; fingerprint: SourceFingerprint; batchBytes: number },
  ): Promise<ApplyResult> {
    const ctx = this.ctx('apply changes', schema.name);
    const live = sql.mirrorRelation(schema.name);
    const hash = schemaHash(schema);
    const fingerprint = JSON.stringify(opts.fingerprint);
    const text = {
      staging: sql.createStagingSql(schema),
      copy: sql.copyStagingSql(schema),
      analyze: sql.analyzeStagingSql(),
      del: sql.deleteFromStagingSql(this.schema, live, schema),
      upsert: sql.upsertFromStagingSql(this.schema, live, schema),
      recordSync: sql.recordSyncSql(this.schema),
      adjust: sql.adjustRowCountSql(this.schema),
    };
    const result: ApplyResult = { upserts: 0, deletes: 0, bytes: 0 };

    return withClient(
      this.pool,
      ctx,
      async (c) => {
        const recordSync = (delta: number) =>
          c.query(text.recordSync, [schema.name, opts.toVersion, fingerprint, delta, hash]);
        try {
          await copyInChunks(
            changes,
            opts.batchBytes,
            {
              // Only the last batch may move the LSN, so each batch waits to learn whether it is the last.
              needsLastFlag: true,
              open: async () => {
                await c.query('BEGIN');
                await c.query(text.staging);
                return c.query(copyFrom(text.copy)) as CopyInStream;
              },
              close: async (chunk: ChunkInfo, isLast: boolean) => {
                // A fresh temporary table has no statistics; without them the planner may join it to a large
                // mirror table by a full scan instead of probing the primary key.
                await c.query(text.analyze);
                const deleted = (await c.query(text.del)).rowCount ?? 0;
                const up = (await c.query<{ upserts: string; inserted: string }>(text.upsert)).rows[0];
                const upserts = Number(up?.upserts ?? 0);
                const delta = Number(up?.inserted ?? 0) - deleted;
                if (isLast) await recordSync(delta);
                else await c.query(text.adjust, [schema.name, delta]);
                await c.query('COMMIT');
                result.upserts += upserts;
                result.deletes += deleted;
                result.bytes += chunk.bytes;
              },
              empty: async () => {
                await recordSync(0);
              },
            },
            (err) => toMirrorError(err, { ...ctx, side: 'source' }, FailureType.SourceReadFailed),
          );
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        return result;
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async dropTable(table: string): Promise<void> {
    await withTransaction(
      this.pool,
      this.ctx('drop table', table),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema, table)]);
        await c.query(sql.dropTableSql(this.schema, sql.mirrorRelation(table)));
        await c.query(sql.dropTableSql(this.schema, sql.shadowRelation(table)));
        await c.query(sql.deleteStateSql(this.schema), [table]);
      },
      FailureType.MirrorWriteFailed,
    );
  }

  async wipeAll(): Promise<void> {
    await withTransaction(
      this.pool,
      this.ctx('wipe'),
      async (c) => {
        await c.query(sql.ADVISORY_XACT_LOCK_SQL, [mirrorLockName(this.schema)]);
        await c.query(sql.createSchemaSql(this.schema));
        await c.query(sql.createStateTableSql(this.schema));
        // Everything in the tenant's schema but the state table is a mirrored table or a shadow.
        const tables = await c.query<{ name: string }>(sql.SCHEMA_TABLES_SQL, [this.schema, sql.STATE_TABLE]);
        for (const { name } of tables.rows) await c.query(sql.dropTableSql(this.schema, name));
        await c.query(sql.deleteAllStateSql(this.schema));
      },
      FailureType.MirrorWriteFailed,
    );
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

/** The schema as this mirror would store it (types through the PostgreSQL mapping and back). */
function normalised(schema: TableSchema): TableSchema {
  return { ...schema, columns: schema.columns.map((c) => ({ ...c, type: pgTypeToLogical(logicalToPgType(c.type)) })) };
}

/** Decoded key fields of one COPY text line; `offset` skips leading fields (the change stream's operation). */
function keyOf(line: string, keyIndexes: number[], offset: number): KeyValues {
  const fields = decodeLine(line);
  return keyIndexes.map((i) => fields[i + offset] ?? null);
}

function pgCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}
