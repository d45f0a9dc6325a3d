/**
 * Reading a PostgreSQL source's catalog: which tables can be mirrored and their shapes, the native types of key
 * columns (for side tables and key-range predicates), and the facts that identify this database incarnation.
 */
import { createHash } from 'node:crypto';
import type { QueryResultRow } from 'pg';
import type { ColumnSchema, SourceFingerprint, SourceTables, TableFilter, TableSchema } from '../core/types';
import { mirroredTableName, quotePg } from '../core/identifiers';
import { pgTypeToLogical } from './types';

/** What these readers need from a connection: a pool client, or a snapshot's guarded statement runner. */
export interface Queryable {
  query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** What `prepared` needs: node-postgres's query by config, with a statement name. */
interface NamedQueries {
  query<R extends QueryResultRow>(config: { name: string; text: string; values?: unknown[] }): Promise<{ rows: R[] }>;
}

/**
 * Runs every statement as a named prepared statement, planned once per connection: the catalog reads a session
 * makes every cycle join many catalog tables, and planning them took about ten times as long as running them
 * (5 ms a plan for the key read; with 100 tenants on one source, a whole core). Only for statements whose text is
 * constant — values go in parameters — or the connection would keep one prepared statement per distinct text.
 */
export function prepared(client: NamedQueries): Queryable {
  return {
    query: <R extends QueryResultRow>(text: string, values: unknown[] = []) => client.query<R>({ name: statementName(text), text, values }),
  };
}

function statementName(text: string): string {
  return `tm_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
}

/** The tracking objects' schema; never offered for mirroring. */
export const TRACKING_SCHEMA = 'tenant_mirror_ct';

export const NO_SELECT_PRIVILEGE = 'no SELECT privilege';

/** The source table as a quoted, qualified name (DDL, casts to regclass, COPY queries). */
export function qualifiedTable(table: TableSchema): string {
  return `${quotePg(table.source.schema)}.${quotePg(table.source.table)}`;
}

/** A source table's name in the mirror: `schema.table`, with `public.` dropped. */
export function mirrorName(schema: string, table: string): string {
  return mirroredTableName(schema, table, 'public');
}

interface RelRow {
  oid: string;
  schema: string;
  table: string;
  readable: boolean;
}

interface ColRow {
  oid: string;
  name: string;
  type: string;
  is_enum: boolean;
  not_null: boolean;
}

interface KeyRow {
  oid: string;
  key: string[];
  index_name: string;
  is_primary: boolean;
}

// Plain and partitioned tables; partitions are read through their parent. Schemas starting with pg_ are reserved
// for the system (catalog, toast, other sessions' temp tables).
const RELATIONS_CTE = `
  WITH rel AS (
    SELECT c.oid, n.nspname, c.relname
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND n.nspname <> 'information_schema'
      AND n.nspname <> '${TRACKING_SCHEMA}'
      AND n.nspname NOT LIKE 'pg\\_%'
  )`;

const RELATIONS_SQL = `${RELATIONS_CTE}
  SELECT rel.oid::int8::text AS oid, rel.nspname::text AS schema, rel.relname::text AS table,
         pg_catalog.has_table_privilege(rel.oid, 'SELECT') AS readable
  FROM rel ORDER BY rel.nspname, rel.relname`;

// Only relations whose mirror name (mirrorName: `public.` dropped) starts with one of $1.
const RELATIONS_BY_PREFIX_SQL = `${RELATIONS_CTE}
  SELECT rel.oid::int8::text AS oid, rel.nspname::text AS schema, rel.relname::text AS table,
         pg_catalog.has_table_privilege(rel.oid, 'SELECT') AS readable
  FROM rel
  WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) p
                 WHERE pg_catalog.starts_with(CASE WHEN rel.nspname = 'public' THEN rel.relname::text
                                                   ELSE rel.nspname::text || '.' || rel.relname::text END, p))
  ORDER BY rel.nspname, rel.relname`;

// Columns and keys are read only for the relations the caller wants ($1): a source database shared by many
// tenants then costs each of them its own tables, not every table of the database.
const WANTED_CTE = 'WITH rel AS (SELECT unnest($1::oid[]) AS oid)';

// A domain is described by its base type (the mirror has no copy of the domain); an enum, or an array of one, is
// flagged so it maps to text. One level of domain is resolved: domains over domains keep the inner domain's name.
const COLUMNS_SQL = `${WANTED_CTE}
  SELECT a.attrelid::int8::text AS oid, a.attname::text AS name,
         pg_catalog.format_type(b.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END) AS type,
         e.typtype = 'e' AS is_enum,
         a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS not_null
  FROM rel
  JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  JOIN pg_catalog.pg_type e ON e.oid = CASE WHEN b.typcategory = 'A' AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
  ORDER BY a.attrelid, a.attnum`;

/**
 * The replication key of the relation `rel.oid`: its primary key, or else the unique index that can stand in for
 * one (immediate, valid, no predicate, no expressions, every key column NOT NULL), the narrowest first, then by
 * name, so the choice is stable. Key columns only (indnkeyatts), not INCLUDE columns, in index order.
 */
const KEY_INDEX_LATERAL = `
  SELECT i.indexrelid, ic.relname::text AS index_name, i.indisprimary AS is_primary
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
  WHERE i.indrelid = rel.oid
    AND (i.indisprimary OR (i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL))
    AND (i.indisprimary OR NOT EXISTS (
          SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS o(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = o.attnum
          WHERE o.ord <= i.indnkeyatts AND NOT a.attnotnull))
  ORDER BY i.indisprimary DESC, i.indnkeyatts, ic.relname
  LIMIT 1`;

const KEYS_SQL = `${WANTED_CTE}
  SELECT rel.oid::int8::text AS oid, array_agg(a.attname::text ORDER BY o.ord) AS key, k.index_name, k.is_primary
  FROM rel
  CROSS JOIN LATERAL (${KEY_INDEX_LATERAL}) k
  JOIN pg_catalog.pg_index i ON i.indexrelid = k.indexrelid
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS o(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = o.attnum
  WHERE o.ord <= i.indnkeyatts
  GROUP BY rel.oid, k.index_name, k.is_primary`;

/**
 * What every catalog row the listing of the wanted relations ($1) reads was last written by: the xmin of the
 * table's pg_class row (renames, grants, column counts), of each column's pg_attribute row and its type's pg_type
 * row (type, nullability, names, drops), and of each index's pg_index and pg_class rows (keys). Any DDL that could
 * change what listTables returns writes one of them in a new transaction, or deletes one; a freeze or an in-place
 * statistics update that changes nothing listed may also change the stamp, which only costs a listing.
 */
const STAMP_SQL = `
  SELECT md5(coalesce(string_agg(part, ',' ORDER BY part), '')) AS stamp FROM (
    SELECT 'c' || c.oid || ':' || c.xmin AS part FROM pg_catalog.pg_class c WHERE c.oid = ANY($1::oid[])
    UNION ALL
    SELECT 'a' || a.attrelid || ':' || a.attnum || ':' || a.xmin || ':' || t.oid || ':' || t.xmin
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0
    UNION ALL
    SELECT 'i' || i.indexrelid || ':' || i.xmin || ':' || ic.xmin
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = ANY($1::oid[])
  ) s`;

/**
 * How many rows of the catalogs a listing reads (namespaces, relations, columns, types, indexes, role
 * memberships) this database has inserted, updated or deleted, by its cumulative statistics; null when they cannot
 * be trusted for that: track_counts off, or PostgreSQL before 15, whose statistics collector may drop reports
 * under load and makes every read load the database's whole statistics file. Every DDL that can change a listing
 * writes one of these catalogs, and a backend reports its counts only once it is idle after its transaction: a
 * figure that has not moved means no such DDL has committed since — or that one has and its backend has not
 * reported it yet, which on a connection that goes idle takes up to about 10 s, and on one that stays busy after
 * the commit (a procedure that commits and goes on, a long statement next) lasts as long as that. CatalogMemo
 * bounds it by age. Three function calls per catalog: no scan, where a listing scans pg_class.
 */
const CATALOG_WRITES_SQL = `
  SELECT pg_catalog.current_setting('track_counts')::bool
         AND pg_catalog.current_setting('server_version_num')::int >= 150000 AS counted,
         sum(pg_catalog.pg_stat_get_tuples_inserted(r) + pg_catalog.pg_stat_get_tuples_updated(r)
             + pg_catalog.pg_stat_get_tuples_deleted(r))::text AS writes
  FROM unnest('{pg_catalog.pg_namespace,pg_catalog.pg_class,pg_catalog.pg_attribute,pg_catalog.pg_type,pg_catalog.pg_index,pg_catalog.pg_auth_members}'::pg_catalog.regclass[]) r`;

async function catalogWrites(db: Queryable): Promise<string | null> {
  const row = (await db.query<{ counted: boolean; writes: string | null }>(CATALOG_WRITES_SQL)).rows[0];
  return row?.counted && row.writes !== null ? row.writes : null;
}

async function readStamp(db: Queryable, oids: string[]): Promise<string> {
  return (await db.query<{ stamp: string }>(STAMP_SQL, [oids])).rows[0]?.stamp ?? '';
}

/** Columns and key of each wanted relation, by oid. */
interface Shapes {
  columns: Map<string, ColumnSchema[]>;
  keys: Map<string, KeyRow>;
}

async function readShapes(db: Queryable, oids: string[]): Promise<Shapes> {
  const columns = new Map<string, ColumnSchema[]>();
  for (const c of (await db.query<ColRow>(COLUMNS_SQL, [oids])).rows) {
    const list = columns.get(c.oid) ?? [];
    list.push({ name: c.name, type: pgTypeToLogical(c.type, c.is_enum), nullable: !c.not_null });
    columns.set(c.oid, list);
  }
  const keys = new Map((await db.query<KeyRow>(KEYS_SQL, [oids])).rows.map((k) => [k.oid, k]));
  return { columns, keys };
}

/**
 * What a session's listings (one every cycle) can skip, for DDL is rare:
 * - the whole listing, given again (`listing`) while the catalog write counts (CATALOG_WRITES_SQL) have not moved
 *   and the stamp of the listed tables' catalog rows (STAMP_SQL) is the same: the counts see a table created or
 *   renamed into the filter and a role granted, with a lag; the stamp sees every change to a listed table (a
 *   column, a key, a rename, a drop, a grant) at once;
 * - when it must list, the columns and keys, kept while the stamp stays the same.
 * Each figure is read before what it guards, so a DDL that commits in between moves the next figure and is read
 * then. The ages bound how long a change neither sees can go unnoticed: for the stamp (the base type of a domain
 * renamed) `maxAgeMs`; for the counts (a backend that stays busy long after its commit) `listingMaxAgeMs`, longer:
 * what only the counts see is a table that appeared or became readable, which can wait.
 */
export class CatalogMemo {
  private entry: { oids: string; stamp: string; readAt: number; shapes: Shapes } | null = null;
  private last: { key: string; writes: string; oids: string[]; stamp: string; readAt: number; tables: SourceTables } | null = null;
  /** Listings that had to read columns and keys (for tests and figures). */
  reads = 0;
  /** Listings answered with the last one (for tests and figures). */
  reused = 0;

  constructor(
    private readonly maxAgeMs = 60_000,
    private readonly listingMaxAgeMs = 300_000,
  ) {}

  /**
   * The filter's tables: with `reuse`, the last listing again when nothing it reads can have changed, else a new
   * one. Every new listing of a keyed filter is kept, so what is given again is never older than what was given.
   */
  async listing(db: Queryable, filter: TableFilter, reuse: boolean): Promise<SourceTables> {
    const writes = filter.key === undefined ? null : await catalogWrites(db);
    const last = this.last;
    if (reuse && writes !== null && last && last.key === filter.key && last.writes === writes && Date.now() - last.readAt < this.listingMaxAgeMs) {
      // The counts can lag; the stamp of the listed tables' own catalog rows cannot (a row's xmin is there at its
      // commit). Without it, a column widened in place (numeric(10,2) → numeric(12,4)) would be written into the
      // mirror at the old type, rounded, until the counts moved — and nothing backfills a widening.
      if (last.oids.length === 0 || (await readStamp(db, last.oids)) === last.stamp) {
        this.reused++;
        return { ...structuredClone(last.tables), reused: true };
      }
    }
    const readAt = Date.now();
    const { tables, oids, stamp } = await readListing(db, filter, this);
    if (filter.key !== undefined) this.last = writes === null ? null : { key: filter.key, writes, oids, stamp, readAt, tables: structuredClone(tables) };
    return tables;
  }

  /** The columns and keys of `oids`, and the stamp they were checked against. */
  async shapes(db: Queryable, oids: string[]): Promise<{ shapes: Shapes; stamp: string }> {
    const key = oids.join(',');
    const stamp = await readStamp(db, oids);
    const last = this.entry;
    if (last && last.oids === key && last.stamp === stamp && Date.now() - last.readAt < this.maxAgeMs) return { shapes: last.shapes, stamp };
    this.reads++;
    const shapes = await readShapes(db, oids);
    this.entry = { oids: key, stamp, readAt: Date.now(), shapes };
    return { shapes, stamp };
  }
}

/**
 * Every table the filter admits. A table with neither a primary key nor a unique index that can stand in for one
 * is listed with an empty key: it can only be mirrored by periodic refresh (the caller decides, by configuration).
 * The relations are read each time (tables created, dropped, renamed, granted); their columns and keys only when
 * their catalog rows changed (the memo). Also returns the oids of the readable tables and their stamp.
 */
async function readListing(db: Queryable, filter: TableFilter, memo: CatalogMemo): Promise<{ tables: SourceTables; oids: string[]; stamp: string }> {
  const rels = (filter.prefixes ? await db.query<RelRow>(RELATIONS_BY_PREFIX_SQL, [filter.prefixes]) : await db.query<RelRow>(RELATIONS_SQL)).rows;
  const wanted = rels.filter((r) => filter(mirrorName(r.schema, r.table)));
  if (wanted.length === 0) return { tables: { tables: [], skipped: [] }, oids: [], stamp: '' };
  const oids = wanted.filter((r) => r.readable).map((r) => r.oid);
  const { shapes, stamp } = await memo.shapes(db, oids);
  const { columns, keys } = shapes;

  const result: SourceTables = { tables: [], skipped: [] };
  for (const r of wanted) {
    const name = mirrorName(r.schema, r.table);
    if (!r.readable) {
      result.skipped.push({ name, reason: NO_SELECT_PRIVILEGE });
      continue;
    }
    const key = keys.get(r.oid);
    result.tables.push({
      name,
      source: { schema: r.schema, table: r.table },
      columns: columns.get(r.oid) ?? [],
      primaryKey: key?.key ?? [],
      ...(key && !key.is_primary ? { keyIndex: key.index_name } : {}),
    });
  }
  return { tables: result, oids, stamp };
}

/** A key column as the source declares it: the exact type (and collation) to recreate or cast to. */
export interface NativeKeyColumn {
  name: string;
  /** format_type() text, valid as a type in DDL and casts. */
  type: string;
  /** Qualified collation when it differs from the type's default (equality must mean the same on the side table). */
  collation: string | null;
}

/** The table's current replication key (see KEY_INDEX_LATERAL), in key order; empty when it has none or does not exist. */
export async function readNativeKey(db: Queryable, table: TableSchema): Promise<NativeKeyColumn[]> {
  const { rows } = await db.query<{ name: string; type: string; collation: string | null }>(
    `SELECT a.attname::text AS name,
            pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                 THEN pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END AS collation
     FROM (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)) rel
     CROSS JOIN LATERAL (${KEY_INDEX_LATERAL}) k
     JOIN pg_catalog.pg_index i ON i.indexrelid = k.indexrelid
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS o(attnum, ord)
     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = o.attnum
     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
     LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
     WHERE o.ord <= i.indnkeyatts
     ORDER BY o.ord`,
    // By oid, as relidOf (tracking.ts) does: the generic plan of a lookup by name scanned the catalog.
    [qualifiedTable(table)],
  );
  return rows;
}

/** Statistics-based row count (partitioned tables: the sum over their leaves); 0 when never analyzed. */
export async function estimateRows(db: Queryable, table: TableSchema): Promise<number> {
  const { rows } = await db.query<{ n: number | null }>(
    `SELECT COALESCE(
              (SELECT sum(greatest(p.reltuples, 0)) FROM pg_catalog.pg_partition_tree(r.oid) t
                 JOIN pg_catalog.pg_class p ON p.oid = t.relid WHERE t.isleaf),
              greatest(r.reltuples, 0))::float8 AS n
     FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace s ON s.oid = r.relnamespace
     WHERE s.nspname = $1 AND r.relname = $2`,
    [table.source.schema, table.source.table],
  );
  return Math.round(Number(rows[0]?.n ?? 0));
}

const UNAVAILABLE = 'unavailable';

/**
 * System identifier (changes when the cluster is rebuilt from scratch), timeline (changes on point-in-time
 * recovery and promotion), database oid (changes on dump/restore or re-creation) and the tracking epoch (changes
 * when tracking is reinstalled). pg_control_* may be revoked from the user: then those parts read 'unavailable'
 * rather than failing — checked with has_function_privilege so that no error aborts a surrounding snapshot.
 */
export async function readFingerprint(db: Queryable): Promise<SourceFingerprint> {
  const { rows } = await db.query<{ system_identifier: string; timeline: string; database_oid: string; has_meta: boolean }>(
    `SELECT
       CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
            THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END AS system_identifier,
       CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_checkpoint()', 'EXECUTE')
            THEN (SELECT timeline_id::text FROM pg_catalog.pg_control_checkpoint()) END AS timeline,
       (SELECT oid::int8::text FROM pg_catalog.pg_database WHERE datname = current_database()) AS database_oid,
       COALESCE(pg_catalog.has_table_privilege(pg_catalog.to_regclass('${TRACKING_SCHEMA}.meta'), 'SELECT'), false)
         AS has_meta`,
  );
  const row = rows[0];
  let trackingEpoch = 'none';
  if (row?.has_meta) {
    const meta = await db.query<{ epoch: string }>(`SELECT epoch::text AS epoch FROM ${TRACKING_SCHEMA}.meta`);
    trackingEpoch = meta.rows[0]?.epoch ?? 'none';
  }
  return {
    systemIdentifier: row?.system_identifier ?? UNAVAILABLE,
    timeline: row?.timeline ?? UNAVAILABLE,
    databaseOid: row?.database_oid ?? UNAVAILABLE,
    trackingEpoch,
  };
}
