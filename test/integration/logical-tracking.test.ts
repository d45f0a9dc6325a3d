/**
 * `tracking: logical` on a real PostgreSQL with wal_level = logical: the side tables are fed from a replication
 * slot instead of triggers, and everything the trigger mode guarantees holds — net changes decided by the row, the
 * late-committing transaction never skipped, DDL that never fails the tenant's writes (and reads as expired
 * tracking), TRUNCATE raising the min valid version, a mirror restored from backup getting every change after its
 * old LSN although the slot has long confirmed past it — plus what only a slot can do wrong: dropped, invalidated
 * by the server, consumed by someone else, its stream cut mid-ingestion. And a server without wal_level = logical is refused by name.
 */
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgChangeSource } from '../../src/postgres/source';
import { PORTABLE_TEXT_SETTINGS, startupOptions } from '../../src/postgres/connection';
import { decodeLine } from '../../src/core/copy-text';
import { FailureType, MirrorError } from '../../src/core/errors';
import { quotePg } from '../../src/core/identifiers';
import type { TableSchema } from '../../src/core/types';
import { waitFor } from '../support/wait';

const DAY = 86_400_000;
let server: EmbeddedPg;
let url: string;
let admin: Client;
let source: PgChangeSource;
const clients: Client[] = [];
const sources: PgChangeSource[] = [];

async function connect(target = url): Promise<Client> {
  const c = new Client({ connectionString: target, options: startupOptions(PORTABLE_TEXT_SETTINGS) });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

function logicalSource(tenant: string, target = url): PgChangeSource {
  const s = new PgChangeSource({ url: target, tenant, tracking: 'logical' });
  sources.push(s);
  return s;
}

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'logical-tracking'), settings: { wal_level: 'logical', max_replication_slots: '10' } });
  url = await server.createDatabase('tenant_db');
  admin = await connect();
  source = logicalSource('logical');
});

afterAll(async () => {
  for (const s of sources) await s.close().catch(() => undefined);
  for (const c of clients) await c.end().catch(() => undefined);
  await server?.stop();
});

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function lines(stream: Readable): Promise<string[]> {
  return (await readAll(stream)).split('\n').filter(Boolean).sort();
}

async function table(name: string, from = source): Promise<TableSchema> {
  const listed = (await from.listTables((n) => n === name)).tables[0];
  if (!listed) throw new Error(`${name} not listed`);
  return listed;
}

/** A tracked table, and the version a mirror populated right after would hold. */
async function tracked(name: string, ddl: string, from = source): Promise<{ schema: TableSchema; version: string }> {
  await admin.query(ddl);
  const schema = await table(name, from);
  expect(await from.enableTracking(schema, DAY)).toBe(true);
  return { schema, version: await currentVersion(from) };
}

async function currentVersion(from = source): Promise<string> {
  const snap = await from.snapshot();
  try {
    return snap.version;
  } finally {
    await snap.close();
  }
}

/** One sync cycle's read: the snapshot's version and the net changes since `from`. */
async function cycle(schema: TableSchema, from: string, src = source): Promise<{ version: string; lines: string[] }> {
  const snap = await src.snapshot();
  try {
    return { version: snap.version, lines: await lines(snap.changes(schema, from)) };
  } finally {
    await snap.close();
  }
}

/** What the reader makes of the table now: its min valid version, or the failure type reading its changes. */
async function verdict(schema: TableSchema, from: string): Promise<{ minValid: string | null; changes: string }> {
  const snap = await source.snapshot();
  try {
    const minValid = await snap.minValidVersion(schema);
    try {
      return { minValid, changes: (await lines(snap.changes(schema, from))).join('\n') };
    } catch (err) {
      return { minValid, changes: err instanceof MirrorError ? err.type : String(err) };
    }
  } finally {
    await snap.close();
  }
}

