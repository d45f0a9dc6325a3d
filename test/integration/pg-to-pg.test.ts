/**
 * PostgreSQL → PostgreSQL end to end: the real worker, workflow and activities on a Temporal dev server, a source
 * and a mirror PostgreSQL server. Population, then inserts, updates and deletes across every supported column
 * type, each step checked by an independent checksum on both sides.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

let h: Harness;

const ALL_TYPES_DDL = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
  CREATE TABLE all_types (
    id bigint PRIMARY KEY,
    small smallint, num integer NOT NULL, big bigint, exact numeric(20,5), unbounded numeric, r real, d double precision,
    flag boolean, body text, short varchar(20), fixed char(5), blob bytea,
    day date, t time, ttz time with time zone, ts timestamp(3), tstz timestamptz, span interval,
    id2 uuid, doc json, docb jsonb, x xml, ints integer[], words text[], feeling mood, addr inet, pos positive_int,
    money_col money, loose bpchar
  );
  CREATE SCHEMA sales;
  CREATE TABLE sales.order_lines (order_id integer, line_no smallint, sku text NOT NULL, qty numeric(10,2), PRIMARY KEY (order_id, line_no));
  CREATE TABLE "Weird ""Name""; DROP TABLE x;--" ("Key Col" text PRIMARY KEY, "väl" text);
  CREATE TABLE no_key (a int, b text);
  CREATE TABLE excluded_table (id int PRIMARY KEY);
`;

const INSERT_ROWS = `
  INSERT INTO all_types
  SELECT g, (g % 30000)::smallint, g, g::bigint * 1000000007, g * 1.23456, g::numeric / 7, g / 3.0, g / 7.0,
         g % 2 = 0, E'line ' || g || E'\\twith tab\\nand newline \\\\ backslash é ✓', left('v' || g, 20), 'c' || (g % 10),
         decode(md5(g::text), 'hex'), date '2020-01-01' + g, time '10:00' + g * interval '1 second', timetz '10:00+02',
         timestamp '2021-06-01 12:00:00.123' + g * interval '1 minute', timestamptz '2021-06-01 12:00:00+00' + g * interval '1 hour',
         g * interval '1 day 3 hours', md5(g::text)::uuid, json_build_object('g', g, 'nested', json_build_array(1, 2)),
         jsonb_build_object('g', g), xmlelement(name item, g), ARRAY[g, g + 1], ARRAY['a' || g, NULL], (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
         ('10.0.' || (g % 255) || '.1')::inet, g, (g * 1.5)::numeric::money, 'unbounded ' || g
  FROM generate_series(1, 2000) g;
  INSERT INTO all_types (id, num) VALUES (0, 0); -- a row that is NULL almost everywhere
  INSERT INTO sales.order_lines SELECT g / 4, g % 4, 'sku-' || g, g * 0.5 FROM generate_series(0, 999) g;
  INSERT INTO "Weird ""Name""; DROP TABLE x;--" VALUES ('a''b', 'x'), ('c"d', 'y'), (E'tab\\there', NULL);
  INSERT INTO no_key VALUES (1, 'x');
  INSERT INTO excluded_table VALUES (1);
`;

const TABLES = [
  { name: 'all_types', orderBy: 'id' },
  { name: 'sales.order_lines', sourceName: 'sales.order_lines', orderBy: 'order_id, line_no' },
  { name: 'Weird "Name"; DROP TABLE x;--', orderBy: '"Key Col"' },
];

beforeAll(async () => {
  h = await startHarness('pg-to-pg', { tables: { include: ['*', 'sales.*'], exclude: ['excluded_*'] } });
  await h.pg.source.sql(ALL_TYPES_DDL + INSERT_ROWS, 'app');
  await h.startTenant();
});
afterAll(async () => {
  await h?.stop();
});

describe('PostgreSQL → PostgreSQL', () => {
  it('populates every table with every column type, identical to the source', async () => {
    const sums = await h.waitConverged(TABLES);
    expect(sums.all_types!.rows).toBe(2001);
    expect(sums['sales.order_lines']!.rows).toBe(1000);
    const status = await h.status();
    const byName = new Map(status.tables.map((t) => [t.name, t]));
    expect(byName.get('all_types')).toMatchObject({ state: 'mirroring', rows: 2001 });
    expect(byName.get('all_types')!.lsn).toMatch(/^\d+$/);
    // No key: mirrored by periodic refresh (a full copy swapped in) rather than skipped.
    expect(byName.get('no_key')).toMatchObject({ state: 'mirroring', mode: 'refresh', rows: 1 });
    expect(byName.has('excluded_table')).toBe(false);
  });

  it('maps column types faithfully (types, nullability, primary key, no foreign keys)', async () => {
    const columns = await query<{ column_name: string; type: string; not_null: boolean }>(
      h.mirrorUrl,
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
         FROM pg_attribute a WHERE a.attrelid = 'mirror.all_types'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    );
    const types = Object.fromEntries(columns.map((c) => [c.column_name, c.type]));
    expect(types).toMatchObject({
      exact: 'numeric(20,5)', short: 'character varying(20)', fixed: 'character(5)', ts: 'timestamp(3) without time zone',
      tstz: 'timestamp with time zone', ints: 'integer[]', words: 'text[]', feeling: 'text', addr: 'inet', pos: 'integer', blob: 'bytea',
    });
    expect(columns.find((c) => c.column_name === 'num')!.not_null).toBe(true);
    expect(columns.find((c) => c.column_name === 'small')!.not_null).toBe(false);
    const constraints = await query<{ contype: string }>(h.mirrorUrl, `SELECT contype FROM pg_constraint WHERE conrelid = 'mirror.all_types'::regclass`);
    expect(constraints.map((c) => c.contype)).toEqual(['p']);
  });

  it('converges after inserts, updates (including a key change) and deletes across all tables', async () => {
    await h.pg.source.sql(
      `INSERT INTO all_types (id, num, body, blob, words) VALUES (5000, 1, E'new\\nrow', '\\x00ff', ARRAY['z']);
       UPDATE all_types SET body = body || ' (edited)', exact = exact * 2, docb = docb || '{"edited": true}' WHERE id % 10 = 0;
       UPDATE all_types SET id = 9000 WHERE id = 7;
       DELETE FROM all_types WHERE id BETWEEN 100 AND 199;
       UPDATE all_types SET small = NULL, tstz = NULL WHERE id = 1;
       DELETE FROM sales.order_lines WHERE order_id = 3;
       UPDATE sales.order_lines SET qty = qty + 1 WHERE line_no = 0;
       UPDATE "Weird ""Name""; DROP TABLE x;--" SET "väl" = 'changed' WHERE "Key Col" = 'a''b';`,
      'app',
    );
    const sums = await h.waitConverged(TABLES);
    expect(sums.all_types!.rows).toBe(2001 + 1 - 100);
    const moved = await query<{ id: string }>(h.mirrorUrl, 'SELECT id FROM mirror.all_types WHERE id IN (7, 9000)');
    expect(moved.map((r) => r.id)).toEqual(['9000']);
  });

  it('keeps connection details and row data out of the workflow history', async () => {
    const history = await h.client.workflow.getHandle(`tenant-mirror:${h.tenantId}`).fetchHistory();
    const text = historyToJSON(history);
    expect(text).toContain(h.tenantId);
    for (const secretish of ['postgres://', `:${h.pg.source.port}`, `:${h.pg.mirror.port}`, 'password']) expect(text).not.toContain(secretish);
    // Row values: a distinctive body from the source never appears, not even base64-encoded in a payload.
    const rowValue = 'with tab';
    expect(text).not.toContain(rowValue);
    expect(text).not.toContain(Buffer.from(`"${rowValue}`).toString('base64').slice(0, 8));
  });

  it('applies a burst of changes to the same rows as their net effect', async () => {
    await h.pg.source.sql(
      `DO $$ BEGIN FOR i IN 1..50 LOOP UPDATE all_types SET num = num + 1 WHERE id = 2; END LOOP; END $$;
       INSERT INTO all_types (id, num) VALUES (7000, 1); DELETE FROM all_types WHERE id = 7000;
       DELETE FROM all_types WHERE id = 3; INSERT INTO all_types (id, num, body) VALUES (3, 3, 'reborn');`,
      'app',
    );
    await h.waitConverged(TABLES);
    const rows = await query<{ id: string; num: number; body: string | null }>(h.mirrorUrl, 'SELECT id, num, body FROM mirror.all_types WHERE id IN (2, 3, 7000) ORDER BY id');
    expect(rows).toEqual([{ id: '2', num: 52, body: expect.any(String) }, { id: '3', num: 3, body: 'reborn' }]);
  });
});
