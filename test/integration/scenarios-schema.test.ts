/**
 * Scenario 6, schema changes at the source while mirroring:
 * - incompatible (a type change that is not a widening, a primary-key change): the mirror side replaces the table
 *   and the session fails with a typed IncompatibleSchema failure naming the table; the workflow repopulates
 *   that table with the new schema while the other tables keep mirroring;
 * - compatible: an added column (backfilled with the source's values), a widened varchar and numeric, a relaxed
 *   NOT NULL, a dropped column, applied in place without losing data.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, after, historyMark, populations } from '../support/scenario-tools';
import { query } from '../support/checksum';

let h: Harness;
const products = { name: 'products', orderBy: 'id' };
const prices = { name: 'prices', orderBy: 'sku, valid_from' };
const stock = { name: 'stock', orderBy: 'id' };
const ALL = [products, prices, stock];

beforeAll(async () => {
  h = await startHarness('scn-schema');
  await h.sourceSql(`
    CREATE TABLE products (id int PRIMARY KEY, code text, name varchar(20) NOT NULL, weight numeric(6,2), legacy text);
    CREATE TABLE prices (sku text, valid_from date, amount numeric(10,2), PRIMARY KEY (sku, valid_from));
    CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL, location text);
    INSERT INTO products SELECT g, (g * 10)::text, 'product ' || g, g * 0.5, 'old ' || g FROM generate_series(1, 1000) g;
    INSERT INTO prices SELECT 'sku' || g, date '2024-01-01' + (g % 30), g FROM generate_series(1, 1000) g;
    INSERT INTO stock SELECT g, g % 100, 'loc ' || (g % 7) FROM generate_series(1, 1000) g;
  `);
  await h.startTenant();
  await h.waitConverged(ALL);
});
afterAll(async () => {
  await h?.stop();
});

async function mirrorColumn(table: string, column: string): Promise<{ type: string; not_null: boolean } | undefined> {
  const rows = await query<{ type: string; not_null: boolean }>(
    h.mirrorUrl,
    `SELECT format_type(atttypid, atttypmod) AS type, attnotnull AS not_null FROM pg_attribute
      WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped`,
    [`mirror.${table}`, column],
  );
  return rows[0];
}

describe('scenario 6: schema changes', () => {
  it('compatible changes apply in place: widened varchar and numeric, relaxed NOT NULL, dropped column — no repopulation', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`
      ALTER TABLE products ALTER COLUMN name TYPE varchar(60), ALTER COLUMN weight TYPE numeric(12,4), ALTER COLUMN name DROP NOT NULL;
      ALTER TABLE products DROP COLUMN legacy;
      UPDATE products SET name = 'a product name longer than twenty characters ' || id, weight = weight + 0.0001 WHERE id <= 100;
      UPDATE products SET name = NULL WHERE id = 500;
      INSERT INTO stock VALUES (5000, 1, 'new');
    `);
    await h.waitConverged(ALL);
    expect(await mirrorColumn('products', 'name')).toEqual({ type: 'character varying(60)', not_null: false });
    expect(await mirrorColumn('products', 'weight')).toEqual({ type: 'numeric(12,4)', not_null: false });
    expect(await mirrorColumn('products', 'legacy')).toBeUndefined();
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual([]);
  });

  it('an added column is backfilled with the source values for the rows already mirrored', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`
      ALTER TABLE stock ADD COLUMN reserved int NOT NULL DEFAULT 7;
      UPDATE stock SET reserved = 1 WHERE id <= 10;
      INSERT INTO products (id, code, name) VALUES (5001, '5001', 'meanwhile');
    `);
    const sums = await h.waitConverged(ALL);
    expect(sums.stock!.rows).toBe(1001);
    const reserved = await query<{ reserved: number; n: string }>(h.mirrorUrl, 'SELECT reserved, count(*)::text AS n FROM mirror.stock GROUP BY 1 ORDER BY 1');
    expect(reserved).toEqual([{ reserved: 1, n: '10' }, { reserved: 7, n: '991' }]);
    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.filter((r) => r.name === 'syncSession').map((r) => r.result)).toContainEqual(
      expect.objectContaining({ reason: 'schemaChanged', tables: ['stock'] }),
    );
    expect(populations(runs)).toEqual(['stock']);
  });

  it('a type change that is not a widening replaces and repopulates that table only; the history names it', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`
      ALTER TABLE products ALTER COLUMN code TYPE integer USING code::integer;
      UPDATE products SET code = code + 1 WHERE id <= 10;
      UPDATE prices SET amount = amount * 2 WHERE valid_from = date '2024-01-05';
    `);
    await h.waitConverged(ALL);
    expect(await mirrorColumn('products', 'code')).toEqual({ type: 'integer', not_null: false });
    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    const failure = runs.find((r) => r.failure?.type === 'IncompatibleSchema')?.failure;
    expect(failure?.message).toMatch(/column "code" changed type from string to int32.*table products/);
    expect(populations(runs)).toEqual(['products']);
  });

  it('a primary-key change replaces and repopulates that table only', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`
      ALTER TABLE prices ADD COLUMN region text NOT NULL DEFAULT 'eu';
      ALTER TABLE prices DROP CONSTRAINT prices_pkey, ADD PRIMARY KEY (sku, valid_from, region);
      INSERT INTO prices SELECT sku, valid_from, amount + 1, 'us' FROM prices WHERE sku < 'sku2';
      UPDATE stock SET qty = qty + 1 WHERE id % 5 = 0;
    `);
    const sums = await h.waitConverged([products, { name: 'prices', orderBy: 'sku, valid_from, region' }, stock]);
    const pk = await query<{ def: string }>(h.mirrorUrl, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'mirror.prices'::regclass AND contype = 'p'`);
    expect(pk[0]!.def).toBe('PRIMARY KEY (sku, valid_from, region)');
    expect(sums.prices!.rows).toBeGreaterThan(1000);
    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.some((r) => r.failure?.type === 'IncompatibleSchema' && /primary key changed.*table prices/.test(r.failure.message))).toBe(true);
    expect(populations(runs)).toEqual(['prices']);
    // Tracking follows the new key.
    await h.sourceSql(`UPDATE prices SET amount = 0 WHERE region = 'us'`);
    await h.waitConverged([products, { name: 'prices', orderBy: 'sku, valid_from, region' }, stock]);
  });
});
