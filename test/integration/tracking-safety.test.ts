/**
 * Tracking can never fail a tenant's write. On a real PostgreSQL: every DDL a tenant runs on a tracked table —
 * rename or retype a key column, drop or change the primary key, rename the table, move it to another schema, drop
 * it, drop our side table by hand — is followed by the tenant's INSERT, UPDATE, DELETE and TRUNCATE, which must all
 * succeed; and the reader must then see the table's tracking as not usable (expired: repopulate), never read wrong
 * changes. No worker runs here: this is also the "worker down" state. Plus: partitions (TRUNCATE, DETACH, ATTACH,
 * DROP of one), `untrack`, and a table rewritten between a snapshot's start and its read.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { FailureType, MirrorError } from '../../src/core/errors';
import type { TableSchema } from '../../src/core/types';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { PgChangeSource } from '../../src/postgres/source';

const DAY = 24 * 3600 * 1000;
let server: EmbeddedPg;
let url: string;
let admin: Client;
let source: PgChangeSource;

beforeAll(async () => {
  server = await EmbeddedPg.start({ dir: join(process.cwd(), '.data', 'test', 'tracking-safety') });
  url = await server.createDatabase('tenant_db');
  admin = new Client({ connectionString: url });
  await admin.connect();
  source = new PgChangeSource({ url, tenant: 'safety' });
});

afterAll(async () => {
  await source?.close();
  await admin?.end();
  await server?.stop();
});

async function table(name: string): Promise<TableSchema> {
  const listed = (await source.listTables((n) => n === name)).tables[0];
  if (!listed) throw new Error(`${name} not listed`);
  return listed;
}

/** A tracked table with a few rows, and the version the mirror would hold after populating it. */
async function tracked(name: string, ddl: string): Promise<{ schema: TableSchema; version: string }> {
  await admin.query(ddl);
  const schema = await table(name);
  expect(await source.enableTracking(schema, DAY)).toBe(true);
  const snap = await source.snapshot();
  try {
    return { schema, version: snap.version };
  } finally {
    await snap.close();
  }
}

/** The tenant's own statements, as its application would run them. Any error fails the test. */
async function tenantWrites(sql: string[]): Promise<void> {
  for (const text of sql) await admin.query(text);
}

/** What the reader makes of the table now: its min valid version, or the failure reading its changes. */
async function readerVerdict(schema: TableSchema, from: string): Promise<{ minValid: string | null; changes: string }> {
  const snap = await source.snapshot();
  try {
    const minValid = await snap.minValidVersion(schema);
    const stream = snap.changes(schema, from);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return { minValid, changes: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      return { minValid, changes: err instanceof MirrorError ? err.type : String(err) };
    }
  } finally {
    await snap.close();
  }
}

