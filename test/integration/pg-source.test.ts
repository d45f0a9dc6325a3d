/**
 * The PostgreSQL change source against a real server: catalog listing, tracking installation, row and change
 * streams compared with independent queries, the late-commit case, min valid versions, cleanup, fingerprints,
 * hostile names and bad credentials.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Client } from 'pg';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgChangeSource } from '../../src/postgres/source';
import { PORTABLE_TEXT_SETTINGS, startupOptions } from '../../src/postgres/connection';
import { decodeLine } from '../../src/core/copy-text';
import { FailureType } from '../../src/core/errors';
import { quotePg } from '../../src/core/identifiers';
import type { SourceTables, SplittableSnapshot, TableSchema } from '../../src/core/types';
import { waitFor } from '../support/wait';
import { tableFilter } from '../../src/config/load';
import { TABLE_RELID } from '../../src/postgres/snapshot';
import { continuityBreak } from '../../activities/decide';
import { rejection } from '../support/failures';

let server: EmbeddedPg;
let url: string;
let source: PgChangeSource;
let admin: Client;
const extraClients: Client[] = [];

const DAY = 86_400_000;

async function connect(): Promise<Client> {
  // Same text settings as the source adapter, so `::text` here and COPY there print values alike.
  const c = new Client({ connectionString: url, options: startupOptions(PORTABLE_TEXT_SETTINGS) });
  c.on('error', () => undefined); // the last test stops the server under it
  await c.connect();
  extraClients.push(c);
  return c;
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

async function readLines(stream: Readable): Promise<(string | null)[][]> {
  const text = await readAll(stream);
  if (text === '') return [];
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n').map(decodeLine);
}

/** The table's rows as text, by an independent query (not COPY), in key order. */
async function selectAsText(table: TableSchema, where = 'true'): Promise<(string | null)[][]> {
  // boolean::text says true/false; its output function (what COPY prints) says t/f.
  const cols = table.columns
    .map((c) =>
      c.type.kind === 'boolean'
        ? `CASE ${quotePg(c.name)} WHEN true THEN 't' WHEN false THEN 'f' END`
        : c.type.kind === 'money'
          ? `${quotePg(c.name)}::numeric::text` // the mirror's type for money
          : `${quotePg(c.name)}::text`,
    )
    .join(', ');
  // Qualified, or ORDER BY would pick the ::text output columns of the same name.
  const order = table.primaryKey.map((c) => `t.${quotePg(c)}`).join(', ');
  const res = await admin.query<(string | null)[]>({
    text: `SELECT ${cols} FROM ${quotePg(table.source.schema)}.${quotePg(table.source.table)} t WHERE ${where} ORDER BY ${order}`,
    rowMode: 'array',
  });
  return res.rows;
}

async function tableNamed(name: string): Promise<TableSchema> {
  const { tables } = await source.listTables((n) => n === name);
  const t = tables[0];
  if (!t) throw new Error(`table ${name} not listed`);
  return t;
}

