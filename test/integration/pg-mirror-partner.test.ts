/**
 * The partner's side of a PostgreSQL mirror, on a real server: hooks (mirror.hooks) run in the transaction that
 * creates or swaps a table, and a failing one fails that table and changes nothing; what the partner made on a
 * mirror table (indexes, grants on the table and on a column, comments, views — through other views too) is still
 * there, and still works, after a population replaces the table; `_mirror_log` records each changed cycle, each
 * population and each wipe in the transaction that made it, and is pruned by age.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { encodeLine } from '../../src/core/copy-text';
import { FailureType } from '../../src/core/errors';
import { mirrorHooks } from '../../src/config/load';
import type { TableSchema } from '../../src/core/types';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgMirror } from '../../src/postgres/mirror';
import { rejection } from '../support/failures';

const FINGERPRINT = { system: '1', timeline: '1' };
let server: EmbeddedPg;
let db: Client;
const open: PgMirror[] = [];

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'pg-mirror-partner') });
  db = new Client({ connectionString: server.url() });
  await db.connect();
  await db.query(`CREATE ROLE reporting; CREATE ROLE analyst; CREATE SCHEMA partner; CREATE TABLE partner.audit (what text)`);
});

afterAll(async () => {
  for (const m of open) await m.close();
  await db?.end();
  await server?.stop();
});

const orders: TableSchema = {
  name: 'orders',
  source: { schema: 'public', table: 'orders' },
  columns: [
    { name: 'id', type: { kind: 'int64' }, nullable: false },
    { name: 'customer_id', type: { kind: 'int32' }, nullable: true },
    { name: 'total', type: { kind: 'decimal', precision: 10, scale: 2 }, nullable: true },
  ],
  primaryKey: ['id'],
};

function mirrorWith(schema: string, hooks: Parameters<typeof mirrorHooks>[0] = []): PgMirror {
  const m = new PgMirror({ url: server.url(), schema, tenant: 'partner-test', hooks: mirrorHooks(hooks) });
  open.push(m);
  return m;
}

const rowsOf = (n: number, base = 0): Readable =>
  Readable.from(Array.from({ length: n }, (_, i) => encodeLine([String(i + 1), String((i % 7) + 1), `${base + i + 1}.50`])));

async function populate(m: PgMirror, lsn: string, n: number, base = 0): Promise<void> {
  const fence = await m.takeFence('populate:orders', 'test');
  await m.copyIntoShadow(orders, rowsOf(n, base), { resume: false, version: lsn, chunkBytes: 1 << 16, fence, onChunk: () => undefined });
  await m.swapInShadow(orders, lsn, FINGERPRINT, fence);
}

async function q<T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(text, params)).rows;
}

async function indexesOf(schema: string): Promise<Record<string, string>> {
  const rows = await q<{ indexname: string; indexdef: string }>(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'orders'`, [schema]);
  return Object.fromEntries(rows.map((r) => [r.indexname, r.indexdef]));
}

async function grantsOf(schema: string, relation = 'orders'): Promise<string[]> {
  const rows = await q<{ g: string }>(
    `SELECT DISTINCT pg_get_userbyid(a.grantee)::text || ' ' || a.privilege_type AS g
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
     WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner
     UNION
     SELECT pg_get_userbyid(a.grantee)::text || ' ' || a.privilege_type || ' (' || att.attname || ')'
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0
     CROSS JOIN LATERAL aclexplode(att.attacl) a
     WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner
     ORDER BY 1`,
    [schema, relation],
  );
  return rows.map((r) => r.g);
}

async function logOf(schema: string): Promise<Record<string, unknown>[]> {
  return q(
    `SELECT table_name, event, inserts::int, updates::int, deletes::int, row_count::int, bytes::int, from_lsn::text, to_lsn::text, duration_ms::int, detail
     FROM "${schema}"._mirror_log ORDER BY logged_at, id`,
  );
}

describe('hooks', () => {
  const SCHEMA = 'hooked';
  const hooks = [
    { tables: ['orders'], afterCreate: 'CREATE INDEX orders_by_customer ON {{table}} (customer_id)' },
    { tables: ['*'], afterCreate: 'GRANT SELECT ON {{table}} TO reporting', afterPopulate: `INSERT INTO partner.audit VALUES ('populated ' || '{{table}}')` },
  ];
  let m: PgMirror;

  beforeAll(async () => {
    m = mirrorWith(SCHEMA, hooks);
    await m.ensureState();
  });

  it('afterCreate runs with the table it created: index and grant are there before any row', async () => {
    expect(await m.applySchema(orders)).toEqual({ outcome: 'created' });
    expect(Object.keys(await indexesOf(SCHEMA)).sort()).toEqual(['_pk_orders', 'orders_by_customer']);
    expect(await grantsOf(SCHEMA)).toEqual(['reporting SELECT']);
  });

  it('afterPopulate runs after each swap, with the hook’s index carried over (not created twice)', async () => {
    await populate(m, '100', 50);
    await populate(m, '200', 60);
    expect(await q(`SELECT what FROM partner.audit ORDER BY 1`)).toEqual([{ what: 'populated "hooked"."orders"' }, { what: 'populated "hooked"."orders"' }]);
    expect(Object.keys(await indexesOf(SCHEMA)).sort()).toEqual(['_pk_orders', 'orders_by_customer']);
    expect(await grantsOf(SCHEMA)).toEqual(['reporting SELECT']);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM hooked.orders`))[0]!.n).toBe(60);
  });

  it('a failing afterCreate fails the table alone and leaves nothing: no table, no registration', async () => {
    const broken = mirrorWith('hooked_broken', [{ tables: ['*'], afterCreate: 'CREATE INDEX nope ON {{table}} (no_such_column)' }]);
    await broken.ensureState();
    const err = await rejection(broken.applySchema(orders));
    expect(err.type).toBe(FailureType.TableFailed);
    expect(err.message).toMatch(/the partner's afterCreate hook mirror\.hooks\[1\]\.afterCreate failed: column "no_such_column" does not exist .*\[tenant partner-test, mirror, table orders, apply schema\]/);
    expect(await q(`SELECT 1 FROM pg_tables WHERE schemaname = 'hooked_broken' AND tablename = 'orders'`)).toEqual([]);
    expect(await broken.readState()).toEqual([]);
  });

  it('a failing afterPopulate rolls the swap back: the table keeps its rows and LSN, and the shadow waits for a retry', async () => {
    const failing = mirrorWith(SCHEMA, [{ tables: ['*'], afterPopulate: 'SELECT 1/0' }]);
    const fence = await failing.takeFence('populate:orders', 'test');
    await failing.copyIntoShadow(orders, rowsOf(5), { resume: false, version: '300', chunkBytes: 1 << 16, fence, onChunk: () => undefined });
    const err = await rejection(failing.swapInShadow(orders, '300', FINGERPRINT, fence));
    expect(err.type).toBe(FailureType.TableFailed);
    expect(err.message).toMatch(/afterPopulate hook mirror\.hooks\[1\]\.afterPopulate failed: division by zero/);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM hooked.orders`))[0]!.n).toBe(60);
    expect((await m.readState()).find((s) => s.table === 'orders')?.lsn).toBe('200');
    expect((await failing.shadowProgress(orders))?.rows).toBe(5);
  });
});

describe('what the partner made on a mirror table survives a repopulation', () => {
  const SCHEMA = 'partnered';
  let m: PgMirror;

  beforeAll(async () => {
    m = mirrorWith(SCHEMA);
    await m.ensureState();
    await m.applySchema(orders);
    await populate(m, '100', 40);
    await db.query(`
      CREATE INDEX big_totals ON partnered.orders (total DESC) INCLUDE (customer_id) WHERE total > 10;
      CREATE UNIQUE INDEX "odd ""name""" ON partnered.orders ((id * 2));
      GRANT SELECT ON partnered.orders TO reporting;
      GRANT SELECT (total) ON partnered.orders TO analyst;
      COMMENT ON TABLE partnered.orders IS 'the partner''s orders';
      COMMENT ON COLUMN partnered.orders.total IS 'gross';
      CREATE VIEW partner.big_orders WITH (security_barrier) AS SELECT id, total FROM partnered.orders WHERE total > 20;
      CREATE VIEW partner.big_count AS SELECT count(*) AS n FROM partner.big_orders;
      GRANT SELECT ON partner.big_count TO reporting;
      COMMENT ON VIEW partner.big_count IS 'how many big ones';
    `);
  });

  it('indexes (same names, same definitions), grants, column grants, comments and views are there after the swap', async () => {
    const before = { indexes: await indexesOf(SCHEMA), grants: await grantsOf(SCHEMA), viewGrants: await grantsOf('partner', 'big_count') };
    await populate(m, '200', 80, 100);
    expect(await indexesOf(SCHEMA)).toEqual(before.indexes);
    expect(Object.keys(before.indexes).sort()).toEqual(['_pk_orders', 'big_totals', 'odd "name"']);
    expect(await grantsOf(SCHEMA)).toEqual(['analyst SELECT (total)', 'reporting SELECT']);
    expect(await grantsOf(SCHEMA)).toEqual(before.grants);
    expect(await grantsOf('partner', 'big_count')).toEqual(before.viewGrants);
    expect(await q(`SELECT obj_description('partnered.orders'::regclass, 'pg_class') AS t, col_description('partnered.orders'::regclass, 3) AS c`)).toEqual([
      { t: "the partner's orders", c: 'gross' },
    ]);
    expect(await q(`SELECT obj_description('partner.big_count'::regclass, 'pg_class') AS c`)).toEqual([{ c: 'how many big ones' }]);
    expect(await q(`SELECT reloptions FROM pg_class WHERE oid = 'partner.big_orders'::regclass`)).toEqual([{ reloptions: ['security_barrier=true'] }]);
    // The views read the new population (totals 101.50 .. 180.50: all of them big).
    expect(await q(`SELECT n::int FROM partner.big_count`)).toEqual([{ n: 80 }]);
    // The carried index is usable (and unique where it was).
    await expect(db.query(`INSERT INTO partnered.orders VALUES (1000, 1, 1), (1000, 1, 1)`)).rejects.toThrow(/duplicate key/);
  });

  it('a materialized view over the table fails its swap, naming it, and changes nothing until it is gone', async () => {
    await db.query(`CREATE MATERIALIZED VIEW partner.frozen AS SELECT count(*) AS n FROM partnered.orders`);
    const fence = await m.takeFence('populate:orders', 'test');
    await m.copyIntoShadow(orders, rowsOf(3), { resume: false, version: '300', chunkBytes: 1 << 16, fence, onChunk: () => undefined });
    const err = await rejection(m.swapInShadow(orders, '300', FINGERPRINT, fence));
    expect(err.type).toBe(FailureType.TableFailed);
    expect(err.message).toMatch(/materialized view "partner\.frozen" reads this mirror table/);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM partnered.orders`))[0]!.n).toBe(80);
    await db.query(`DROP MATERIALIZED VIEW partner.frozen`);
    await m.swapInShadow(orders, '300', FINGERPRINT, fence);
    expect(await q(`SELECT n::int FROM partner.big_count`)).toEqual([{ n: 0 }]);
    expect(Object.keys(await indexesOf(SCHEMA)).sort()).toEqual(['_pk_orders', 'big_totals', 'odd "name"']);
  });
});

describe('_mirror_log', () => {
  const SCHEMA = 'logged';
  let m: PgMirror;

  beforeAll(async () => {
    m = mirrorWith(SCHEMA);
    await m.ensureState();
    await m.applySchema(orders);
  });

  it('one row per population, with rows, bytes, LSN and duration', async () => {
    await populate(m, '100', 25);
    const [row] = await logOf(SCHEMA);
    expect(row).toMatchObject({ table_name: 'orders', event: 'populate', row_count: 25, to_lsn: '100', inserts: null, detail: null });
    expect(row!.bytes).toBe(Buffer.byteLength([...Array(25).keys()].map((i) => encodeLine([String(i + 1), String((i % 7) + 1), `${i + 1}.50`])).join('')));
    expect(row!.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('one row per cycle that changed something (inserts, updates, deletes, LSNs), none for an idle one', async () => {
    const fence = await m.takeFence('session', 'test');
    const changes = [['U', '1', '9', '1.00'], ['U', '500', '1', '2.00'], ['D', '2', null, null], ['D', '999', null, null]].map((l) => encodeLine(l));
    const applied = await m.applyChanges(orders, Readable.from(changes), { fromVersion: '100', toVersion: '110', fingerprint: FINGERPRINT, batchBytes: 16, fence });
    expect(applied).toMatchObject({ inserts: 1, updates: 1, deletes: 1 });
    await m.applyChanges(orders, Readable.from([]), { fromVersion: '110', toVersion: '120', fingerprint: FINGERPRINT, batchBytes: 16, fence });
    const sync = (await logOf(SCHEMA)).filter((r) => r.event === 'sync');
    expect(sync).toEqual([expect.objectContaining({ table_name: 'orders', inserts: 1, updates: 1, deletes: 1, from_lsn: '100', to_lsn: '110' })]);
    // What `status --watch` shows as the table's last cycle: the newest that changed something, not the idle one.
    const [last, ...others] = await m.readLastCycles();
    expect(others).toEqual([]);
    expect(last).toMatchObject({ table: 'orders', inserts: 1, updates: 1, deletes: 1 });
    expect(Math.abs(Date.parse(last!.at) - Date.now())).toBeLessThan(60_000);
  });

  it('readLastCycles of a schema without a log is empty', async () => {
    expect(await mirrorWith('never_used').readLastCycles()).toEqual([]);
  });

  it('a rolled-back cycle leaves no row (the row is written in the transaction that moves the LSN)', async () => {
    const fence = await m.takeFence('session', 'test');
    const bad = [encodeLine(['U', '7', '1', '3.00']), encodeLine(['U', '8', '1', 'not a number'])];
    await expect(m.applyChanges(orders, Readable.from(bad), { fromVersion: '120', toVersion: '130', fingerprint: FINGERPRINT, batchBytes: 1 << 20, fence })).rejects.toThrow();
    expect((await logOf(SCHEMA)).filter((r) => r.event === 'sync')).toHaveLength(1);
  });

  it('one row per wipe, with its reason', async () => {
    await m.dropTable('orders', 'forced by an operator');
    expect((await logOf(SCHEMA)).at(-1)).toMatchObject({ table_name: 'orders', event: 'wipe', detail: 'forced by an operator' });
  });

  it('rows older than the retention are pruned, the others stay', async () => {
    const all = (await logOf(SCHEMA)).length;
    await db.query(`UPDATE logged._mirror_log SET logged_at = now() - interval '40 days' WHERE event = 'populate'`);
    expect(await m.pruneLog(30 * 24 * 3600 * 1000)).toBe(1);
    const left = await logOf(SCHEMA);
    expect(left).toHaveLength(all - 1);
    expect(left.some((r) => r.event === 'populate')).toBe(false);
  });
});
