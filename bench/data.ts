/**
 * The deterministic data set: four tables of mixed types (a narrow one, a wide one, one with varied-length text
 * and one with bytea), generated on the server from hashes of the row number and a seed, so the same seed and
 * size give byte-identical tables. Plus `probe`, a tiny insert-only table the lag measurements stamp.
 *
 * Every data table has a `rev` column that updates increment: a table's (count, sum(id), sum(rev)) signature
 * then changes with every insert, update and delete, and comparing signatures on both sides is a cheap test
 * that a mirror has caught up.
 */
import type { Client } from 'pg';

export interface DataTable {
  name: string;
  /** Share of the rows. */
  share: number;
  ddl: string;
  /** SELECT list over generate_series alias g (bigint) and :seed. */
  select: string;
  /** SET clause of an update (rev is incremented separately). */
  update: string;
}

const h = (salt: number): string => `abs(hashint8(g * 7919 + ${salt} + :seed))`;

export const TABLES: DataTable[] = [
  {
    name: 'narrow',
    share: 0.5,
    ddl: 'CREATE TABLE narrow (id bigint PRIMARY KEY, val integer NOT NULL, rev integer NOT NULL DEFAULT 0)',
    select: `g, (${h(1)} % 1000000)::int, 0`,
    update: 'val = val + 1',
  },
  {
    name: 'events',
    share: 0.3,
    ddl: `CREATE TABLE events (id bigint PRIMARY KEY, account_id integer NOT NULL, kind text NOT NULL, amount numeric(12,2),
            happened_at timestamptz NOT NULL, flagged boolean NOT NULL, note text, rev integer NOT NULL DEFAULT 0)`,
    select: `g, (${h(2)} % 50000)::int, (ARRAY['click','view','purchase','refund','signup'])[1 + ${h(3)} % 5],
             ((${h(4)} % 10000000) / 100.0)::numeric(12,2), timestamptz '2024-01-01' + (${h(5)} % 31536000) * interval '1 second',
             ${h(6)} % 7 = 0, CASE WHEN ${h(7)} % 5 = 0 THEN NULL ELSE left(repeat(md5(g::text || :seed), 7), (${h(8)} % 200)::int) END, 0`,
    update: `amount = coalesce(amount, 0) + 1, note = left(coalesce(note, '') || ' edited', 220)`,
  },
  {
    name: 'wide',
    share: 0.15,
    ddl: `CREATE TABLE wide (id bigint PRIMARY KEY, c_int integer, c_big bigint, c_small smallint, c_num numeric(18,6), c_real real,
            c_double double precision, c_bool boolean, c_date date, c_ts timestamp, c_tstz timestamptz, c_name varchar(64),
            c_code char(8), c_text text, c_uuid uuid, c_json jsonb, c_int2 integer, c_text2 text, c_num2 numeric, rev integer NOT NULL DEFAULT 0)`,
    select: `g, (${h(11)} % 2000000000)::int, ${h(12)}, (${h(13)} % 32000)::smallint, (${h(14)} % 1000000000) / 1000.0,
             (${h(15)} % 100000) / 7.0, (${h(16)} % 100000) / 13.0, ${h(17)} % 2 = 0, date '2000-01-01' + (${h(18)} % 9000)::int,
             timestamp '2020-01-01' + (${h(19)} % 100000000) * interval '1 second', timestamptz '2020-01-01' + (${h(20)} % 100000000) * interval '1 second',
             'name-' || (${h(21)} % 100000), lpad((${h(22)} % 100000000)::text, 8, '0'), repeat(md5(g::text), 1 + (${h(23)} % 4)::int),
             md5(g::text || :seed)::uuid, jsonb_build_object('k', g, 'v', ${h(24)} % 1000), (${h(25)} % 1000)::int,
             left(md5((g + 1)::text), (${h(26)} % 32)::int), (${h(27)} % 100000000)::numeric / 3, 0`,
    update: 'c_int = coalesce(c_int, 0) + 1, c_tstz = now()',
  },
  {
    name: 'blobs',
    share: 0.05,
    ddl: 'CREATE TABLE blobs (id bigint PRIMARY KEY, name text NOT NULL, data bytea, created_at timestamptz NOT NULL, rev integer NOT NULL DEFAULT 0)',
    select: `g, 'blob-' || g, decode(repeat(md5(g::text || :seed), 1 + (${h(31)} % 40)::int), 'hex'),
             timestamptz '2023-01-01' + g * interval '1 second', 0`,
    update: `data = coalesce(data, '') || '\\x00ff'::bytea`,
  },
];