async function currentXid(c: Client): Promise<string> {
  return (await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x;
}

async function cycle(table: TableSchema, from: string): Promise<{ version: string; lines: (string | null)[][] }> {
  const snap = await source.snapshot();
  try {
    return { version: snap.version, lines: await readLines(snap.changes(table, from)) };
  } finally {
    await snap.close();
  }
}

async function minValid(table: TableSchema): Promise<string | null> {
  const snap = await source.snapshot();
  try {
    return await snap.minValidVersion(table);
  } finally {
    await snap.close();
  }
}

/** The side table of a tracked table, from the registry. */
async function sideOf(table: string): Promise<string> {
  const { rows } = await admin.query<{ side: string }>(
    `SELECT side_table AS side FROM tenant_mirror_ct.tracked WHERE relid = to_regclass($1)`,
    [quotePg(table)],
  );
  return `tenant_mirror_ct.${quotePg(rows[0]!.side)}`;
}

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'pg-source') });
  url = await server.createDatabase('tenant_src');
  admin = await connect();
  await admin.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN short_code AS varchar(8) NOT NULL;
    CREATE TABLE kinds (
      id int PRIMARY KEY,
      big bigint,
      amount numeric(20,5),
      note text,
      label varchar(12),
      flag boolean,
      blob bytea,
      at timestamptz,
      day date,
      uid uuid,
      doc jsonb,
      nums int[],
      feeling mood,
      code short_code,
      price money
    );
    INSERT INTO kinds VALUES
      (1, 9007199254740993, 123456789012345.12345, E'tab\\there\\nnew line\\\\back slash', 'short', true,
       '\\x00ff10'::bytea, '2024-02-29 23:59:59.123456+02', '2024-02-29', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '{"a": [1, "x\\ty"], "b": null}', '{1,2,NULL,4}', 'happy', 'C1', 1234567.89),
      (2, -1, 0.00001, '', 'x', false, '\\x'::bytea, '1999-12-31 00:00:00+00', '0001-01-01',
       '00000000-0000-0000-0000-000000000000', '[]', '{}', 'sad', 'C2', -0.5),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'C3', NULL),
      (4, 4, 4, 'four', 'four', true, NULL, now(), current_date, gen_random_uuid(), '{"n": 4}', '{4}', 'ok', 'C4', 4);
    CREATE TABLE pairs (a text, b int, v text, PRIMARY KEY (a, b));
    INSERT INTO pairs SELECT chr(97 + i % 3), i, 'v' || i FROM generate_series(1, 30) i;
    CREATE TABLE nopk (x int);
    CREATE TABLE uniq (code text NOT NULL, n int NOT NULL, v text, UNIQUE (code, n));
    CREATE TABLE uniq_nullable (code text UNIQUE, v text);
    CREATE SCHEMA sales;
    CREATE TABLE sales.orders (order_no bigint PRIMARY KEY, total numeric(12,2) NOT NULL);
    CREATE TABLE late (id int PRIMARY KEY, v text);
    CREATE TABLE hidden (id int PRIMARY KEY);
  `);
  source = new PgChangeSource({ url, tenant: 'tenant-a' });
});

afterAll(async () => {
  await source?.close();
  for (const c of extraClients) await c.end().catch(() => undefined);
  await server?.stop();
});

describe('PgChangeSource catalog', () => {
  it('lists tables with logical types, nullability and keys; a unique index over NOT NULL columns stands in for a primary key', async () => {
    const { tables, skipped } = await source.listTables((n) => n !== 'hidden');
    const names = tables.map((t) => t.name).sort();
    expect(names).toEqual(['kinds', 'late', 'nopk', 'pairs', 'sales.orders', 'uniq', 'uniq_nullable']);
    expect(skipped).toEqual([]);
    expect(tables.find((t) => t.name === 'uniq')).toMatchObject({ primaryKey: ['code', 'n'], keyIndex: 'uniq_code_n_key' });
    // No usable key: listed with an empty key (mirrored by refresh, or skipped, as the tenant configures).
    expect(tables.find((t) => t.name === 'nopk')!.primaryKey).toEqual([]);
    expect(tables.find((t) => t.name === 'uniq_nullable')!.primaryKey).toEqual([]);

    const kinds = tables.find((t) => t.name === 'kinds')!;
    expect(kinds.source).toEqual({ schema: 'public', table: 'kinds' });
    expect(kinds.primaryKey).toEqual(['id']);
    const byName = Object.fromEntries(kinds.columns.map((c) => [c.name, c]));
    expect(kinds.columns.map((c) => c.name)).toEqual([
      'id', 'big', 'amount', 'note', 'label', 'flag', 'blob', 'at', 'day', 'uid', 'doc', 'nums', 'feeling', 'code', 'price',
    ]);
    expect(byName.price!.type).toEqual({ kind: 'money' });
    expect(byName.id).toEqual({ name: 'id', type: { kind: 'int32' }, nullable: false });
    expect(byName.amount!.type).toEqual({ kind: 'decimal', precision: 20, scale: 5 });
    expect(byName.label!.type).toEqual({ kind: 'string', length: 12 });
    expect(byName.nums!.type).toEqual({ kind: 'array', element: { kind: 'int32' } });
    expect(byName.feeling!.type).toEqual({ kind: 'string' });
    // A domain is described by its base type, and its NOT NULL counts.
    expect(byName.code).toEqual({ name: 'code', type: { kind: 'string', length: 8 }, nullable: false });
    expect(byName.note!.nullable).toBe(true);

    expect(tables.find((t) => t.name === 'pairs')!.primaryKey).toEqual(['a', 'b']);
    expect(tables.find((t) => t.name === 'sales.orders')!.source).toEqual({ schema: 'sales', table: 'orders' });

    const onlyNopk = await source.listTables((n) => n === 'nopk');
    expect(onlyNopk.tables.map((t) => [t.name, t.primaryKey])).toEqual([['nopk', []]]);
    expect(await source.listTables((n) => n === 'kinds')).toMatchObject({ skipped: [] });
  });

  it('reads columns and keys again only when DDL changed their catalog rows, and sees every such change', async () => {
    await admin.query(`CREATE DOMAIN memo_code AS text;
      CREATE TABLE memo (id int PRIMARY KEY, v text, c memo_code);`);
    const only = (n: string): boolean => n === 'memo';
    const listed = async (): Promise<{ table: TableSchema; read: boolean }> => {
      const before = source.catalog.reads;
      const table = (await source.listTables(only)).tables[0]!;
      return { table, read: source.catalog.reads > before };
    };
    expect((await listed()).read).toBe(true);
    // Nothing changed: the memo answers, and answers the same.
    const again = await listed();
    expect(again.read).toBe(false);
    expect(again.table.columns.map((c) => c.name)).toEqual(['id', 'v', 'c']);
    // Writes to the table are not DDL.
    await admin.query(`INSERT INTO memo VALUES (1, 'a', 'x')`);
    expect((await listed()).read).toBe(false);

    const steps: [string, (t: TableSchema) => unknown, unknown][] = [
      ['ALTER TABLE memo ADD COLUMN w int DEFAULT 0', (t) => t.columns.map((c) => c.name), ['id', 'v', 'c', 'w']],
      ['ALTER TABLE memo RENAME COLUMN v TO v2', (t) => t.columns.map((c) => c.name), ['id', 'v2', 'c', 'w']],
      ['ALTER TABLE memo ALTER COLUMN w TYPE bigint', (t) => t.columns.find((c) => c.name === 'w')!.type, { kind: 'int64' }],
      ['ALTER TABLE memo ALTER COLUMN w SET NOT NULL', (t) => t.columns.find((c) => c.name === 'w')!.nullable, false],
      ['ALTER DOMAIN memo_code SET NOT NULL', (t) => t.columns.find((c) => c.name === 'c')!.nullable, false],
      ['ALTER TABLE memo DROP COLUMN v2', (t) => t.columns.map((c) => c.name), ['id', 'c', 'w']],
      ['ALTER TABLE memo DROP CONSTRAINT memo_pkey', (t) => t.primaryKey, []],
      ['CREATE UNIQUE INDEX memo_w ON memo (w)', (t) => [t.primaryKey, t.keyIndex], [['w'], 'memo_w']],
      ['ALTER INDEX memo_w RENAME TO memo_w2', (t) => t.keyIndex, 'memo_w2'],
      ['ALTER TABLE memo ADD PRIMARY KEY (id)', (t) => [t.primaryKey, t.keyIndex], [['id'], undefined]],
    ];
    for (const [ddl, read, expected] of steps) {
      await admin.query(ddl);
      const after = await listed();
      expect({ ddl, read: after.read, shape: read(after.table) }).toEqual({ ddl, read: true, shape: expected });
      expect({ ddl, read: (await listed()).read }).toEqual({ ddl, read: false });
    }
    await admin.query('DROP TABLE memo; DROP DOMAIN memo_code');
    expect((await source.listTables(only)).tables).toEqual([]);
  });

  it('gives a listing again while no DDL has committed, a new one once its counts are reported, and never an older one', async () => {
    // Each DDL on a connection of its own: a backend reports its counts when it exits, so the test waits little.
    const ddlAlone = (statement: string): Promise<void> => server.sql(statement, 'tenant_src');
    await ddlAlone('CREATE TABLE reuse_a (id int PRIMARY KEY)');
    const filter = tableFilter({ include: ['reuse_*'], exclude: [] });
    const columns = (listed: SourceTables): string[][] => listed.tables.map((t) => [t.name, ...t.columns.map((c) => c.name)]);
    const reusable = (): Promise<SourceTables> => source.listTables(filter, { reuse: true });
    // Whatever the admin connection still holds from earlier tests is reported now, not in the middle of this one.
    await admin.query('SELECT pg_stat_force_next_flush()');
    // The CREATE's counts are reported within seconds; from then on the listing is given again.
    await waitFor(async () => (await reusable()).reused === true, { timeoutMs: 20_000, what: 'a reused listing' });
    const before = source.catalog.reused;
    const again = await reusable();
    expect({ reused: again.reused, columns: columns(again) }).toEqual({ reused: true, columns: [['reuse_a', 'id']] });
    expect(source.catalog.reused).toBe(before + 1);
    // Row writes are not DDL; a listing not asked to reuse, or of a filter without a key, is always new.
    await admin.query('INSERT INTO reuse_a VALUES (1)');
    expect((await reusable()).reused).toBe(true);
    expect((await source.listTables(filter)).reused).toBeUndefined();
    expect((await source.listTables((n) => n === 'reuse_a', { reuse: true })).reused).toBeUndefined();

    // DDL whose counts its backend has not reported: each procedure commits its DDL, then keeps the backend busy.
    await admin.query(`CREATE PROCEDURE reuse_held(statement text) LANGUAGE plpgsql AS $$
      BEGIN EXECUTE statement; COMMIT; PERFORM pg_sleep(60); END $$`);
    // The call is handed back wrapped: an async function would otherwise wait for it.
    const held = async (statement: string, committed: string): Promise<{ call: Promise<unknown> }> => {
      const call = (await connect()).query('CALL reuse_held($1)', [statement]).catch(() => undefined);
      await waitFor(async () => (await admin.query(committed)).rows.length === 1, { what: `${statement} committed` });
      return { call };
    };
    const calls: { call: Promise<unknown> }[] = [];
    try {
      // A table created: only the counts show it, so the listing given again does not have it yet.
      calls.push(await held('CREATE TABLE reuse_n (id int PRIMARY KEY)', `SELECT 1 FROM pg_class WHERE relname = 'reuse_n'`));
      const stale = await reusable();
      expect({ reused: stale.reused, columns: columns(stale) }).toEqual({ reused: true, columns: [['reuse_a', 'id']] });
      // A new listing sees it, and what is given again from then on is that listing, not the older one.
      expect(columns(await source.listTables(filter))).toEqual([['reuse_a', 'id'], ['reuse_n', 'id']]);
      const kept = await reusable();
      expect({ reused: kept.reused, columns: columns(kept) }).toEqual({ reused: true, columns: [['reuse_a', 'id'], ['reuse_n', 'id']] });
      // A listed table changed: its catalog rows' stamp shows it at once, counts or not.
      calls.push(await held('ALTER TABLE reuse_a ADD COLUMN v int', `SELECT 1 FROM pg_attribute WHERE attrelid = 'reuse_a'::regclass AND attname = 'v'`));
      const seen = await reusable();
      expect({ reused: seen.reused, columns: columns(seen) }).toEqual({ reused: undefined, columns: [['reuse_a', 'id', 'v'], ['reuse_n', 'id']] });
    } finally {
      await admin.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'CALL reuse_held($1)'`);
      await Promise.all(calls.map((c) => c.call));
    }
    await ddlAlone('DROP TABLE reuse_n');

    // Reported: a new listing, with every kind of change a listing shows.
    const steps: [string, string[][]][] = [
      ['CREATE TABLE reuse_b (id int PRIMARY KEY)', [['reuse_a', 'id', 'v'], ['reuse_b', 'id']]],
      ['ALTER TABLE reuse_b RENAME TO reuse_c', [['reuse_a', 'id', 'v'], ['reuse_c', 'id']]],
      ['ALTER TABLE reuse_a RENAME COLUMN v TO w', [['reuse_a', 'id', 'w'], ['reuse_c', 'id']]],
      ['DROP TABLE reuse_c', [['reuse_a', 'id', 'w']]],
    ];
    for (const [statement, expected] of steps) {
      await ddlAlone(statement);
      let listed: SourceTables | undefined;
      await waitFor(async () => (listed = await reusable()).reused === undefined, { timeoutMs: 20_000, what: `a new listing after ${statement}` });
      expect({ statement, columns: columns(listed!) }).toEqual({ statement, columns: expected });
    }
  });

  it('lists anew every time where the server does not count catalog writes (track_counts off)', async () => {
    const off = await server.createDatabase('counts_off');
    await admin.query('ALTER DATABASE counts_off SET track_counts = off');
    const uncounted = new PgChangeSource({ url: off, tenant: 'tenant-off' });
    try {
      const filter = tableFilter({ include: ['*'], exclude: [] });
      for (let i = 0; i < 3; i++) expect((await uncounted.listTables(filter, { reuse: true })).reused).toBeUndefined();
      expect(uncounted.catalog.reused).toBe(0);
    } finally {
      await uncounted.close();
    }
  });

  it('reads only the relations the include prefixes can admit, and lists the same tables as without them', async () => {
    await admin.query(`CREATE SCHEMA "we.ird"; CREATE TABLE "we.ird"."t.1" (id int PRIMARY KEY); CREATE TABLE "we.irdo" (id int PRIMARY KEY)`);
    for (const include of [['sales.*', 'kin*'], ['we.ird.*'], ['we.ird*'], ['nothing.*']]) {
      const filter = tableFilter({ include, exclude: [] });
      expect(filter.prefixes).toBeDefined();
      const plain = (n: string): boolean => filter(n);
      const [pushed, full] = [await source.listTables(filter), await source.listTables(plain)];
      expect({ include, names: pushed.tables.map((t) => t.name) }).toEqual({ include, names: full.tables.map((t) => t.name) });
    }
    expect((await source.listTables(tableFilter({ include: ['we.ird.*'], exclude: [] }))).tables.map((t) => t.name)).toEqual(['we.ird.t.1']);
    expect((await source.listTables(tableFilter({ include: ['sales.*', 'kin*'], exclude: [] }))).tables.map((t) => t.name)).toEqual(['kinds', 'sales.orders']);
  });

  it('estimates rows from statistics', async () => {
    await admin.query('ANALYZE pairs');
    expect(await source.estimateRows(await tableNamed('pairs'))).toBe(30);
  });

  it('pings, and classifies a wrong password as AuthFailed without leaking it', async () => {
    await source.ping();
    const bad = new PgChangeSource({ url: url.replace(':postgres@', ':not-the-password@'), tenant: 'tenant-a' });
    try {
      const err = await rejection(bad.ping());
      expect(err.type).toBe(FailureType.AuthFailed);
      expect(err.retryable).toBe(false);
      expect(err.message).not.toContain('not-the-password');
      expect(err.message).toContain('tenant-a');
    } finally {
      await bad.close();
    }
  });
});