describe('DDL on a tracked table never fails the tenant’s writes', () => {
  it('renaming the key column: writes succeed, the reader sees tracking expired', async () => {
    const { schema, version } = await tracked('renamed', `CREATE TABLE renamed (id int PRIMARY KEY, v text); INSERT INTO renamed VALUES (1, 'a'), (2, 'b')`);
    await admin.query('ALTER TABLE renamed RENAME COLUMN id TO key_id');
    await tenantWrites([
      `INSERT INTO renamed VALUES (3, 'c')`,
      `UPDATE renamed SET v = 'changed' WHERE key_id = 1`,
      `UPDATE renamed SET key_id = 20 WHERE key_id = 2`,
      `DELETE FROM renamed WHERE key_id = 3`,
      `TRUNCATE renamed`,
    ]);
    // The listing already names the new key, and the changes recorded under the old one cannot be read as valid.
    const verdict = await readerVerdict(schema, version);
    expect(verdict.minValid).toBeNull();
    expect(verdict.changes).toBe(FailureType.TrackingExpired);
    // Re-enabling installs tracking for the table as it is now.
    expect(await source.enableTracking(await table('renamed'), DAY)).toBe(true);
    await tenantWrites([`INSERT INTO renamed VALUES (4, 'd')`]);
  });

  it('widening the key to bigint: a key beyond int4 is written (the side table keeps keys as text)', async () => {
    const { schema, version } = await tracked('widen', `CREATE TABLE widen (id int PRIMARY KEY, v text); INSERT INTO widen VALUES (1, 'a')`);
    await admin.query('ALTER TABLE widen ALTER COLUMN id TYPE bigint');
    await tenantWrites([`INSERT INTO widen VALUES (3000000000, 'big')`, `UPDATE widen SET v = 'x' WHERE id = 3000000000`, `DELETE FROM widen WHERE id = 1`]);
    const verdict = await readerVerdict(schema, version);
    // Recorded under integer, read under bigint: not the same tracking any more, so the table is repopulated.
    expect(verdict.minValid).toBeNull();
    expect(verdict.changes).toBe(FailureType.TrackingExpired);
    const widened = await table('widen');
    expect(await source.enableTracking(widened, DAY)).toBe(true);
    await tenantWrites([`INSERT INTO widen VALUES (5000000000, 'bigger')`]);
    const snap = await source.snapshot();
    await snap.close();
  });

  it('dropping the primary key, or changing it: writes succeed', async () => {
    const dropped = await tracked('dropkey', `CREATE TABLE dropkey (id int PRIMARY KEY, v text); INSERT INTO dropkey VALUES (1, 'a')`);
    await admin.query('ALTER TABLE dropkey DROP CONSTRAINT dropkey_pkey');
    await tenantWrites([`INSERT INTO dropkey VALUES (1, 'duplicate now allowed')`, `UPDATE dropkey SET v = 'y'`, `DELETE FROM dropkey WHERE v = 'y'`, `TRUNCATE dropkey`]);
    expect((await readerVerdict(dropped.schema, dropped.version)).minValid).toBeNull();
    expect((await table('dropkey')).primaryKey).toEqual([]);

    const changed = await tracked('rekey', `CREATE TABLE rekey (id int PRIMARY KEY, code text NOT NULL, v text); INSERT INTO rekey VALUES (1, 'a', 'x')`);
    await admin.query('ALTER TABLE rekey DROP CONSTRAINT rekey_pkey, ADD PRIMARY KEY (code)');
    await tenantWrites([`INSERT INTO rekey VALUES (2, 'b', 'y')`, `UPDATE rekey SET code = 'c' WHERE id = 2`, `DELETE FROM rekey WHERE id = 1`]);
    expect((await readerVerdict(changed.schema, changed.version)).changes).toBe(FailureType.TrackingExpired);
  });

  it('renaming the table, moving it to another schema, dropping it: writes succeed, tracking follows the table by its oid', async () => {
    const moved = await tracked('wanderer', `CREATE TABLE wanderer (id int PRIMARY KEY, v text); INSERT INTO wanderer VALUES (1, 'a')`);
    await admin.query('ALTER TABLE wanderer RENAME TO wanderer2; CREATE SCHEMA IF NOT EXISTS elsewhere; ALTER TABLE wanderer2 SET SCHEMA elsewhere');
    await tenantWrites([`INSERT INTO elsewhere.wanderer2 VALUES (2, 'b')`, `UPDATE elsewhere.wanderer2 SET v = 'c'`, `DELETE FROM elsewhere.wanderer2 WHERE id = 1`]);
    // The same table under its new name: its tracking is intact, and the changes recorded are readable.
    const renamed = await table('elsewhere.wanderer2');
    const verdict = await readerVerdict(renamed, moved.version);
    expect(verdict.minValid).not.toBeNull();
    expect(verdict.changes.split('\n').filter(Boolean).sort()).toEqual(['D\t1\t\\N', 'U\t2\tc']);

    await tracked('doomed', `CREATE TABLE doomed (id int PRIMARY KEY); INSERT INTO doomed VALUES (1)`);
    await admin.query('DROP TABLE doomed');
    await admin.query(`CREATE TABLE doomed (id int PRIMARY KEY); INSERT INTO doomed VALUES (1), (2)`);
  });

  it('dropping our side table by hand stops recording instead of failing writes', async () => {
    const { schema, version } = await tracked('orphan', `CREATE TABLE orphan (id int PRIMARY KEY); INSERT INTO orphan VALUES (1)`);
    const side = (await admin.query<{ side: string }>(`SELECT side_table AS side FROM tenant_mirror_ct.tracked WHERE relid = 'orphan'::regclass`)).rows[0]!.side;
    await admin.query(`DROP TABLE tenant_mirror_ct."${side.replace(/"/g, '""')}"`);
    await tenantWrites([`INSERT INTO orphan VALUES (2)`, `UPDATE orphan SET id = 3 WHERE id = 2`, `DELETE FROM orphan`]);
    expect((await readerVerdict(schema, version)).changes).toBe(FailureType.TrackingExpired);
  });
});

