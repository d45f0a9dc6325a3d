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
 *   writer that took the fence before a newer one cannot commit any more;
 * - `_mirror_log` is the partner-readable history (src/core/mirror-log.ts), keyed by (logged_at, id) so that
 *   pruning by age walks its primary key;
 * - a partner's index carried over to a new population is built on the shadow under a `_shadow_ix_<hash>` name
 *   and renamed once the table it replaces is gone (index names are unique per schema).
 * Table names that would fall into these reserved spaces are refused (see mirrorRelation).
 */
import { createHash } from 'node:crypto';
import { FailureType, MirrorError } from '../core/errors';
import { fitPgIdentifier, literalPg, quotePg } from '../core/identifiers';
import type { SchemaChange } from '../core/schema-compat';
import type { RowFormat, TableSchema } from '../core/types';
import { LOG_COLUMNS } from '../core/mirror-log';
import { logicalToPgType } from './types';

export const STATE_TABLE = '_mirror_state';
export const FENCE_TABLE = '_mirror_fence';
export const LOG_TABLE = '_mirror_log';
export const STAGING_TABLE = '_mirror_staging';
const SHADOW_PREFIX = '_shadow_';
const PK_PREFIX = '_pk_';

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The mirror table's identifier for a TableSchema.name. */
export function mirrorRelation(name: string): string {
  if (name === STATE_TABLE || name === FENCE_TABLE || name === LOG_TABLE || name.startsWith(SHADOW_PREFIX) || name.startsWith(PK_PREFIX)) {
    throw new MirrorError(
      FailureType.BadConfig,
      `table name ${JSON.stringify(name)} is reserved by the mirror (${STATE_TABLE}, ${FENCE_TABLE}, ${LOG_TABLE}, ${SHADOW_PREFIX}*, ${PK_PREFIX}*)`,
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

export function createLogTableSql(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified(schema, LOG_TABLE)} (
  id bigint GENERATED ALWAYS AS IDENTITY,
  logged_at timestamptz NOT NULL DEFAULT now(),
  table_name text NOT NULL,
  event text NOT NULL,
  inserts bigint,
  updates bigint,
  deletes bigint,
  row_count bigint,
  bytes bigint,
  from_lsn numeric(20,0),
  to_lsn numeric(20,0),
  duration_ms bigint,
  detail text,
  CONSTRAINT ${quotePg(pkConstraintName(LOG_TABLE))} PRIMARY KEY (logged_at, id)
)`;
}

/** $1..$11: the entry's values in LOG_COLUMNS order (mirror-log.ts logValues). */
export function insertLogSql(schema: string): string {
  const casts: Record<(typeof LOG_COLUMNS)[number], string> = {
    table_name: 'text', event: 'text', inserts: 'bigint', updates: 'bigint', deletes: 'bigint', row_count: 'bigint', bytes: 'bigint',
    from_lsn: 'numeric', to_lsn: 'numeric', duration_ms: 'bigint', detail: 'text',
  };
  const values = LOG_COLUMNS.map((c, i) => `$${i + 1}::${casts[c]}`);
  return `INSERT INTO ${qualified(schema, LOG_TABLE)} (${columnList([...LOG_COLUMNS])}) VALUES (${values.join(', ')})`;
}

/** $1 schema: per table, the newest sync row of the last day (the log's key starts with logged_at: a range scan). */
export function lastCyclesSql(schema: string): string {
  return `SELECT DISTINCT ON (table_name) table_name, inserts::text, updates::text, deletes::text, logged_at
FROM ${qualified(schema, LOG_TABLE)}
WHERE logged_at > now() - interval '1 day' AND event = 'sync'
ORDER BY table_name, logged_at DESC, id DESC`;
}

/** $1 retention in milliseconds: deletes the rows logged before it. */
export function pruneLogSql(schema: string): string {
  return `DELETE FROM ${qualified(schema, LOG_TABLE)} WHERE logged_at < now() - $1::bigint * interval '1 millisecond'`;
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

/** Rows arrive in schema column order, as COPY text or (`pg-binary`) PostgreSQL's binary COPY. */
export function copyFromStdinSql(schema: string, relation: string, table: TableSchema, format: RowFormat = 'text'): string {
  return `COPY ${qualified(schema, relation)} (${columnList(table.columns.map((c) => c.name))}) FROM STDIN${format === 'pg-binary' ? ' (FORMAT binary)' : ''}`;
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
 * A staging table shaped like the change stream: the operation, then the table's columns in mirror types, all
 * nullable (a `D` line carries only its key). One per shape (its name carries a hash of the column definitions),
 * created once per connection and emptied at every commit: creating and dropping a temporary table in every apply
 * wrote and deleted catalog rows each time, about half the cost of applying a small change set.
 */
function stagingDefs(table: TableSchema): string[] {
  return [`${quotePg(stagingOpColumn(table))} "char"`, ...table.columns.map((c) => `${quotePg(c.name)} ${logicalToPgType(c.type)}`)];
}

export function stagingTable(table: TableSchema): string {
  return `${STAGING_TABLE}_${sha256Hex(stagingDefs(table).join(', ')).slice(0, 16)}`;
}

export function createStagingSql(table: TableSchema): string {
  return `CREATE TEMP TABLE IF NOT EXISTS ${quotePg(stagingTable(table))} (${stagingDefs(table).join(', ')}) ON COMMIT DELETE ROWS`;
}

export function dropStagingSql(table: TableSchema): string {
  return `DROP TABLE IF EXISTS pg_temp.${quotePg(stagingTable(table))}`;
}

export function copyStagingSql(table: TableSchema): string {
  const cols = [stagingOpColumn(table), ...table.columns.map((c) => c.name)];
  return `COPY pg_temp.${quotePg(stagingTable(table))} (${columnList(cols)}) FROM STDIN`;
}

/**
 * Statistics for a large batch, so the planner probes the mirror's primary key rather than scanning the table.
 * They outlive the batch: the planner scales their row density by the table's size when a later batch is planned.
 * Only the operation and the key columns, the ones the delete and the upsert filter and join on: the others'
 * statistics are never used, and computing them cost a wide table's batch more than its delete.
 */
export function analyzeStagingSql(table: TableSchema): string {
  return `ANALYZE pg_temp.${quotePg(stagingTable(table))} (${columnList([stagingOpColumn(table), ...table.primaryKey])})`;
}

/** One set-based delete of every staged `D` key. */
export function deleteFromStagingSql(schema: string, relation: string, table: TableSchema): string {
  const match = table.primaryKey.map((k) => `m.${quotePg(k)} = s.${quotePg(k)}`).join(' AND ');
  return (
    `DELETE FROM ${qualified(schema, relation)} AS m USING pg_temp.${quotePg(stagingTable(table))} AS s ` +
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
    `SELECT ${cols} FROM pg_temp.${quotePg(stagingTable(table))} WHERE ${quotePg(stagingOpColumn(table))} = 'U' ` +
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

// ---- the partner's objects on a mirror table, carried over to a new population (see partner-objects.ts) ----

/** $1 schema, $2 relation: the table's oid as text, or no row. */
export const RELATION_OID_SQL = `SELECT c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;

/**
 * $1 table oid: the partner's indexes (the primary key is ours; an index behind a constraint belongs to the
 * constraint, which is not carried over), with the quoting pg_get_indexdef used for its name and table.
 */
export const PARTNER_INDEXES_SQL = `SELECT i.relname::text AS name, quote_ident(i.relname) AS quoted_name,
  quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS quoted_table, x.indisunique AS is_unique,
  pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE x.indrelid = $1::oid AND NOT x.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY i.relname`;

/** $1 relation oid: privileges granted to others than its owner, on the relation and on its columns (NULL grantee: PUBLIC). */
export const GRANTS_SQL = `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
  a.privilege_type, a.is_grantable, NULL::text AS column_name
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a WHERE c.oid = $1::oid AND a.grantee <> c.relowner
UNION ALL
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type, a.is_grantable, att.attname::text
FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
CROSS JOIN LATERAL aclexplode(att.attacl) a WHERE c.oid = $1::oid AND a.grantee <> c.relowner`;

/** $1 relation oid: its comment (column_name NULL) and its columns' comments. */
export const COMMENTS_SQL = `SELECT NULL::text AS column_name, d.description AS comment FROM pg_description d
WHERE d.objoid = $1::oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
UNION ALL
SELECT a.attname::text, d.description FROM pg_description d JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
WHERE d.objoid = $1::oid AND d.classoid = 'pg_class'::regclass AND d.objsubid > 0`;

/**
 * $1 table oid: every view that depends on the table, directly or through other views, with the depth of its
 * longest path (a view is recreated after everything it reads from).
 */
export const DEPENDENT_VIEWS_SQL = `WITH RECURSIVE dependents(oid, depth) AS (
  SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::oid AND r.ev_class <> $1::oid
  UNION
  SELECT r.ev_class, p.depth + 1 FROM dependents p
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = p.oid AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class <> p.oid
)
SELECT v.oid::text AS oid, n.nspname::text AS schema, v.relname::text AS name, v.relkind::text AS kind, max(p.depth)::int AS depth,
  pg_get_viewdef(v.oid) AS definition, v.reloptions::text[] AS options, pg_get_userbyid(v.relowner)::text AS owner
FROM dependents p JOIN pg_class v ON v.oid = p.oid JOIN pg_namespace n ON n.oid = v.relnamespace
GROUP BY v.oid, n.nspname, v.relname, v.relkind, v.reloptions, v.relowner
ORDER BY max(p.depth), v.oid`;

export interface PartnerIndex {
  name: string;
  quoted_name: string;
  quoted_table: string;
  is_unique: boolean;
  definition: string;
}

/** The name a carried-over index has on the shadow until the table it replaces is dropped. */
export function carriedIndexName(name: string): string {
  return fitPgIdentifier(`${SHADOW_PREFIX}ix_${sha256Hex(name).slice(0, 16)}`, sha256Hex);
}

/**
 * The partner's index definition rebuilt on the shadow under `tempName`: pg_get_indexdef prints
 * `CREATE [UNIQUE] INDEX <name> ON <schema>.<table> USING …`, so only that head is replaced and the rest (method,
 * columns, expressions, INCLUDE, WITH, WHERE) is kept as PostgreSQL printed it. Null for a definition of another
 * shape, which is then not carried over (and said so).
 */
export function indexOnShadowSql(index: PartnerIndex, schema: string, shadow: string, tempName: string): string | null {
  const kind = index.is_unique ? 'CREATE UNIQUE INDEX ' : 'CREATE INDEX ';
  const head = `${kind}${index.quoted_name} ON ${index.quoted_table} USING `;
  if (!index.definition.startsWith(head)) return null;
  return `${kind}${quotePg(tempName)} ON ${qualified(schema, shadow)} USING ${index.definition.slice(head.length)}`;
}

export function renameIndexSql(schema: string, from: string, to: string): string {
  return `ALTER INDEX ${qualified(schema, from)} RENAME TO ${quotePg(to)}`;
}

export interface Grant {
  grantee: string | null;
  privilege_type: string;
  is_grantable: boolean;
  column_name: string | null;
}

export function grantSql(schema: string, relation: string, g: Grant): string {
  // Privilege names come from aclexplode (SELECT, INSERT, …): checked, since they are not quoted.
  if (!/^[A-Z][A-Z ]*$/.test(g.privilege_type)) throw new Error(`unexpected privilege name ${JSON.stringify(g.privilege_type)}`);
  const column = g.column_name === null ? '' : ` (${quotePg(g.column_name)})`;
  const to = g.grantee === null ? 'PUBLIC' : quotePg(g.grantee);
  return `GRANT ${g.privilege_type}${column} ON TABLE ${qualified(schema, relation)} TO ${to}${g.is_grantable ? ' WITH GRANT OPTION' : ''}`;
}

export function commentOnColumnSql(schema: string, relation: string, column: string, comment: string): string {
  return `COMMENT ON COLUMN ${qualified(schema, relation)}.${quotePg(column)} IS ${literalPg(comment)}`;
}

export function commentOnViewSql(schema: string, view: string, comment: string): string {
  return `COMMENT ON VIEW ${qualified(schema, view)} IS ${literalPg(comment)}`;
}

/**
 * A view as pg_get_viewdef printed it (its trailing semicolon dropped), with its reloptions (check_option,
 * security_barrier, security_invoker), whose names are checked and whose values are quoted.
 */
export function createViewSql(schema: string, name: string, definition: string, options: string[] | null): string {
  const withs = (options ?? []).map((o) => {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    if (!/^[a-z_]+$/.test(key)) throw new Error(`unexpected view option ${JSON.stringify(o)}`);
    return eq < 0 ? key : `${key} = ${literalPg(o.slice(eq + 1))}`;
  });
  const body = definition.trim().replace(/;\s*$/, '');
  return `CREATE VIEW ${qualified(schema, name)}${withs.length ? ` WITH (${withs.join(', ')})` : ''} AS ${body}`;
}

export function dropViewSql(schema: string, name: string): string {
  return `DROP VIEW ${qualified(schema, name)}`;
}

export function alterViewOwnerSql(schema: string, name: string, owner: string): string {
  return `ALTER VIEW ${qualified(schema, name)} OWNER TO ${quotePg(owner)}`;
}