describe('PgChangeSource rows and changes', () => {
  it('streams every row as COPY text equal to an independent query, and resumes after a key', async () => {
    const kinds = await tableNamed('kinds');
    expect(await source.enableTracking(kinds, DAY)).toBe(true);
    expect(await source.enableTracking(kinds, DAY)).toBe(false);

    const snap = await source.snapshot();
    try {
      const rows = await readLines(snap.rows(kinds));
      expect(rows).toEqual(await selectAsText(kinds));
      expect(rows).toHaveLength(4);
      // Escaping survived the round trip: the value is the one inserted, not its escaped form.
      expect(rows[0]![3]).toBe('tab\there\nnew line\\back slash');
      expect(rows[0]![1]).toBe('9007199254740993');
      expect(rows[0]![12]).toBe('happy');
      expect(rows[0]![14]).toBe('1234567.89');
      expect(rows[1]![14]).toBe('-0.50');

      const pairs = await tableNamed('pairs');
      const all = await readLines(snap.rows(pairs));
      expect(all).toEqual(await selectAsText(pairs));
      const after = await readLines(snap.rows(pairs, ['b', '2']));
      expect(after).toEqual(await selectAsText(pairs, `(a, b) > ('b', 2)`));
      expect(after.length).toBeGreaterThan(0);
      expect(after.length).toBeLessThan(all.length);
      expect(after[0]!.slice(0, 2)).not.toEqual(['b', '2']);
    } finally {
      await snap.close();
    }
  });

  it('returns net changes, one line per key, decided by the row in the snapshot', async () => {
    const kinds = await tableNamed('kinds');
    await source.enableTracking(kinds, DAY);
    const { version: v0 } = await cycle(kinds, (await minValid(kinds))!);

    await admin.query(`INSERT INTO kinds (id, note, code) VALUES (100, 'new', 'N')`);
    await admin.query(`UPDATE kinds SET note = 'changed' WHERE id = 1`);
    await admin.query(`DELETE FROM kinds WHERE id = 2`);
    await admin.query(`UPDATE kinds SET id = 300 WHERE id = 3`);
    await admin.query(`UPDATE kinds SET big = big + 1 WHERE id = 4`);
    await admin.query(`UPDATE kinds SET big = big + 1 WHERE id = 4`);
    await admin.query(`INSERT INTO kinds (id, code) VALUES (500, 'T')`);
    await admin.query(`DELETE FROM kinds WHERE id = 500`);

    const { version: v1, lines } = await cycle(kinds, v0);
    expect(BigInt(v1)).toBeGreaterThan(BigInt(v0));
    const byKey = new Map(lines.map((l) => [l[1], l]));
    expect(byKey.size).toBe(lines.length);
    expect([...byKey.keys()].sort()).toEqual(['1', '100', '2', '3', '300', '4', '500']);
    const current = new Map((await selectAsText(kinds)).map((r) => [r[0], r]));
    for (const key of ['1', '100', '300', '4']) {
      expect(byKey.get(key)).toEqual(['U', ...current.get(key)!]);
    }
    for (const key of ['2', '3', '500']) {
      expect(byKey.get(key)).toEqual(['D', key, ...Array<null>(kinds.columns.length - 1).fill(null)]);
    }
    expect(byKey.get('4')![2]).toBe('6');

    // Nothing happened since: the next range is empty.
    const next = await cycle(kinds, v1);
    expect(next.lines).toEqual([]);
  });

  it('a sibling reads exactly the changes its snapshot reads, not those committed after it', async () => {
    await admin.query(`CREATE TABLE shared (id int PRIMARY KEY, v text); INSERT INTO shared SELECT g, 'v' || g FROM generate_series(1, 20) g`);
    const shared = await tableNamed('shared');
    await source.enableTracking(shared, DAY);
    const first = await source.snapshot();
    const v0 = first.version;
    await first.close();
    await admin.query(`UPDATE shared SET v = 'changed' WHERE id <= 5; DELETE FROM shared WHERE id = 20`);
    const snap = (await source.snapshot()) as SplittableSnapshot;
    try {
      const [sibling] = await snap.siblings(1);
      try {
        // Committed after the snapshot: neither may see it.
        await admin.query(`UPDATE shared SET v = 'later' WHERE id BETWEEN 6 AND 10`);
        expect(sibling!.version).toBe(snap.version);
        const [fromSibling, fromMain] = [await readAll(sibling!.changes(shared, v0)), await readAll(snap.changes(shared, v0))];
        expect(fromSibling).toBe(fromMain);
        expect(fromMain.split('\n').filter(Boolean)).toHaveLength(6);
        expect(fromMain).not.toMatch(/later/);
      } finally {
        await sibling!.close();
      }
    } finally {
      await snap.close();
    }
  });

  it('counts a range\'s changes up to a limit without reading them, and counts the limit when tracking is not usable', async () => {
    await admin.query(`CREATE TABLE quiet (id int PRIMARY KEY, v text); CREATE TABLE noisy (id int PRIMARY KEY)`);
    const quiet = await tableNamed('quiet');
    const noisy = await tableNamed('noisy');
    await source.enableTracking(quiet, DAY);
    await source.enableTracking(noisy, DAY);
    const first = await source.snapshot();
    const v0 = first.version;
    await first.close();
    await admin.query(`INSERT INTO noisy VALUES (1)`);
    await admin.query(`INSERT INTO noisy VALUES (2)`);
    const second = await source.snapshot();
    try {
      expect(BigInt(second.version)).toBeGreaterThan(BigInt(v0));
      expect(await second.pendingChanges!(noisy, v0, 1000)).toBe(2);
      expect(await second.pendingChanges!(noisy, v0, 1)).toBe(1);
      expect(await second.pendingChanges!(quiet, v0, 1000)).toBe(0);
      expect(await second.pendingChanges!(noisy, second.version, 1000)).toBe(0);
    } finally {
      await second.close();
    }
    await admin.query(`INSERT INTO quiet VALUES (1, 'a')`);
    await admin.query(`ALTER TABLE quiet DISABLE TRIGGER ALL`);
    const third = await source.snapshot();
    try {
      // The write shows; and a table whose triggers are off must not pass for one with nothing to read.
      expect(await third.pendingChanges!(quiet, third.version, 1000)).toBe(1000);
      await expect(readAll(third.changes(quiet, v0))).rejects.toMatchObject({ type: FailureType.TrackingExpired });
    } finally {
      await third.close();
      await admin.query(`ALTER TABLE quiet ENABLE TRIGGER ALL`);
    }
  });

  it('never moves past a transaction that wrote earlier and commits later (the late commit)', async () => {
    const late = await tableNamed('late');
    await source.enableTracking(late, DAY);
    const { version: v0 } = await cycle(late, (await minValid(late))!);

    const a = await connect();
    const b = await connect();
    await a.query('BEGIN');
    await a.query(`INSERT INTO late VALUES (1, 'from A')`);
    const xidA = await currentXid(a);
    const xidB = (await b.query<{ x: string }>(`INSERT INTO late VALUES (2, 'from B') RETURNING pg_current_xact_id()::text AS x`)).rows[0]!.x;
    expect(BigInt(xidB)).toBeGreaterThan(BigInt(xidA));

    const first = await cycle(late, v0);
    // The horizon stays at or below A's xid while A is open...
    expect(BigInt(first.version)).toBeLessThanOrEqual(BigInt(xidA));
    expect(first.lines.map((l) => l[1])).not.toContain('1');
    // ...whereas "the largest xid seen so far" is already past it: a reader resuming after it would skip A.
    const side = await sideOf('late');
    const naive = (await admin.query<{ x: string }>(`SELECT max(xid)::text AS x FROM ${side}`)).rows[0]!.x;
    expect(naive).toBe(xidB);
    expect(BigInt(naive)).toBeGreaterThan(BigInt(xidA));

    await a.query('COMMIT');
    const second = await cycle(late, first.version);
    expect(BigInt(second.version)).toBeGreaterThan(BigInt(xidA));
    const byKey = new Map(second.lines.map((l) => [l[1], l]));
    expect(byKey.get('1')).toEqual(['U', '1', 'from A']);
    // B arrives in the first cycle or in this one, never nowhere.
    const firstHadB = first.lines.some((l) => l[1] === '2');
    expect(firstHadB || byKey.has('2')).toBe(true);
  });
});

