/**
 * SQL text for the PostgreSQL mirror. Pure builders: every identifier goes through quotePg, every value is a
 * bind parameter (except the shadow's comment, which COMMENT cannot bind, and goes through literalPg).
 *
 * Naming inside the tenant's mirror schema:
 * - a mirrored table is named after TableSchema.name as ONE identifier (`sales.orders` is a table called
 *   "sales.orders"), fitted to 63 bytes;
 * - its shadow (population in progress) is `_shadow_<name>`;
 * - primary key constraints (and so their indexes, which share the schema's relation namespace) are
 *   `_pk_<table>`, chosen by us rather than PostgreSQL so a swap can give the new table its predecessor's name;
 * - `_mirror_state` holds the per-table LSNs, and is the registry of what the mirror owns: a table or shadow is
 *   ours only when its state row names it (`relation`, `shadow`); anything else in the schema is the partner's
 *   and is never altered, dropped or swapped;
 * - `_mirror_fence` holds one epoch per writer scope (the tenant's sync session, each table's population): a
 *   writer that took the fence before a newer one cannot commit any more.
 * Table names that would fall into these reserved spaces are refused (see mirrorRelation).
 */
import { createHash } from 'node:crypto';
import { FailureType, MirrorError } from '../core/errors';
import { fitPgIdentifier, literalPg, quotePg } from '../core/identifiers';
import type { SchemaChange } from '../core/schema-compat';
import type { TableSchema } from '../core/types';
import { logicalToPgType } from './types';

export const STATE_TABLE = '_mirror_state';
export const FENCE_TABLE = '_mirror_fence';
export const STAGING_TABLE = '_mirror_staging';
const SHADOW_PREFIX = '_shadow_';
const PK_PREFIX = '_pk_';

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The mirror table's identifier for a TableSchema.name. */
export function mirrorRelation(name: string): string {
  if (name === STATE_TABLE || name === FENCE_TABLE || name.startsWith(SHADOW_PREFIX) || name.startsWith(PK_PREFIX)) {
    throw new MirrorError(
      FailureType.BadConfig,
      `table name ${JSON.stringify(name)} is reserved by the mirror (${STATE_TABLE}, ${FENCE_TABLE}, ${SHADOW_PREFIX}*, ${PK_PREFIX}*)`,
      { table: name },
    );
  }
  return fitPgIdentifier(name, sha256Hex);
}

export function shadowRelation(name: string): string {
  return fitPgIdentifier(SHADOW_PREFIX + mirrorRelation(name), sha256Hex);
}

/** Name of the primary key constraint (and index) of the relation called `relation`. */
export function pkConstraintName(relation: string): string {
  return fitPgIdentifier(PK_PREFIX + relation, sha256Hex);
}

export function qualified(schema: string, relation: string): string {
  return `${quotePg(schema)}.${quotePg(relation)}`;
}

function columnList(names: string[]): string {
  return names.map(quotePg).join(', ');
}

export function createSchemaSql(schema: string): string {
  return `CREATE SCHEMA IF NOT EXISTS ${quotePg(schema)}`;
}

export function createStateTableSql(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified(schema, STATE_TABLE)} (
  table_name text NOT NULL,
  lsn numeric(20,0),
  schema_hash text,
  fingerprint jsonb,
  populated_at timestamptz,
  last_sync_at timestamptz,
  row_count bigint,
  relation text,
  shadow text,
  needs_backfill boolean NOT NULL DEFAULT false,
  CONSTRAINT ${quotePg(pkConstraintName(STATE_TABLE))} PRIMARY KEY (table_name)
)`;
}

/** Columns the state table gained since its first layout, added in place (name, definition). */
export const STATE_COLUMNS_SINCE_FIRST_LAYOUT: readonly [string, string][] = [
  ['relation', 'text'],
  ['shadow', 'text'],
  ['needs_backfill', 'boolean NOT NULL DEFAULT false'],
];

/** $1 schema: the state table's column names (empty when it does not exist). */
export const STATE_COLUMNS_SQL = `SELECT a.attname::text AS name FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = '${STATE_TABLE}' AND a.attnum > 0 AND NOT a.attisdropped`;

export function addStateColumnSql(schema: string, column: string, definition: string): string {
  return `ALTER TABLE ${qualified(schema, STATE_TABLE)} ADD COLUMN IF NOT EXISTS ${quotePg(column)} ${definition}`;
}

export function createFenceTableSql(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified(schema, FENCE_TABLE)} (
  scope text NOT NULL,
  epoch bigint NOT NULL,
  holder text,
  taken_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ${quotePg(pkConstraintName(FENCE_TABLE))} PRIMARY KEY (scope)
)`;
}