export const PROBE_DDL = 'CREATE TABLE probe (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())';

export const ALL_TABLE_NAMES = [...TABLES.map((t) => t.name), 'probe'];

function fill(sql: string, seed: number): string {
  return sql.replaceAll(':seed', String(seed));
}

/** Creates the tables (and probe) and fills them with `rows` rows in total. Returns rows per table. */
export async function generate(c: Client, rows: number, seed: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const t of TABLES) {
    const n = Math.max(1, Math.round(rows * t.share));
    await c.query(t.ddl);
    await c.query(fill(`INSERT INTO ${t.name} SELECT ${t.select} FROM generate_series(1::bigint, ${n}::bigint) g`, seed));
    counts[t.name] = n;
  }
  await c.query(PROBE_DDL);
  await c.query('VACUUM ANALYZE');
  return counts;
}

/** Creates the same (empty) tables, for the baselines' targets. */
export async function createEmpty(c: Client): Promise<void> {
  for (const t of TABLES) await c.query(t.ddl);
  await c.query(PROBE_DDL);
}

export type Signature = Record<string, string>;

/** Per table: count, sum(id), sum(rev) — equal on both sides once the mirror has caught up. */
export async function signature(c: Client, schema: string, tables = TABLES.map((t) => t.name)): Promise<Signature> {
  const parts = tables.map(
    (t) => `SELECT '${t}' AS t, count(*)::text || '/' || coalesce(sum(id), 0)::text || '/' || coalesce(sum(rev), 0)::text AS sig FROM "${schema}"."${t}"`,
  );
  const { rows } = await c.query<{ t: string; sig: string }>(parts.join(' UNION ALL '));
  return Object.fromEntries(rows.map((r) => [r.t, r.sig]));
}

export function sameSignature(a: Signature, b: Signature): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/**
 * `total` changed rows at the source, 60% updates, 30% inserts, 10% deletes, spread over the tables by share,
 * in one transaction. Rows are picked with a stride from an offset that depends on `round`, so each round
 * touches other rows. Returns the number of rows the statements reported.
 */
export async function makeChanges(c: Client, total: number, round: number, seed: number): Promise<number> {
  let changed = 0;
  await c.query('BEGIN');
  for (const t of TABLES) {
    const n = Math.max(1, Math.round(total * t.share));
    const upd = Math.round(n * 0.6);
    const ins = Math.round(n * 0.3);
    const del = n - upd - ins;
    const { rows } = await c.query<{ max: string | null; min: string | null }>(`SELECT max(id)::text AS max, min(id)::text AS min FROM ${t.name}`);
    const max = Number(rows[0]?.max ?? 0);
    const stride = Math.max(1, Math.floor(max / Math.max(1, upd + del + 1)));
    const off = 1 + ((round * 7 + 3) % Math.max(1, stride));
    const u = await c.query(
      `UPDATE ${t.name} SET rev = rev + 1, ${t.update} WHERE id IN (SELECT ${off}::bigint + g * ${stride} FROM generate_series(0, ${upd - 1}) g)`,
    );
    const dOff = off + Math.max(1, Math.floor(stride / 2));
    const d = await c.query(
      `DELETE FROM ${t.name} WHERE id IN (SELECT ${dOff}::bigint + g * ${stride} * ${Math.max(1, Math.floor(upd / Math.max(1, del)))} FROM generate_series(0, ${del - 1}) g)`,
    );
    const i = await c.query(
      fill(`INSERT INTO ${t.name} SELECT ${t.select} FROM generate_series(${max + 1}::bigint, ${max + ins}::bigint) g`, seed + round),
    );
    changed += (u.rowCount ?? 0) + (d.rowCount ?? 0) + (i.rowCount ?? 0);
  }
  await c.query('COMMIT');
  return changed;
}