describe('PgChangeSource min valid version', () => {
  it('is raised by TRUNCATE past the truncating transaction, and old ranges then fail as expired', async () => {
    const late = await tableNamed('late');
    await source.enableTracking(late, DAY);
    const before = (await minValid(late))!;
    const old = await cycle(late, before);

    await admin.query('BEGIN');
    await admin.query('TRUNCATE late');
    const xid = await currentXid(admin);
    await admin.query('COMMIT');

    const after = (await minValid(late))!;
    expect(after).toBe((BigInt(xid) + 1n).toString());
    expect(BigInt(after)).toBeGreaterThan(BigInt(before));
    expect(BigInt(old.version)).toBeLessThan(BigInt(after));

    const snap = await source.snapshot();
    try {
      const err = await rejection(readAll(snap.changes(late, old.version)));
      expect(err.type).toBe(FailureType.TrackingExpired);
    } finally {
      await snap.close();
    }
  });

  it('is raised when tracking is re-enabled after the table was dropped and recreated', async () => {
    await admin.query('CREATE TABLE phoenix (id int PRIMARY KEY, v text)');
    let phoenix = await tableNamed('phoenix');
    expect(await source.enableTracking(phoenix, DAY)).toBe(true);
    const first = (await minValid(phoenix))!;
    expect(await source.enableTracking(phoenix, DAY)).toBe(false);
    expect(await minValid(phoenix)).toBe(first);

    await admin.query(`DROP TABLE phoenix; CREATE TABLE phoenix (id int PRIMARY KEY, v text); INSERT INTO phoenix VALUES (1, 'untracked')`);
    phoenix = await tableNamed('phoenix');
    // The triggers went with the old table: tracking is reported absent rather than silently missing writes.
    expect(await minValid(phoenix)).toBeNull();
    const snap = await source.snapshot();
    try {
      expect((await rejection(readAll(snap.changes(phoenix, first)))).type).toBe(FailureType.TrackingExpired);
    } finally {
      await snap.close();
    }

    expect(await source.enableTracking(phoenix, DAY)).toBe(true);
    const second = (await minValid(phoenix))!;
    expect(BigInt(second)).toBeGreaterThan(BigInt(first));

    // Disabled triggers count as missing too.
    await admin.query('ALTER TABLE phoenix DISABLE TRIGGER ALL');
    expect(await minValid(phoenix)).toBeNull();
    expect(await source.enableTracking(phoenix, DAY)).toBe(true);
    expect(BigInt((await minValid(phoenix))!)).toBeGreaterThan(BigInt(second));
  });

  it('is above every writer that held the table while tracking was being enabled', async () => {
    await admin.query('CREATE TABLE busy (id int PRIMARY KEY)');
    const busy = await tableNamed('busy');
    const writer = await connect();
    await writer.query('BEGIN');
    await writer.query('INSERT INTO busy VALUES (1)');
    const writerXid = await currentXid(writer);

    const impatient = new PgChangeSource({ url, tenant: 'tenant-a', lockTimeoutMs: 50 });
    try {
      const err = await rejection(impatient.enableTracking(busy, DAY));
      expect(err.retryable).toBe(true);
    } finally {
      await impatient.close();
    }
    const enabling = source.enableTracking(busy, DAY);
    await writer.query('COMMIT');
    expect(await enabling).toBe(true);
    expect(BigInt((await minValid(busy))!)).toBeGreaterThan(BigInt(writerXid));
  });

  it('is raised by retention cleanup past the newest deleted entry', async () => {
    await admin.query('CREATE TABLE aging (id int PRIMARY KEY)');
    const aging = await tableNamed('aging');
    await source.enableTracking(aging, DAY);
    const before = (await minValid(aging))!;
    await admin.query('INSERT INTO aging SELECT generate_series(1, 5)');
    await admin.query('UPDATE aging SET id = id + 10 WHERE id = 1');
    const side = await sideOf('aging');
    const newest = (await admin.query<{ x: string }>(`SELECT max(xid)::text AS x FROM ${side}`)).rows[0]!.x;

    await source.cleanup(DAY);
    expect(await minValid(aging)).toBe(before);

    await new Promise((r) => setTimeout(r, 20));
    await source.cleanup(1);
    expect((await admin.query(`SELECT 1 FROM ${side}`)).rowCount).toBe(0);
    expect(await minValid(aging)).toBe((BigInt(newest) + 1n).toString());
  });
});