/** $1 scope, $2 holder: a new epoch for the scope, which every older holder's next write sees as lost. */
export function takeFenceSql(schema: string): string {
  return (
    `INSERT INTO ${qualified(schema, FENCE_TABLE)} AS f (scope, epoch, holder, taken_at) VALUES ($1, 1, $2, now()) ` +
    `ON CONFLICT (scope) DO UPDATE SET epoch = f.epoch + 1, holder = EXCLUDED.holder, taken_at = now() RETURNING epoch::text AS epoch`
  );
}

/**
 * $1 scope: the scope's epoch, share-locked until the writer's transaction ends, so a newer holder's takeFence
 * waits for a write in flight and every write after it sees the new epoch.
 */
export function checkFenceSql(schema: string): string {
  return `SELECT epoch::text AS epoch FROM ${qualified(schema, FENCE_TABLE)} WHERE scope = $1 FOR SHARE`;
}

/** $1 table: the table's LSN, row-locked until the writer's transaction ends (one writer per table at a time). */
export function lockStateRowSql(schema: string): string {
  return `SELECT lsn::text AS lsn FROM ${qualified(schema, STATE_TABLE)} WHERE table_name = $1 FOR UPDATE`;
}

/** $1 table, $2 relation: registers a table the mirror has just created (not populated yet: no LSN). */
export function registerTableSql(schema: string): string {
  return (
    `INSERT INTO ${qualified(schema, STATE_TABLE)} AS st (table_name, relation) VALUES ($1, $2) ` +
    `ON CONFLICT (table_name) DO UPDATE SET relation = EXCLUDED.relation, lsn = NULL, schema_hash = NULL, fingerprint = NULL, ` +
    `populated_at = NULL, last_sync_at = NULL, row_count = NULL, needs_backfill = false`
  );
}

/** $1 table, $2 shadow relation (or NULL): records the shadow a population fills. */
export function registerShadowSql(schema: string): string {
  return `UPDATE ${qualified(schema, STATE_TABLE)} SET shadow = $2 WHERE table_name = $1`;
}

/** $1 table: a column was added in place; the rows already mirrored need its values (repopulate). */
export function markBackfillSql(schema: string): string {
  return `UPDATE ${qualified(schema, STATE_TABLE)} SET needs_backfill = true WHERE table_name = $1`;
}

/** $1 table: the relations the state row registers (no row: the mirror owns nothing of that name). */
export function ownedRelationsSql(schema: string): string {
  return `SELECT relation, shadow FROM ${qualified(schema, STATE_TABLE)} WHERE table_name = $1`;
}

/** Every registered relation of the tenant: live tables and shadows. */
export function allOwnedRelationsSql(schema: string): string {
  return `SELECT table_name, relation, shadow FROM ${qualified(schema, STATE_TABLE)}`;
}

/**
 * CREATE TABLE for a mirror table or its shadow. Key columns are always NOT NULL (a primary key requires it).
 * `primaryKey: false` leaves the key out (the shadow gets it at swap time, see addPrimaryKeySql).
 */
export function createTableSql(schema: string, relation: string, table: TableSchema, opts: { primaryKey: boolean }): string {
  const keys = new Set(table.primaryKey);
  const defs = table.columns.map(
    (c) => `  ${quotePg(c.name)} ${logicalToPgType(c.type)}${c.nullable && !keys.has(c.name) ? '' : ' NOT NULL'}`,
  );
  if (opts.primaryKey && table.primaryKey.length > 0) {
    defs.push(`  CONSTRAINT ${quotePg(pkConstraintName(relation))} PRIMARY KEY (${columnList(table.primaryKey)})`);
  }
  return `CREATE TABLE ${qualified(schema, relation)} (\n${defs.join(',\n')}\n)`;
}

export function addPrimaryKeySql(schema: string, relation: string, table: TableSchema): string {
  return `ALTER TABLE ${qualified(schema, relation)} ADD CONSTRAINT ${quotePg(pkConstraintName(relation))} PRIMARY KEY (${columnList(table.primaryKey)})`;
}

export function dropTableSql(schema: string, relation: string): string {
  return `DROP TABLE IF EXISTS ${qualified(schema, relation)}`;
}

export function renameTableSql(schema: string, from: string, to: string): string {
  return `ALTER TABLE ${qualified(schema, from)} RENAME TO ${quotePg(to)}`;
}

export function renameConstraintSql(schema: string, relation: string, from: string, to: string): string {
  return `ALTER TABLE ${qualified(schema, relation)} RENAME CONSTRAINT ${quotePg(from)} TO ${quotePg(to)}`;
}

/** Rows arrive as COPY text in schema column order. */
export function copyFromStdinSql(schema: string, relation: string, table: TableSchema): string {
  return `COPY ${qualified(schema, relation)} (${columnList(table.columns.map((c) => c.name))}) FROM STDIN`;
}