async function xidOf(c: Client): Promise<string> {
  return (await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x;
}

async function slot(): Promise<{ slot_name: string; active_pid: number | null; confirmed: string } | undefined> {
  const { rows } = await admin.query<{ slot_name: string; active_pid: number | null; confirmed: string }>(
    `SELECT slot_name, active_pid, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE database = current_database()`,
  );
  return rows[0];
}

/** Ends whoever streams from our slot (as a server restart or a network cut would). */
async function cutStream(): Promise<void> {
  const s = await slot();
  if (s?.active_pid) await admin.query('SELECT pg_terminate_backend($1)', [s.active_pid]);
  await waitFor(async () => (await slot())?.active_pid == null, { timeoutMs: 10_000, intervalMs: 50, what: 'the slot to be released' });
}

/** A snapshot right after a cut stream may fail once (retryable, the session's next cycle goes on); then it works. */
async function settledVersion(from = source): Promise<string> {
  try {
    return await currentVersion(from);
  } catch (err) {
    expect(err instanceof MirrorError && err.retryable, String(err)).toBe(true);
    return currentVersion(from);
  }
}

async function tenantWrites(sql: string[]): Promise<void> {
  for (const text of sql) await admin.query(text);
}

describe('logical decoding instead of triggers', () => {
  it('puts the table in the publication with REPLICA IDENTITY FULL, one slot for the database, and no trigger', async () => {
    const { schema } = await tracked('accounts', `CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)`);
    const pub = await admin.query(`SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'tenant_mirror_ct'`);
    expect(pub.rows).toEqual([{ schemaname: 'public', tablename: 'accounts' }]);
    expect((await admin.query(`SELECT relreplident FROM pg_class WHERE oid = 'accounts'::regclass`)).rows[0]).toEqual({ relreplident: 'f' });
    expect((await admin.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal`)).rows).toEqual([]);
    expect((await slot())?.slot_name).toMatch(/^tenant_mirror_ct_\d+$/);
    expect(await source.enableTracking(schema, DAY)).toBe(false);
  });

  it('reads net changes decided by the row: inserts, updates, a key change, deletes', async () => {
    const { schema, version } = await tracked('ledger', `CREATE TABLE ledger (id int PRIMARY KEY, v text); INSERT INTO ledger VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await tenantWrites([
      `INSERT INTO ledger VALUES (4, E'tab\\there')`,
      `UPDATE ledger SET v = 'changed' WHERE id = 1`,
      `UPDATE ledger SET id = 20 WHERE id = 2`,
      `DELETE FROM ledger WHERE id = 3`,
      `BEGIN; INSERT INTO ledger VALUES (5, 'gone'); DELETE FROM ledger WHERE id = 5; COMMIT`,
    ]);
    const { lines: got } = await cycle(schema, version);
    expect(got).toEqual(['D\t2\t\\N', 'D\t3\t\\N', 'D\t5\t\\N', 'U\t1\tchanged', 'U\t20\tb', 'U\t4\ttab\\there'].sort());
  });

  it('never moves past a transaction that wrote earlier and commits later (the late commit)', async () => {
    const { schema, version } = await tracked('late', `CREATE TABLE late (id int PRIMARY KEY, v text)`);
    const a = await connect();
    await a.query('BEGIN');
    await a.query(`INSERT INTO late VALUES (1, 'from A')`);
    const xidA = await xidOf(a);
    await admin.query(`INSERT INTO late VALUES (2, 'from B')`);
    const first = await cycle(schema, version);
    // A is still open: the version stays at or below its xid, so the next range still covers it.
    expect(BigInt(first.version)).toBeLessThanOrEqual(BigInt(xidA));
    expect(first.lines.some((l) => l.startsWith('U\t1\t'))).toBe(false);
    await a.query('COMMIT');
    const second = await cycle(schema, first.version);
    expect(BigInt(second.version)).toBeGreaterThan(BigInt(xidA));
    expect(second.lines).toContain('U\t1\tfrom A');
    expect([...first.lines, ...second.lines]).toContain('U\t2\tfrom B');
  });

  it('gives a mirror restored from backup every change after its old LSN, although the slot confirmed past it long ago', async () => {
    const { schema, version: restoredLsn } = await tracked('history', `CREATE TABLE history (id int PRIMARY KEY, v text); INSERT INTO history VALUES (1, 'one')`);
    const lsnThen = (await admin.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
    let from = restoredLsn;
    for (const sql of [`INSERT INTO history VALUES (2, 'two')`, `UPDATE history SET v = 'uno' WHERE id = 1`, `DELETE FROM history WHERE id = 2`, `INSERT INTO history VALUES (3, 'three')`]) {
      await admin.query(sql);
      from = (await cycle(schema, from)).version; // the live mirror moves on, cycle after cycle
    }
    await waitFor(async () => {
      const s = await slot();
      return s !== undefined && (await admin.query<{ ok: boolean }>('SELECT $1::pg_lsn > $2::pg_lsn AS ok', [s.confirmed, lsnThen])).rows[0]!.ok;
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'the slot to confirm past the restored LSN' });
    // The restored mirror asks from where its backup stood: the side table still has all of it.
    const { lines: got } = await cycle(schema, restoredLsn);
    expect(got).toEqual(['D\t2\t\\N', 'U\t1\tuno', 'U\t3\tthree'].sort());
  });

  it('raises the min valid version on TRUNCATE past the truncating transaction, also of one partition alone', async () => {
    const { schema } = await tracked('wiped', `CREATE TABLE wiped (id int PRIMARY KEY); INSERT INTO wiped VALUES (1)`);
    await admin.query('BEGIN');
    await admin.query('TRUNCATE wiped');
    const xid = await xidOf(admin);
    await admin.query('COMMIT');
    const snap = await source.snapshot();
    try {
      expect(await snap.minValidVersion(schema)).toBe((BigInt(xid) + 1n).toString());
    } finally {
      await snap.close();
    }

    const parts = await tracked(
      'measures',
      `CREATE TABLE measures (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
       CREATE TABLE measures_eu PARTITION OF measures FOR VALUES IN ('eu');
       CREATE TABLE measures_us PARTITION OF measures FOR VALUES IN ('us');
       INSERT INTO measures VALUES (1, 'eu', 1), (2, 'us', 2)`,
    );
    // Every leaf has FULL too: an UPDATE or DELETE is checked against the partition it touches.
    const leaves = await admin.query(`SELECT relname, relreplident FROM pg_class WHERE relname IN ('measures_eu', 'measures_us') ORDER BY 1`);
    expect(leaves.rows).toEqual([{ relname: 'measures_eu', relreplident: 'f' }, { relname: 'measures_us', relreplident: 'f' }]);
    await tenantWrites([`UPDATE measures SET region = 'us' WHERE id = 1`, `INSERT INTO measures_us VALUES (3, 'us', 3)`]);
    expect((await cycle(parts.schema, parts.version)).lines).toEqual(['D\t1\teu\t\\N', 'U\t1\tus\t1', 'U\t3\tus\t3'].sort());
    await admin.query('TRUNCATE measures_us');
    expect((await verdict(parts.schema, parts.version)).changes).toBe(FailureType.TrackingExpired);
  });

  it('records the key of an update that leaves a TOASTed key unchanged (the old row carries it)', async () => {
    const big = Array.from({ length: 600 }, (_, i) => ((i * 7919) % 1000).toString(36)).join('-'); // long and not compressible enough to stay inline
    const { schema, version } = await tracked('docs', `CREATE TABLE docs (k text PRIMARY KEY, n int); ALTER TABLE docs ALTER COLUMN k SET STORAGE EXTERNAL; INSERT INTO docs VALUES ('${big}', 1)`);
    await admin.query(`UPDATE docs SET n = 2`);
    expect((await cycle(schema, version)).lines).toEqual([`U\t${big}\t2`]);
  });

  it('tracks tables whose names and key columns are hostile', async () => {
    const name = `we"ird 'name; DROP TABLE x;--`;
    const { schema, version } = await tracked(name, `CREATE TABLE ${quotePg(name)} (${quotePg('k"ey 1')} text, "Ü" int, v text, PRIMARY KEY (${quotePg('k"ey 1')}, "Ü"))`);
    await admin.query(`INSERT INTO ${quotePg(name)} VALUES (E'a\\\\b''c', 1, 'x'), ('ü', 2, 'y')`);
    await admin.query(`UPDATE ${quotePg(name)} SET "Ü" = 3 WHERE "Ü" = 2`);
    const got = (await cycle(schema, version)).lines.map(decodeLine);
    expect(got).toEqual(
      [
        ['D', 'ü', '2', null],
        ['U', "a\\b'c", '1', 'x'],
        ['U', 'ü', '3', 'y'],
      ].sort((x, y) => x.join('|').localeCompare(y.join('|'))),
    );
  });
});

describe('DDL on a decoded table never fails the tenant’s writes', () => {
  it('renaming or retyping the key column: writes succeed, the reader sees tracking expired', async () => {
    const renamed = await tracked('renamed', `CREATE TABLE renamed (id int PRIMARY KEY, v text); INSERT INTO renamed VALUES (1, 'a'), (2, 'b')`);
    await admin.query('ALTER TABLE renamed RENAME COLUMN id TO key_id');
    await tenantWrites([`INSERT INTO renamed VALUES (3, 'c')`, `UPDATE renamed SET v = 'x' WHERE key_id = 1`, `UPDATE renamed SET key_id = 20 WHERE key_id = 2`, `DELETE FROM renamed WHERE key_id = 3`]);
    expect(await verdict(renamed.schema, renamed.version)).toEqual({ minValid: null, changes: FailureType.TrackingExpired });
    expect(await source.enableTracking(await table('renamed'), DAY)).toBe(true);

    const widened = await tracked('widened', `CREATE TABLE widened (id int PRIMARY KEY, v text); INSERT INTO widened VALUES (1, 'a')`);
    await admin.query('ALTER TABLE widened ALTER COLUMN id TYPE bigint');
    await tenantWrites([`INSERT INTO widened VALUES (3000000000, 'big')`, `UPDATE widened SET v = 'x' WHERE id = 3000000000`, `DELETE FROM widened WHERE id = 1`]);
    expect((await verdict(widened.schema, widened.version)).changes).toBe(FailureType.TrackingExpired);
  });

  it('dropping the primary key, or replacing it: UPDATE and DELETE still succeed (REPLICA IDENTITY FULL needs no index)', async () => {
    const dropped = await tracked('dropkey', `CREATE TABLE dropkey (id int PRIMARY KEY, v text); INSERT INTO dropkey VALUES (1, 'a')`);
    await admin.query('ALTER TABLE dropkey DROP CONSTRAINT dropkey_pkey');
    await tenantWrites([`INSERT INTO dropkey VALUES (1, 'duplicate now allowed')`, `UPDATE dropkey SET v = 'y'`, `DELETE FROM dropkey WHERE v = 'y'`, `TRUNCATE dropkey`]);
    expect((await verdict(dropped.schema, dropped.version)).minValid).toBeNull();

    const rekeyed = await tracked('rekey', `CREATE TABLE rekey (id int PRIMARY KEY, code text NOT NULL, v text); INSERT INTO rekey VALUES (1, 'a', 'x')`);
    await admin.query('ALTER TABLE rekey DROP CONSTRAINT rekey_pkey, ADD PRIMARY KEY (code)');
    await tenantWrites([`INSERT INTO rekey VALUES (2, 'b', 'y')`, `UPDATE rekey SET code = 'c' WHERE id = 2`, `DELETE FROM rekey WHERE id = 1`]);
    expect((await verdict(rekeyed.schema, rekeyed.version)).changes).toBe(FailureType.TrackingExpired);
  });

  it('a table dropped and recreated reads as expired; enabling again raises the min valid version', async () => {
    const first = await tracked('phoenix', `CREATE TABLE phoenix (id int PRIMARY KEY, v text)`);
    const minBefore = (await verdict(first.schema, first.version)).minValid!;
    await admin.query(`DROP TABLE phoenix; CREATE TABLE phoenix (id int PRIMARY KEY, v text); INSERT INTO phoenix VALUES (1, 'untracked')`);
    const again = await table('phoenix');
    expect(await verdict(again, first.version)).toEqual({ minValid: null, changes: FailureType.TrackingExpired });
    expect(await source.enableTracking(again, DAY)).toBe(true);
    expect(BigInt((await verdict(again, first.version)).minValid!)).toBeGreaterThan(BigInt(minBefore));
  });

  it('a table whose key is a unique index (no primary key) is decoded too, and its UPDATEs succeed', async () => {
    const { schema, version } = await tracked('coded', `CREATE TABLE coded (code text NOT NULL UNIQUE, v text); INSERT INTO coded VALUES ('a', '1')`);
    expect(schema.keyIndex).toBe('coded_code_key');
    await tenantWrites([`UPDATE coded SET v = '2'`, `DELETE FROM coded`, `INSERT INTO coded VALUES ('b', '3')`]);
    expect((await cycle(schema, version)).lines).toEqual(['D\ta\t\\N', 'U\tb\t3']);
  });
});

describe('the slot', () => {
  it('cut mid-ingestion: the next snapshot starts again from what was recorded, and nothing goes missing', async () => {
    const { schema, version } = await tracked('bulk', `CREATE TABLE bulk (id int PRIMARY KEY, n int)`);
    await admin.query(`DO $$ BEGIN FOR i IN 1..20000 LOOP INSERT INTO bulk VALUES (i, 0); IF i % 100 = 0 THEN COMMIT; END IF; END LOOP; END $$`);
    const ingesting = currentVersion().then(
      () => 'done',
      (err: unknown) => (err instanceof MirrorError ? err.type : String(err)),
    );
    await new Promise((r) => setTimeout(r, 30));
    await cutStream();
    const outcome = await ingesting;
    expect(['done', FailureType.SourceReadFailed, FailureType.Unavailable]).toContain(outcome);
    await settledVersion();
    const { lines: got } = await cycle(schema, version);
    expect(got).toHaveLength(20000);
    const side = (await admin.query<{ side: string }>(`SELECT side_table AS side FROM tenant_mirror_ct.tracked WHERE relid = 'bulk'::regclass`)).rows[0]!.side;
    const distinct = await admin.query<{ n: string }>(`SELECT count(DISTINCT k)::text AS n FROM tenant_mirror_ct.${quotePg(side)}`);
    expect(distinct.rows[0]!.n).toBe('20000');
  });

  it('consumed by someone else past what was ingested: every decoded table reads as expired, and enableTracking sets a new slot up', async () => {
    const { schema, version } = await tracked('stolen', `CREATE TABLE stolen (id int PRIMARY KEY)`);
    await cutStream();
    await admin.query('INSERT INTO stolen VALUES (1)');
    const name = (await slot())!.slot_name;
    await admin.query(`SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'tenant_mirror_ct')`, [name]);
    await settledVersion();
    expect(await verdict(schema, version)).toEqual({ minValid: null, changes: FailureType.TrackingExpired });
    await source.enableTracking(schema, DAY);
    // Below the new min valid version for good; a repopulation at the version now goes on from there.
    const fresh = await currentVersion();
    const after = await verdict(schema, fresh);
    expect(BigInt(after.minValid!)).toBeGreaterThan(BigInt(version));
    expect(BigInt(fresh)).toBeGreaterThanOrEqual(BigInt(after.minValid!));
    expect((await verdict(schema, version)).changes).toBe(FailureType.TrackingExpired);
    await admin.query('INSERT INTO stolen VALUES (2)');
    expect((await cycle(schema, fresh)).lines).toEqual(['U\t2']);
  });

  it('dropped by hand: expired, then set up again', async () => {
    const { schema, version } = await tracked('orphaned', `CREATE TABLE orphaned (id int PRIMARY KEY)`);
    await cutStream();
    await admin.query('SELECT pg_drop_replication_slot($1)', [(await slot())!.slot_name]);
    await admin.query('INSERT INTO orphaned VALUES (1)');
    await settledVersion();
    expect(await verdict(schema, version)).toEqual({ minValid: null, changes: FailureType.TrackingExpired });
    await source.enableTracking(schema, DAY);
    expect((await slot())?.slot_name).toMatch(/^tenant_mirror_ct_/);
    const fresh = await currentVersion();
    expect((await verdict(schema, version)).changes).toBe(FailureType.TrackingExpired);
    await admin.query('INSERT INTO orphaned VALUES (2)');
    expect((await cycle(schema, fresh)).lines).toEqual(['U\t2']);
  });

  it('invalidated by the server (wal_status lost, max_slot_wal_keep_size): expired, the lost slot dropped, then set up again', async () => {
    const { schema, version } = await tracked('evicted', `CREATE TABLE evicted (id int PRIMARY KEY)`);
    await cutStream();
    const lost = (await slot())!.slot_name;
    await admin.query(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
    await admin.query('SELECT pg_reload_conf()');
    try {
      // WAL past the slot's restart point, in segments of their own, then a checkpoint: the server removes them.
      for (let i = 0; i < 4; i++) await admin.query(`INSERT INTO evicted VALUES (${i}); SELECT pg_switch_wal()`);
      await admin.query('CHECKPOINT');
      const status = await admin.query<{ wal_status: string }>(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, [lost]);
      expect(status.rows[0]?.wal_status).toBe('lost');
    } finally {
      await admin.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
      await admin.query('SELECT pg_reload_conf()');
    }
    await settledVersion();
    expect(await verdict(schema, version)).toEqual({ minValid: null, changes: FailureType.TrackingExpired });
    expect(await slot()).toBeUndefined();
    await source.enableTracking(schema, DAY);
    const fresh = await currentVersion();
    await admin.query('INSERT INTO evicted VALUES (100)');
    expect((await cycle(schema, fresh)).lines).toEqual(['U\t100']);
  });

  it('is shared by the tenants of a database: one ingests, the other reads at the horizon it records', async () => {
    const other = logicalSource('neighbour');
    const { schema, version } = await tracked('shared', `CREATE TABLE shared (id int PRIMARY KEY)`);
    await currentVersion(); // this source holds the slot now
    await admin.query('INSERT INTO shared VALUES (1)');
    const xid = (await admin.query<{ x: string }>(`SELECT xmin::text::bigint::text AS x FROM shared WHERE id = 1`)).rows[0]!.x;
    const before = await cycle(schema, version, other);
    // Not ingested yet, so not below the neighbour's version either: nothing is skipped.
    expect(before.lines.length === 0 ? BigInt(before.version) <= BigInt(xid) : before.lines[0] === 'U\t1').toBe(true);
    await currentVersion(); // the holder ingests
    const after = await cycle(schema, before.version, other);
    expect([...before.lines, ...after.lines]).toEqual(['U\t1']);
    await other.close();
  });

  it('untrack takes the table out of the publication and gives it its replica identity back; the last one removes slot and publication', async () => {
    await admin.query(`CREATE TABLE indexed (id int NOT NULL, v text); CREATE UNIQUE INDEX indexed_id ON indexed (id); ALTER TABLE indexed REPLICA IDENTITY USING INDEX indexed_id`);
    expect(await source.enableTracking(await table('indexed'), DAY)).toBe(true);
    expect(await source.untrack((n) => n === 'indexed')).toEqual(['indexed']);
    expect((await admin.query(`SELECT relreplident FROM pg_class WHERE oid = 'indexed'::regclass`)).rows[0]).toEqual({ relreplident: 'i' });
    expect((await admin.query(`SELECT 1 FROM pg_publication_tables WHERE tablename = 'indexed'`)).rowCount).toBe(0);

    await source.untrack(() => true, { removeUnused: true });
    expect(await slot()).toBeUndefined();
    expect((await admin.query(`SELECT 1 FROM pg_publication WHERE pubname = 'tenant_mirror_ct'`)).rowCount).toBe(0);
    expect((await admin.query(`SELECT relname FROM pg_class WHERE relreplident = 'f' AND relnamespace = 'public'::regnamespace`)).rows).toEqual([]);
    await tenantWrites([`UPDATE accounts SET owner = 'x'`, `ALTER TABLE accounts SET UNLOGGED`]);
  });
});

describe('switching modes', () => {
  it('a table tracked by triggers moves to decoding when the tenant asks for it (reinstalled: min valid version raised)', async () => {
    const triggers = new PgChangeSource({ url, tenant: 'triggers' });
    sources.push(triggers);
    const { schema, version } = await tracked('switched', `CREATE TABLE switched (id int PRIMARY KEY)`, triggers);
    const byTrigger = (await verdict(schema, version)).minValid!;
    expect(await source.enableTracking(schema, DAY)).toBe(true);
    expect((await admin.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'switched'::regclass AND NOT tgisinternal`)).rows).toEqual([]);
    const now = await verdict(schema, version);
    expect(BigInt(now.minValid!)).toBeGreaterThan(BigInt(byTrigger));
    expect(now.changes).toBe(FailureType.TrackingExpired);
  });
});

describe('a database in another encoding', () => {
  it('records keys as the database spells them (LATIN1)', async () => {
    await server.sql(`CREATE DATABASE latin ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`);
    const latinUrl = server.url('latin');
    const latin = await connect(latinUrl);
    const src = logicalSource('latin', latinUrl);
    await latin.query(`CREATE TABLE words (w text PRIMARY KEY, n int); INSERT INTO words VALUES ('café', 1)`);
    const schema = (await src.listTables((n) => n === 'words')).tables[0]!;
    expect(await src.enableTracking(schema, DAY)).toBe(true);
    const version = await currentVersion(src);
    await latin.query(`UPDATE words SET n = 2 WHERE w = 'café'; INSERT INTO words VALUES ('naïve', 3)`);
    expect((await cycle(schema, version, src)).lines).toEqual(['U\tcafé\t2', 'U\tnaïve\t3']);
  });
});

describe('a server without wal_level = logical', () => {
  it('is refused with BadConfig naming the setting', async () => {
    const plain = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'logical-tracking-replica') });
    try {
      const plainUrl = await plain.createDatabase('app');
      await plain.sql('CREATE TABLE t (id int PRIMARY KEY)', 'app');
      const src = logicalSource('replica', plainUrl);
      const schema = (await src.listTables((n) => n === 't')).tables[0]!;
      const err = await src.enableTracking(schema, DAY).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MirrorError);
      expect((err as MirrorError).type).toBe(FailureType.BadConfig);
      expect((err as MirrorError).message).toMatch(/wal_level = replica.*wal_level = logical/);
      await src.close();
    } finally {
      await plain.stop();
    }
  });
});
