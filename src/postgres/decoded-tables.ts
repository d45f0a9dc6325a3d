/**
 * The per-table objects of `tracking: logical`: a table tracked that way is a member of our publication and has
 * REPLICA IDENTITY FULL (on the table and on each of its leaf partitions); `decoded` records it, with the replica
 * identity it had before, which untrack restores. The database-wide part (slot, ingestion) is decoding.ts.
 *
 * Why FULL and not the primary key (REPLICA IDENTITY DEFAULT): a table in a publication that publishes updates
 * and deletes refuses every UPDATE and DELETE once it has no replica identity ("cannot update table … because it
 * does not have a replica identity and publishes updates") — so with DEFAULT, a tenant dropping its primary key,
 * or a table keyed by a unique index, would have its own statements fail. FULL depends on no index, so no DDL of
 * the tenant's can take it away; the price is the old row in the WAL of every UPDATE and DELETE (docs/logical-decoding.md).
 */
import type { PoolClient } from 'pg';
import type { TableSchema } from '../core/types';
import { literalPg, quotePg } from '../core/identifiers';
import { TRACKING_SCHEMA, type Queryable } from './catalog';

export type TrackingMode = 'trigger' | 'logical';

/** Our publication in the source database (publications are per database). */
export const PUBLICATION = TRACKING_SCHEMA;

const S = quotePg(TRACKING_SCHEMA);
const PUB = quotePg(PUBLICATION);

/**
 * The database's slot: slots are per cluster, so the name carries the database's oid (a copy of the database
 * restored elsewhere in the cluster does not take this one's slot for its own).
 */
export const SLOT_NAME_SQL = `${literalPg(`${TRACKING_SCHEMA}_`)} || (SELECT d.oid::int8::text FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())`;

/** Shared by every install of a decoded table, exclusive to remove the slot and publication. */
export const DECODING_SETUP_LOCK = `hashtext(${literalPg(TRACKING_SCHEMA)}), hashtext('decoding set-up')`;
/** Held (session-level) by whoever reads from the slot or creates or drops it: one at a time. */
export const DECODING_SLOT_LOCK = `hashtext(${literalPg(TRACKING_SCHEMA)}), hashtext('decoding slot')`;

export function decodingRegistrySql(): string[] {
  return [
    // One row per database while a slot feeds side tables. ingested_lsn: every transaction that committed before
    // it is in the side tables. horizon: every xid below it committed before ingested_lsn (so its changes are in).
    `CREATE TABLE IF NOT EXISTS ${S}.decoding (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       slot_name text NOT NULL,
       publication text NOT NULL,
       ingested_lsn pg_lsn NOT NULL,
       horizon xid8 NOT NULL,
       ingested_at timestamptz NOT NULL DEFAULT now(),
       created_at timestamptz NOT NULL DEFAULT now())`,
    // identities: [{ relid, identity: relreplident, index: oid of the replica identity index | null }] as they were.
    `CREATE TABLE IF NOT EXISTS ${S}.decoded (
       relid oid PRIMARY KEY,
       identities jsonb NOT NULL)`,
  ];
}

/**
 * SQL true when the decoded table `relid` is still fed: the slot named in `decoding` exists in this database, is
 * pgoutput's and has not lost WAL it needs, and our publication publishes every kind of change of the table (per
 * leaf partition, not through its root: a TRUNCATE of one partition is reported only that way).
 */
export function decodedIntactSql(relid: string): string {
  return `EXISTS (SELECT 1 FROM ${S}.decoding dc
             JOIN pg_catalog.pg_replication_slots rs ON rs.slot_name = dc.slot_name AND rs.database = pg_catalog.current_database()
                  AND rs.slot_type = 'logical' AND rs.plugin = 'pgoutput' AND rs.wal_status IS DISTINCT FROM 'lost'
             JOIN pg_catalog.pg_publication p ON p.pubname = dc.publication
                  AND p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AND NOT p.pubviaroot
             JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid AND pr.prrelid = ${relid})`;
}

/** pgoutput does not send generated columns: a key with one cannot be read from decoded changes. */
export async function keyHasGeneratedColumn(db: Queryable, table: TableSchema): Promise<boolean> {
  const { rows } = await db.query<{ generated: boolean }>(
    `SELECT coalesce(bool_or(a.attgenerated <> ''), false) AS generated
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = $1 AND c.relname = $2)
        AND a.attname = ANY ($3::text[]) AND NOT a.attisdropped`,
    [table.source.schema, table.source.table, table.primaryKey],
  );
  return rows[0]?.generated === true;
}