/** The shadow's comment records its progress (see PgMirror); null removes it. */
export function commentOnTableSql(schema: string, relation: string, comment: string | null): string {
  return `COMMENT ON TABLE ${qualified(schema, relation)} IS ${comment === null ? 'NULL' : literalPg(comment)}`;
}

/** The staging table's operation column: `_op`, or more underscores if the table has a column of that name. */
export function stagingOpColumn(table: TableSchema): string {
  const names = new Set(table.columns.map((c) => c.name));
  let name = '_op';
  while (names.has(name)) name = '_' + name;
  return name;
}

/**
 * A per-transaction staging table shaped like the change stream: the operation, then the table's columns in
 * mirror types, all nullable (a `D` line carries only its key).
 */
export function createStagingSql(table: TableSchema): string {
  const defs = [`${quotePg(stagingOpColumn(table))} "char"`, ...table.columns.map((c) => `${quotePg(c.name)} ${logicalToPgType(c.type)}`)];
  return `CREATE TEMP TABLE ${quotePg(STAGING_TABLE)} (${defs.join(', ')}) ON COMMIT DROP`;
}

export function copyStagingSql(table: TableSchema): string {
  const cols = [stagingOpColumn(table), ...table.columns.map((c) => c.name)];
  return `COPY pg_temp.${quotePg(STAGING_TABLE)} (${columnList(cols)}) FROM STDIN`;
}

export function analyzeStagingSql(): string {
  return `ANALYZE pg_temp.${quotePg(STAGING_TABLE)}`;
}

/** One set-based delete of every staged `D` key. */
export function deleteFromStagingSql(schema: string, relation: string, table: TableSchema): string {
  const match = table.primaryKey.map((k) => `m.${quotePg(k)} = s.${quotePg(k)}`).join(' AND ');
  return (
    `DELETE FROM ${qualified(schema, relation)} AS m USING pg_temp.${quotePg(STAGING_TABLE)} AS s ` +
    `WHERE s.${quotePg(stagingOpColumn(table))} = 'D' AND ${match}`
  );
}

/**
 * One set-based upsert of every staged `U` row. Returns one row (upserts, inserted): `xmax = 0` on a returned
 * row means it was inserted rather than updated, which keeps the state's row count exact without a count(*).
 */
export function upsertFromStagingSql(schema: string, relation: string, table: TableSchema): string {
  const cols = columnList(table.columns.map((c) => c.name));
  const keys = new Set(table.primaryKey);
  const nonKey = table.columns.filter((c) => !keys.has(c.name));
  const action = nonKey.length
    ? `DO UPDATE SET ${nonKey.map((c) => `${quotePg(c.name)} = EXCLUDED.${quotePg(c.name)}`).join(', ')}`
    : 'DO NOTHING';
  return (
    `WITH up AS (INSERT INTO ${qualified(schema, relation)} AS m (${cols}) ` +
    `SELECT ${cols} FROM pg_temp.${quotePg(STAGING_TABLE)} WHERE ${quotePg(stagingOpColumn(table))} = 'U' ` +
    `ON CONFLICT (${columnList(table.primaryKey)}) ${action} RETURNING (m.xmax = 0) AS inserted) ` +
    `SELECT count(*)::bigint AS upserts, count(*) FILTER (WHERE inserted)::bigint AS inserted FROM up`
  );
}

/**
 * One ALTER TABLE carrying every compatible change (PostgreSQL rewrites the table at most once for all of
 * them), or null when there is nothing to do. Added columns are always nullable: rows already in the table
 * have no value for them until the table is repopulated.
 */
export function alterTableSql(schema: string, relation: string, changes: SchemaChange[]): string | null {
  const actions = changes.map((c) => {
    switch (c.kind) {
      case 'dropColumn':
        return `DROP COLUMN ${quotePg(c.column)}`;
      case 'addColumn':
        return `ADD COLUMN ${quotePg(c.column.name)} ${logicalToPgType(c.column.type)}`;
      case 'widenType':
        return `ALTER COLUMN ${quotePg(c.column)} TYPE ${logicalToPgType(c.to)}`;
      case 'dropNotNull':
        return `ALTER COLUMN ${quotePg(c.column)} DROP NOT NULL`;
    }
  });
  return actions.length ? `ALTER TABLE ${qualified(schema, relation)} ${actions.join(', ')}` : null;
}

// ---- state rows. Parameters are listed beside each statement. ----