describe('PgChangeSource on partitioned tables and replica-role writers', () => {
  it('lists a partitioned table once and tracks writes to its partitions, also from replication apply', async () => {
    await admin.query(`
      CREATE TABLE events (id int, region text, payload text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
      CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
      CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
      INSERT INTO events VALUES (1, 'eu', 'a'), (2, 'us', 'b');
    `);
    const { tables } = await source.listTables((n) => n.startsWith('events'));
    expect(tables.map((t) => t.name)).toEqual(['events']);
    const events = tables[0]!;
    expect(await source.enableTracking(events, DAY)).toBe(true);
    const s0 = await source.snapshot();
    const v0 = s0.version;
    expect(await readLines(s0.rows(events))).toEqual(await selectAsText(events));
    await s0.close();

    await admin.query(`INSERT INTO events_us VALUES (3, 'us', 'direct')`);
    await admin.query(`UPDATE events SET region = 'us' WHERE id = 1`); // moves the row to the other partition
    // Writes applied the way logical replication applies them: ordinary triggers do not fire in this role.
    await admin.query('BEGIN');
    await admin.query('SET LOCAL session_replication_role = replica');
    await admin.query(`INSERT INTO events VALUES (4, 'eu', 'replicated')`);
    await admin.query('COMMIT');

    const { lines } = await cycle(events, v0);
    expect(lines.map((l) => l.join('|')).sort()).toEqual(
      ['D|1|eu|', 'U|1|us|a', 'U|3|us|direct', 'U|4|eu|replicated'].sort(),
    );
  });
});

