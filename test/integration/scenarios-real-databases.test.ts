/**
 * What real tenant databases do that no scenario of the specification names, on real servers (a Temporal dev
 * server, a source and a mirror PostgreSQL, the real worker), each ending with the mirror compared to the source:
 * DDL on key columns (the tenant's own writes must keep working, and the mirror heals), types only the source has,
 * tables keyed by a unique index or by nothing at all, partitions coming and going, and source names that would
 * collide in the mirror.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';

let h: Harness;
const keyed = { name: 'keyed', orderBy: 'id' };
const widen = { name: 'widen', orderBy: 'id' };
const odd = { name: 'odd', orderBy: 'id' };
const uniq = { name: 'uniq', orderBy: 'code, n' };
const heap = { name: 'heap', orderBy: 'a, b' };
const parts = { name: 'parts', orderBy: 'id, region' };

beforeAll(async () => {
  h = await startHarness('scn-real-databases', { refreshInterval: '3s' });
  await h.sourceSql(`
    CREATE EXTENSION citext;
    CREATE TYPE pair AS (a int, b int);
    CREATE DOMAIN pair_d AS pair;
    CREATE TYPE floatrange AS RANGE (subtype = float8);
    CREATE TABLE keyed (id int PRIMARY KEY, v text);
    CREATE TABLE widen (id int PRIMARY KEY, v text);
    CREATE TABLE odd (id int PRIMARY KEY, p pair, pd pair_d, r floatrange, c citext);
    CREATE TABLE uniq (code text NOT NULL, n int NOT NULL, v text, UNIQUE (code, n));
    CREATE TABLE heap (a int, b text);
    CREATE TABLE parts (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
    CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');
    CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');
    INSERT INTO keyed SELECT g, 'k' || g FROM generate_series(1, 200) g;
    INSERT INTO widen SELECT g, 'w' || g FROM generate_series(1, 200) g;
    INSERT INTO odd SELECT g, ROW(g, -g)::pair, ROW(g, g)::pair_d, floatrange(g, g + 0.5), 'Name ' || g FROM generate_series(1, 50) g;
    INSERT INTO uniq SELECT 'c' || (g % 10), g, 'u' || g FROM generate_series(1, 100) g;
    INSERT INTO heap SELECT g % 7, 'row ' || g FROM generate_series(1, 100) g;
    INSERT INTO parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 100) g;
  `);
  await h.startTenant();
  await h.waitConverged([keyed, widen, odd, uniq, heap, parts], 90_000);
});
afterAll(async () => {
  await h?.stop();
});

async function mirrorColumns(table: string): Promise<string[]> {
  const rows = await query<{ c: string }>(
    h.mirrorUrl,
    `SELECT attname || ' ' || format_type(atttypid, atttypmod) AS c FROM pg_attribute
      WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [`mirror.${table}`],
  );
  return rows.map((r) => r.c);
}

describe('DDL on key columns', () => {
  it('renaming the key column: the tenant’s writes succeed, and the mirror heals with the new shape', async () => {
    await h.sourceSql(`
      ALTER TABLE keyed RENAME COLUMN id TO key_id;
      INSERT INTO keyed VALUES (1000, 'after the rename');
      UPDATE keyed SET v = 'updated' WHERE key_id <= 10;
      DELETE FROM keyed WHERE key_id BETWEEN 11 AND 20;`);
    await h.waitConverged([{ name: 'keyed', orderBy: 'key_id' }], 60_000);
    expect((await mirrorColumns('keyed'))[0]).toBe('key_id integer');
    await h.sourceSql(`UPDATE keyed SET v = 'and later' WHERE key_id = 1000`);
    await h.waitConverged([{ name: 'keyed', orderBy: 'key_id' }]);
  });

  it('widening the key to bigint: a key beyond int4 is written at the source and reaches the mirror', async () => {
    await h.sourceSql(`
      ALTER TABLE widen ALTER COLUMN id TYPE bigint;
      INSERT INTO widen VALUES (3000000000, 'beyond int4');
      UPDATE widen SET v = 'w' WHERE id = 1;`);
    await h.waitConverged([widen], 60_000);
    expect((await mirrorColumns('widen'))[0]).toBe('id bigint');
    expect(await query(h.mirrorUrl, `SELECT v FROM mirror.widen WHERE id = 3000000000`)).toEqual([{ v: 'beyond int4' }]);
  });
});

describe('what the mirror database does not have', () => {
  it('a composite, a domain over it, a range of a custom type and an extension type are stored as text; status says so', async () => {
    expect(await mirrorColumns('odd')).toEqual(['id integer', 'p text', 'pd text', 'r text', 'c text']);
    const status = await h.status();
    const notes = status.tables.find((t) => t.name === 'odd')?.notes ?? [];
    expect(notes.join('\n')).toMatch(/column "p" \(type pair\) is stored as text/);
    expect(notes.join('\n')).toMatch(/column "c" \(type citext\) is stored as text/);
    await h.sourceSql(`UPDATE odd SET p = ROW(0, 0)::pair, c = 'CHANGED' WHERE id <= 5; INSERT INTO odd VALUES (99, ROW(9, 9), ROW(9, 9), floatrange(1, 2), 'new')`);
    await h.waitConverged([odd, { name: 'keyed', orderBy: 'key_id' }]);
    expect(await query(h.mirrorUrl, `SELECT p, r, c FROM mirror.odd WHERE id = 99`)).toEqual([{ p: '(9,9)', r: '[1,2)', c: 'new' }]);
  });
});

describe('keys the source does not declare', () => {
  it('a table without a primary key but with a unique index over NOT NULL columns is mirrored by that key', async () => {
    const keys = await query<{ def: string }>(h.mirrorUrl, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'mirror.uniq'::regclass AND contype = 'p'`);
    expect(keys).toEqual([{ def: 'PRIMARY KEY (code, n)' }]);
    await h.sourceSql(`UPDATE uniq SET v = 'changed' WHERE n <= 10; DELETE FROM uniq WHERE n > 90; INSERT INTO uniq VALUES ('new', 1, 'n')`);
    await h.waitConverged([uniq]);
  });

  it('a table without any usable key is mirrored by a periodic full refresh; status shows which', async () => {
    const status = await h.status();
    expect(status.tables.find((t) => t.name === 'heap')).toMatchObject({ state: 'mirroring', mode: 'refresh' });
    expect(status.tables.find((t) => t.name === 'uniq')?.mode).toBe('tracked');
    await h.sourceSql(`INSERT INTO heap VALUES (1, 'row 1'), (NULL, NULL); DELETE FROM heap WHERE a = 3`);
    // Within the refresh interval (3 s here; 1 h by default) the next copy is swapped in.
    await h.waitConverged([heap], 60_000);
  });
});

describe('partitions', () => {
  for (const [what, sql] of [
    ['TRUNCATE of one partition', 'TRUNCATE parts_eu'],
    ['DETACH of a partition', 'ALTER TABLE parts DETACH PARTITION parts_us'],
    ['ATTACH of a table with rows', `CREATE TABLE parts_asia (id int NOT NULL, region text NOT NULL, v int); INSERT INTO parts_asia SELECT g, 'asia', g FROM generate_series(500, 520) g; ALTER TABLE parts ATTACH PARTITION parts_asia FOR VALUES IN ('asia')`],
    ['DROP of a partition', 'DROP TABLE parts_asia'],
  ] as const) {
    it(`${what} reaches the mirror of the partitioned table`, async () => {
      await h.sourceSql(sql);
      await h.sourceSql(`INSERT INTO parts VALUES (${1000 + what.length}, 'eu', 1)`);
      const sums = await h.waitConverged([parts], 60_000);
      const source = await query<{ n: string }>(h.sourceUrl, 'SELECT count(*)::text AS n FROM parts');
      expect(sums.parts!.rows).toBe(Number(source[0]!.n));
    });
  }
});

describe('names that would collide in the mirror', () => {
  it('"sales.orders" in public and orders in schema sales are both skipped, with the reason; a reserved name too; the rest goes on', async () => {
    await h.sourceSql(`
      CREATE SCHEMA sales;
      CREATE TABLE sales.orders (id int PRIMARY KEY);
      CREATE TABLE public."sales.orders" (id int PRIMARY KEY);
      CREATE TABLE public."_mirror_state" (id int PRIMARY KEY);
      UPDATE keyed SET v = 'while names collide' WHERE key_id = 1;`);
    const status = await h.waitStatus((st) => st.tables.filter((t) => t.state === 'skipped').length >= 2, 'the colliding tables skipped', 60_000);
    const skipped = Object.fromEntries(status.tables.filter((t) => t.state === 'skipped').map((t) => [t.name, t.error]));
    // Both source tables are one name in status; its reason names both.
    expect(skipped['sales.orders']).toMatch(/source tables "public\.sales\.orders" and "sales\.orders" would be one table in the mirror/);
    expect(skipped['_mirror_state']).toMatch(/table name "_mirror_state" is reserved by the mirror/);
    expect(await query(h.mirrorUrl, `SELECT to_regclass('mirror."sales.orders"') AS t`)).toEqual([{ t: null }]);
    await h.waitConverged([{ name: 'keyed', orderBy: 'key_id' }, widen]);
    // The tenant as a whole goes on mirroring (the heap table's refreshes come and go meanwhile).
    await h.waitStatus((st) => st.state === 'mirroring', 'the tenant mirroring', 30_000);
  });
});