describe('partitions', () => {
  it('TRUNCATE, DETACH, ATTACH and DROP of a partition each leave the table’s tracking expired (repopulate)', async () => {
    await admin.query(`
      CREATE TABLE measures (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
      CREATE TABLE measures_eu PARTITION OF measures FOR VALUES IN ('eu');
      CREATE TABLE measures_us PARTITION OF measures FOR VALUES IN ('us');
      INSERT INTO measures SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 20) g;`);
    const enable = async (): Promise<{ schema: TableSchema; version: string }> => {
      const schema = await table('measures');
      await source.enableTracking(schema, DAY);
      const snap = await source.snapshot();
      try {
        return { schema, version: snap.version };
      } finally {
        await snap.close();
      }
    };
    const steps = [
      'TRUNCATE measures_eu',
      'ALTER TABLE measures DETACH PARTITION measures_us',
      `CREATE TABLE measures_asia (id int NOT NULL, region text NOT NULL, v int); INSERT INTO measures_asia VALUES (100, 'asia', 1);
       ALTER TABLE measures ATTACH PARTITION measures_asia FOR VALUES IN ('asia')`,
      'DROP TABLE measures_asia',
    ];
    for (const step of steps) {
      const before = await enable();
      // A valid mirror at `before.version` ...
      expect((await readerVerdict(before.schema, before.version)).changes).toBe('');
      await admin.query(step);
      await tenantWrites([`INSERT INTO measures VALUES (1000, 'eu', 1)`, `UPDATE measures SET v = v + 1`, `DELETE FROM measures WHERE id = 1000`]);
      // ... can no longer continue: the rows the step added or removed came without a change to read.
      const after = await readerVerdict(before.schema, before.version);
      expect(after.changes, step).toBe(FailureType.TrackingExpired);
    }
    // The detached partition is a table of its own now, with none of our triggers left on it.
    const left = await admin.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'measures_us'::regclass AND tgname LIKE 'tenant_mirror%'`);
    expect(left.rows).toEqual([]);
  });
});

describe('untrack', () => {
  it('removes every tracking object of the tables it names, and the schema once nothing is tracked', async () => {
    await tracked('gone_soon', `CREATE TABLE gone_soon (id int PRIMARY KEY)`);
    expect(await source.untrack((n) => n === 'gone_soon')).toEqual(['gone_soon']);
    const triggers = await admin.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'gone_soon'::regclass AND NOT tgisinternal`);
    expect(triggers.rows).toEqual([]);
    const registry = await admin.query(`SELECT 1 FROM tenant_mirror_ct.tracked WHERE relid = 'gone_soon'::regclass`);
    expect(registry.rowCount).toBe(0);
    await tenantWrites([`INSERT INTO gone_soon VALUES (1)`, `TRUNCATE gone_soon`]);

    const all = await source.untrack(() => true, { removeUnused: true });
    expect(all.length).toBeGreaterThan(0);
    const schema = await admin.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_mirror_ct'`);
    expect(schema.rowCount).toBe(0);
    const ours = await admin.query(`SELECT tgname FROM pg_trigger WHERE tgname LIKE 'tenant_mirror%'`);
    expect(ours.rows).toEqual([]);
    await tenantWrites([`INSERT INTO renamed VALUES (99, 'after untrack')`, `TRUNCATE measures`]);
  });
});