describe('PgChangeSource with hostile names', () => {
  const weird = 'we"ird; DROP TABLE x;--';
  const spaced = 'Mixed Case Table';
  const long = 'L'.repeat(63);

  it('tracks, reads and resumes tables whose names and key columns are hostile', async () => {
    await admin.query(`CREATE TABLE x (id int PRIMARY KEY)`);
    for (const name of [weird, spaced, long]) {
      // Key columns named like the side table's own columns, to show they cannot collide.
      await admin.query(`CREATE TABLE ${quotePg(name)} ("op" text, "xid" int, "Mixed Col" text, PRIMARY KEY ("op", "xid"))`);
      await admin.query(`INSERT INTO ${quotePg(name)} VALUES ('O''Brien\t\\', 1, 'a'), ('plain', 2, 'b'), ('z', 3, 'c')`);
    }
    for (const name of [weird, spaced, long]) {
      const t = await tableNamed(name);
      expect(t.primaryKey).toEqual(['op', 'xid']);
      expect(await source.enableTracking(t, DAY)).toBe(true);
      const s0 = await source.snapshot();
      let v0: string;
      try {
        v0 = s0.version;
        expect(await readLines(s0.rows(t))).toEqual(await selectAsText(t));
        const after = await readLines(s0.rows(t, ["O'Brien\t\\", '1']));
        expect(after.map((r) => r[0])).toEqual(['plain', 'z']);
      } finally {
        await s0.close();
      }
      await admin.query(`UPDATE ${quotePg(name)} SET "Mixed Col" = 'changed' WHERE "op" = 'O''Brien\t\\'`);
      await admin.query(`DELETE FROM ${quotePg(name)} WHERE "xid" = 2`);
      await admin.query(`UPDATE ${quotePg(name)} SET "xid" = 30 WHERE "xid" = 3`);
      const { lines } = await cycle(t, v0);
      const sorted = lines.map((l) => l.join('|')).sort();
      expect(sorted).toEqual(
        ["U|O'Brien\t\\|1|changed", 'D|plain|2|', 'D|z|3|', 'U|z|30|c'].sort(),
      );
    }
    // The table named in the hostile string is still there.
    expect((await admin.query(`SELECT to_regclass('public.x') IS NOT NULL AS ok`)).rows[0].ok).toBe(true);
  });
});