interface Identity {
  relid: string;
  identity: string;
  index: string | null;
}

/** The relations' names and replica identities now (those that still exist). */
async function identitiesOf(c: Queryable, oids: string[]): Promise<(Identity & { name: string })[]> {
  if (oids.length === 0) return [];
  const { rows } = await c.query<Identity & { name: string }>(
    `SELECT r.oid::int8::text AS relid, r.relreplident::text AS identity,
            (SELECT i.indexrelid::int8::text FROM pg_catalog.pg_index i WHERE i.indrelid = r.oid AND i.indisreplident LIMIT 1) AS index,
            pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(r.relname) AS name
       FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
      WHERE r.oid = ANY (($1::int8[])::oid[])
      ORDER BY r.oid`,
    [oids],
  );
  return rows;
}

/**
 * Makes a table decoded, inside the install transaction (which holds SHARE ROW EXCLUSIVE on it; REPLICA
 * IDENTITY takes ACCESS EXCLUSIVE for the moment of the ALTER, skipped where the identity is FULL already).
 */
export async function installDecoded(c: PoolClient, relid: string, table: string, partitions: { relid: string }[]): Promise<void> {
  const before = await identitiesOf(c, [relid, ...partitions.map((p) => p.relid)]);
  for (const rel of before) {
    if (rel.identity !== 'f') await c.query(`ALTER TABLE ${rel.name} REPLICA IDENTITY FULL`);
  }
  await c.query(`ALTER PUBLICATION ${PUB} ADD TABLE ${table}`);
  await c.query(`INSERT INTO ${S}.decoded (relid, identities) VALUES ($1::int8::oid, $2::jsonb)`, [
    relid,
    JSON.stringify(before.map(({ relid: r, identity, index }) => ({ relid: r, identity, index }))),
  ]);
}

/**
 * Undoes installDecoded for the table `relid`, if it was decoded: out of the publication (if it still exists), and
 * each relation's replica identity back to what it was — unless someone changed it since from our FULL.
 */
export async function removeDecoded(c: PoolClient, relid: string): Promise<void> {
  const present = await c.query<{ ok: boolean }>(`SELECT pg_catalog.to_regclass(${literalPg(`${TRACKING_SCHEMA}.decoded`)}) IS NOT NULL AS ok`);
  if (!present.rows[0]?.ok) return;
  const row = (await c.query<{ identities: Identity[] }>(`SELECT identities FROM ${S}.decoded WHERE relid = $1::int8::oid`, [relid])).rows[0];
  if (!row) return;
  const member = await c.query<{ name: string }>(
    `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(r.relname) AS name
       FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
       JOIN pg_catalog.pg_class r ON r.oid = pr.prrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
      WHERE p.pubname = $1 AND pr.prrelid = $2::int8::oid`,
    [PUBLICATION, relid],
  );
  for (const m of member.rows) await c.query(`ALTER PUBLICATION ${PUB} DROP TABLE ${m.name}`);
  const now = new Map((await identitiesOf(c, row.identities.map((i) => i.relid))).map((r) => [r.relid, r]));
  for (const was of row.identities) {
    const rel = now.get(was.relid);
    if (!rel || rel.identity !== 'f' || was.identity === 'f') continue;
    await c.query(`ALTER TABLE ${rel.name} REPLICA IDENTITY ${await identityClause(c, was)}`);
  }
  await c.query(`DELETE FROM ${S}.decoded WHERE relid = $1::int8::oid`, [relid]);
}

async function identityClause(c: Queryable, was: Identity): Promise<string> {
  if (was.identity === 'n') return 'NOTHING';
  if (was.identity === 'i' && was.index !== null) {
    const { rows } = await c.query<{ name: string }>(
      `SELECT quote_ident(ic.relname) AS name FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indexrelid = $1::int8::oid AND i.indrelid = $2::int8::oid`,
      [was.index, was.relid],
    );
    if (rows[0]) return `USING INDEX ${rows[0].name}`;
  }
  return 'DEFAULT';
}
