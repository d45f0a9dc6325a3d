/**
 * An independent comparison of a source table and its mirror: row count and an md5 over every row's text form
 * in primary-key order, computed by each server on its own data. It shares no code with the product.
 */
import { Client } from 'pg';

export interface TableChecksum {
  rows: number;
  md5: string;
}

export async function tableChecksum(url: string, qualifiedTable: string, orderBy: string): Promise<TableChecksum> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ rows: string; md5: string }>(
      `SELECT count(*)::text AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY ${orderBy}), '')) AS md5 FROM ${qualifiedTable} t`,
    );
    return { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 };
  } finally {
    await client.end();
  }
}

export async function query<T extends Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}