async function fingerprintOf(src: PgChangeSource) {
  const snap = await src.snapshot();
  try {
    return snap.fingerprint;
  } finally {
    await snap.close();
  }
}

describe('PgChangeSource fingerprint', () => {
  it('has four parts, is stable across snapshots, and changes epoch when tracking is reinstalled', async () => {
    const fp = await fingerprintOf(source);
    expect(Object.keys(fp).sort()).toEqual(['databaseOid', 'systemIdentifier', 'timeline', 'trackingEpoch']);
    expect(fp.systemIdentifier).toMatch(/^\d+$/);
    expect(fp.timeline).toMatch(/^\d+$/);
    const oid = (await admin.query<{ oid: string }>('SELECT oid::text FROM pg_database WHERE datname = current_database()')).rows[0]!.oid;
    expect(fp.databaseOid).toBe(oid);
    expect(fp.trackingEpoch).toMatch(/^[0-9a-f-]{36}$/);

    expect(await fingerprintOf(source)).toEqual(fp);

    await admin.query('DROP SCHEMA tenant_mirror_ct CASCADE');
    expect((await fingerprintOf(source)).trackingEpoch).toBe('none');
    const kinds = await tableNamed('kinds');
    expect(await minValid(kinds)).toBeNull();
    // Writes keep working with tracking gone.
    await admin.query(`INSERT INTO kinds (id, code) VALUES (700, 'S')`);

    expect(await source.enableTracking(kinds, DAY)).toBe(true);
    const again = await fingerprintOf(source);
    expect(again.trackingEpoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(again.trackingEpoch).not.toBe(fp.trackingEpoch);
    expect({ ...again, trackingEpoch: '' }).toEqual({ ...fp, trackingEpoch: '' });
  });

  it("names the table's oid per table, so two tracked tables that swap names are no longer continued from", async () => {
    await admin.query(`CREATE TABLE swap_a (id int PRIMARY KEY, v text); CREATE TABLE swap_b (id int PRIMARY KEY, v text)`);
    const [a, b] = [await tableNamed('swap_a'), await tableNamed('swap_b')];
    await source.enableTracking(a, DAY);
    await source.enableTracking(b, DAY);
    const oidOf = async (name: string): Promise<string> => (await admin.query<{ oid: string }>(`SELECT '${name}'::regclass::oid::text AS oid`)).rows[0]!.oid;
    const before = await source.snapshot();
    const recorded = await before.tableFingerprint(a);
    await before.close();
    expect(recorded[TABLE_RELID]).toBe(await oidOf('swap_a'));
    await admin.query(`INSERT INTO swap_a VALUES (1, 'a'); INSERT INTO swap_b VALUES (1, 'b')`);
    await admin.query(`ALTER TABLE swap_a RENAME TO swap_tmp; ALTER TABLE swap_b RENAME TO swap_a; ALTER TABLE swap_tmp RENAME TO swap_b`);
    const after = await source.snapshot();
    try {
      const now = await after.tableFingerprint(a);
      expect(now[TABLE_RELID]).toBe(await oidOf('swap_a'));
      expect(now[TABLE_RELID]).not.toBe(recorded[TABLE_RELID]);
      // Everything else about the source is as it was: only this component tells the mirror the table changed.
      expect({ ...now, [TABLE_RELID]: '' }).toEqual({ ...recorded, [TABLE_RELID]: '' });
      const broken = continuityBreak(before.version, recorded, { sourceVersion: after.version, fingerprint: now, minValidVersion: await after.minValidVersion(a) });
      expect(broken).toMatchObject({ type: FailureType.TrackingExpired });
    } finally {
      await after.close();
    }
  });
});

describe('PgSourceSnapshot streams', () => {
  it('runs queued streams one after another on its connection', async () => {
    const pairs = await tableNamed('pairs');
    const snap = await source.snapshot();
    try {
      const one = snap.rows(pairs);
      const two = snap.rows(pairs, ['c', '0']);
      const [a, b] = [await readLines(one), await readLines(two)];
      expect(a).toEqual(await selectAsText(pairs));
      expect(b).toEqual(await selectAsText(pairs, `(a, b) > ('c', 0)`));
    } finally {
      await snap.close();
    }
  });

  it('fails later calls after a stream was abandoned, and still closes', async () => {
    const pairs = await tableNamed('pairs');
    await admin.query(`INSERT INTO pairs SELECT 'bulk', i, repeat('x', 1000) FROM generate_series(1, 5000) i`);
    const snap = await source.snapshot();
    const stream = snap.rows(pairs);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    const err = await rejection(readAll(snap.rows(pairs)));
    expect(err.type).toBe(FailureType.SourceReadFailed);
    await snap.close();
    // The pool still serves new snapshots.
    const fresh = await source.snapshot();
    expect((await readLines(fresh.rows(pairs))).length).toBe(5030);
    await fresh.close();
  });
});

describe('PgChangeSource when the server goes away', () => {
  it('reports Unavailable (retryable), and works again once the server is back', async () => {
    const pairs = await tableNamed('pairs');
    const snap = await source.snapshot();
    await server.stop();
    try {
      const err = await rejection(source.ping());
      expect(err.type).toBe(FailureType.Unavailable);
      expect(err.retryable).toBe(true);
      expect((await rejection(readAll(snap.rows(pairs)))).retryable).toBe(true);
    } finally {
      await snap.close();
      await server.start();
    }
    await source.ping();
    const again = await source.snapshot();
    expect((await readLines(again.rows(pairs))).length).toBeGreaterThan(0);
    await again.close();
  });
});