describe('tenants sharing one source database', () => {
  /** Whether the table's tracking records: a side table, triggers and a registry row, all intact. */
  const recording = async (schema: TableSchema): Promise<boolean> => {
    const snap = await source.snapshot();
    try {
      return (await snap.minValidVersion(schema)) !== null;
    } finally {
      await snap.close();
    }
  };

  it('a session untracking its last table never removes the tracking another tenant is setting up', async () => {
    const other = new PgChangeSource({ url, tenant: 'neighbour' });
    try {
      for (let round = 0; round < 6; round++) {
        await admin.query(`DROP TABLE IF EXISTS mine, theirs; CREATE TABLE mine (id int PRIMARY KEY); CREATE TABLE theirs (id int PRIMARY KEY)`);
        const [mine, theirs] = [await table('mine'), await table('theirs')];
        await source.enableTracking(mine, DAY);
        // One tenant's session drops its last table while the other tenant's session sets its first one up.
        await Promise.all([source.untrack((n) => n === 'mine' || n === 'nothing-here'), other.enableTracking(theirs, DAY)]);
        expect(await recording(theirs)).toBe(true);
        await tenantWrites([`INSERT INTO theirs VALUES (${round})`]);
        await other.untrack((n) => n === 'theirs');
        // Nothing is tracked now; a session's untrack still leaves the shared schema (and its epoch) alone.
        expect((await admin.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_mirror_ct'`)).rowCount).toBe(1);
      }
    } finally {
      await other.close();
    }
  });

  it("the operator's untrack removes the schema only when nothing is tracked, even with a neighbour setting up at the same moment", async () => {
    const other = new PgChangeSource({ url, tenant: 'neighbour' });
    try {
      for (let round = 0; round < 6; round++) {
        await admin.query(`DROP TABLE IF EXISTS mine, theirs; CREATE TABLE mine (id int PRIMARY KEY); CREATE TABLE theirs (id int PRIMARY KEY)`);
        const [mine, theirs] = [await table('mine'), await table('theirs')];
        await source.enableTracking(mine, DAY);
        await Promise.all([source.untrack((n) => n === 'mine', { removeUnused: true }), other.enableTracking(theirs, DAY)]);
        // Whichever went first, the neighbour's table records (its set-up created the schema again if it had to).
        expect(await recording(theirs)).toBe(true);
        await other.untrack((n) => n === 'theirs');
      }
    } finally {
      await other.close();
    }
  });
});

describe('a table rewritten while a snapshot is open', () => {
  it('is skipped for this cycle (SourceBusy), never read as "every row deleted"', async () => {
    const { schema, version } = await tracked('rewritten', `CREATE TABLE rewritten (id int PRIMARY KEY, v int); INSERT INTO rewritten SELECT g, g FROM generate_series(1, 50) g`);
    await admin.query('UPDATE rewritten SET v = v + 1 WHERE id <= 10');
    const snap = await source.snapshot();
    try {
      // The snapshot has begun (its version is fixed); only now does the tenant rewrite the table and commit.
      await admin.query('ALTER TABLE rewritten ALTER COLUMN v TYPE bigint');
      const chunks: Buffer[] = [];
      let failure: MirrorError | null = null;
      try {
        for await (const chunk of snap.changes(schema, version)) chunks.push(chunk as Buffer);
      } catch (err) {
        failure = err as MirrorError;
      }
      // Read as of the snapshot, the rewritten table would look empty: every recorded key a delete.
      expect(Buffer.concat(chunks).toString('utf8')).not.toMatch(/^D\t/m);
      expect(failure?.type).toBe(FailureType.SourceBusy);
      expect(failure?.message).toMatch(/rewritten/);
    } finally {
      await snap.close();
    }
    // The next snapshot reads the rewritten table as it is: the ten updated rows, no deletes.
    const next = await readerVerdict(await table('rewritten'), version);
    const lines = next.changes.split('\n').filter(Boolean);
    expect(lines.length === 10 || next.changes === FailureType.TrackingExpired).toBe(true);
    if (lines.length === 10) expect(lines.every((l) => l.startsWith('U\t'))).toBe(true);
  });

  it('a partition truncated after the snapshot began is found too (the check covers the leaves)', async () => {
    const { schema, version } = await tracked(
      'rewritten_parts',
      `CREATE TABLE rewritten_parts (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
       CREATE TABLE rewritten_parts_eu PARTITION OF rewritten_parts FOR VALUES IN ('eu');
       CREATE TABLE rewritten_parts_us PARTITION OF rewritten_parts FOR VALUES IN ('us');
       INSERT INTO rewritten_parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 20) g`,
    );
    await admin.query(`UPDATE rewritten_parts SET id = id + 100 WHERE region = 'us' AND id <= 5`);
    const snap = await source.snapshot();
    try {
      await admin.query('TRUNCATE rewritten_parts_eu');
      let failure: MirrorError | null = null;
      try {
        for await (const chunk of snap.changes(schema, version)) void chunk;
      } catch (err) {
        failure = err as MirrorError;
      }
      expect(failure?.type).toBe(FailureType.SourceBusy);
      expect(failure?.message).toMatch(/rewritten/);
    } finally {
      await snap.close();
    }
  });
});
