/**
 * Independent checks of the mirror against the source, by plain SQL on both sides (not through the product):
 * per-table row counts and checksums, and how far the mirror's newest change trails the source's.
 */
import type { Client } from 'pg';
import { quotePg } from '../../src/core/identifiers';
import { TABLE_DEFS, primaryKeyOf, type CrmTableName } from './crm';

/** Session settings for checking connections: both sides then print values identically. */
export const CHECK_CONNECTION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';

export interface TableFigures {
  rows: number;
  checksum: string;
}

/**
 * Row count and an md5 over every row's text form, in key order. Columns are listed by name, so a different
 * column order in the mirror does not matter; enums (text in the mirror) print the same label.
 */
export async function tableFigures(db: Client, schema: string, table: CrmTableName): Promise<TableFigures> {
  const cols = TABLE_DEFS[table].columns.map(quotePg).join(', ');
  const order = primaryKeyOf(table).map(quotePg).join(', ');
  const res = await db.query<{ rows: string; checksum: string }>(
    `SELECT count(*) AS rows, md5(coalesce(string_agg(row(${cols})::text, E'\\n' ORDER BY ${order}), '')) AS checksum
       FROM ${quotePg(schema)}.${quotePg(table)}`,
  );
  const row = res.rows[0];
  return { rows: Number(row?.rows ?? 0), checksum: row?.checksum ?? '' };
}

export interface Comparison {
  equal: boolean;
  /** Tables whose count or checksum differs. */
  differing: string[];
  sourceRows: number;
  mirrorRows: number;
}

export async function compareTables(
  source: Client,
  mirror: Client,
  mirrorSchema: string,
  tables: readonly CrmTableName[],
): Promise<Comparison> {
  const differing: string[] = [];
  let sourceRows = 0;
  let mirrorRows = 0;
  for (const table of tables) {
    const [s, m] = await Promise.all([tableFigures(source, 'public', table), tableFigures(mirror, mirrorSchema, table)]);
    sourceRows += s.rows;
    mirrorRows += m.rows;
    if (s.rows !== m.rows || s.checksum !== m.checksum) differing.push(table);
  }
  return { equal: differing.length === 0, differing, sourceRows, mirrorRows };
}

/** Tables the live changes update often: their newest `updated_at` is a clock for "how far behind". */
const CLOCK_TABLES: readonly CrmTableName[] = ['accounts', 'opportunities', 'activities', 'contacts'];

async function newestChange(db: Client, schema: string): Promise<number | null> {
  const parts = CLOCK_TABLES.map((t) => `(SELECT max(updated_at) FROM ${quotePg(schema)}.${quotePg(t)})`).join(', ');
  const res = await db.query<{ newest: Date | null }>(`SELECT greatest(${parts}) AS newest`);
  const newest = res.rows[0]?.newest;
  return newest ? newest.getTime() : null;
}

/**
 * Milliseconds between the source's newest change and the newest one the mirror already has (0 when it has
 * caught up; null before either side has rows).
 */
export async function mirrorLag(source: Client, mirror: Client, mirrorSchema: string): Promise<number | null> {
  const [s, m] = await Promise.all([newestChange(source, 'public'), newestChange(mirror, mirrorSchema)]);
  if (s === null || m === null) return null;
  return Math.max(0, s - m);
}

export async function totalRows(db: Client, schema: string, tables: readonly CrmTableName[]): Promise<number> {
  const parts = tables.map((t) => `(SELECT count(*) FROM ${quotePg(schema)}.${quotePg(t)})`).join(' + ');
  const res = await db.query<{ n: string }>(`SELECT ${parts} AS n`);
  return Number(res.rows[0]?.n ?? 0);
}