/** $1 table, $2 lsn (decimal text), $3 schema hash, $4 fingerprint (json text), $5 row count, $6 relation. */
export function recordPopulationSql(schema: string): string {
  return (
    `INSERT INTO ${qualified(schema, STATE_TABLE)} AS st ` +
    `(table_name, lsn, schema_hash, fingerprint, populated_at, last_sync_at, row_count, relation, shadow, needs_backfill) ` +
    `VALUES ($1, $2::numeric, $3, $4::jsonb, now(), now(), $5, $6, NULL, false) ` +
    `ON CONFLICT (table_name) DO UPDATE SET lsn = EXCLUDED.lsn, schema_hash = EXCLUDED.schema_hash, ` +
    `fingerprint = EXCLUDED.fingerprint, populated_at = EXCLUDED.populated_at, ` +
    `last_sync_at = EXCLUDED.last_sync_at, row_count = EXCLUDED.row_count, relation = EXCLUDED.relation, ` +
    `shadow = NULL, needs_backfill = false`
  );
}

/**
 * Records a finished change cycle, moving the LSN only from the one the changes were read from: $1 table, $2 lsn,
 * $3 fingerprint (json text), $4 row count change of this transaction, $5 the LSN the batch started from. No row
 * updated means another writer moved the LSN first: the caller rolls back.
 */
export function recordSyncSql(schema: string): string {
  return (
    `UPDATE ${qualified(schema, STATE_TABLE)} AS st SET lsn = $2::numeric, fingerprint = $3::jsonb, last_sync_at = now(), ` +
    `row_count = ${adjustedCount('st.row_count', '$4')} WHERE st.table_name = $1 AND st.lsn = $5::numeric`
  );
}

/** GREATEST ignores NULL, so without the CASE an unknown count would silently become 0. */
function adjustedCount(column: string, param: string): string {
  return `CASE WHEN ${column} IS NULL THEN NULL ELSE GREATEST(0, ${column} + ${param}::bigint) END`;
}

/** Keeps the row count exact for an intermediate batch without touching the LSN. $1 table, $2 change. */
export function adjustRowCountSql(schema: string): string {
  return `UPDATE ${qualified(schema, STATE_TABLE)} SET row_count = ${adjustedCount('row_count', '$2')} WHERE table_name = $1`;
}

/** $1 table, $2 schema hash. Only an existing state row is updated: no row means "not populated yet". */
export function setSchemaHashSql(schema: string): string {
  return `UPDATE ${qualified(schema, STATE_TABLE)} SET schema_hash = $2 WHERE table_name = $1 AND schema_hash IS DISTINCT FROM $2`;
}

/** $1 table. */
export function deleteStateSql(schema: string): string {
  return `DELETE FROM ${qualified(schema, STATE_TABLE)} WHERE table_name = $1`;
}


/** A timestamptz as ISO 8601 UTC text with milliseconds (what Date.toISOString() writes). */
function isoUtc(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}

/** Rows in the shape of mirror-common.ts StateRow. */
export function readStateSql(schema: string): string {
  return (
    `SELECT table_name, lsn::text AS lsn, schema_hash, fingerprint, ${isoUtc('populated_at')} AS populated_at, ` +
    `${isoUtc('last_sync_at')} AS last_sync_at, row_count::text AS row_count, needs_backfill ` +
    `FROM ${qualified(schema, STATE_TABLE)} ORDER BY table_name`
  );
}

// ---- catalog reads (all parameterised: $1 schema, $2 relation) ----

export const COLUMNS_SQL = `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`;

export const PRIMARY_KEY_SQL = `SELECT a.attname AS name
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
ORDER BY k.ord`;

/** The relation's comment, or no row when it does not exist. */
export const TABLE_COMMENT_SQL = `SELECT obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;

/** The comments (progress markers) of every shadow in the schema: $1 schema. */
export const SHADOW_MARKERS_SQL = `SELECT obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND starts_with(c.relname, '${SHADOW_PREFIX}')`;

/**
 * $1 schema, $2 relation, $3 pkConstraintName($2): whether the relation carries the primary key constraint the
 * mirror gives its own tables (how a table created by the first layout, which registered tables only once
 * populated, is recognised as ours).
 */
export const HAS_OUR_KEY_SQL = `SELECT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND k.contype = 'p' AND k.conname = $3) AS ours`;

/** $1 type names: which of them the mirror database knows (to_regtype resolves them in its search path). */
export const KNOWN_TYPES_SQL = `SELECT t AS name, to_regtype(t) IS NOT NULL AS known FROM unnest($1::text[]) AS t`;

/** Bounds the wait for a table lock held by someone else (a partner's long query); SET takes no parameter. */
export function lockTimeoutSql(ms: number): string {
  return `SET LOCAL lock_timeout = ${Math.max(1, Math.round(ms))}`;
}

/** Serialises schema changes of one table (or the state set-up) across workers: $1 lock name. */
export const ADVISORY_XACT_LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`;
