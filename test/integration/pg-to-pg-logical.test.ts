/**
 * PostgreSQL → PostgreSQL end to end with `source.tracking: logical`: the real worker, workflow and activities on
 * the Temporal dev server, a source server with wal_level = logical. The tenant is populated, then converges while
 * several writers keep changing the source — including a transaction that writes first and commits last, the case
 * the horizon rule exists for — and the source tables never get a trigger: the slot feeds the side tables.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';
import { tenantReport } from '../../src/status';
import { formatStatus } from '../../src/cli/status-format';
import { findTenant, loadConfigFile } from '../../src/config/load';

let h: Harness;

const TABLES = [
  { name: 'accounts', orderBy: 'id' },
  { name: 'sales.lines', sourceName: 'sales.lines', orderBy: 'order_id, line_no' },
];

beforeAll(async () => {
  h = await startHarness('pg-to-pg-logical', {}, { sourceSettings: { wal_level: 'logical', max_replication_slots: '10' } });
  // The source's URL is known once the harness has created its database.
  h.writeConfig({ source: { kind: 'postgres', url: h.sourceUrl, tracking: 'logical' } });
  await h.sourceSql(`
    CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL, note text);
    INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5, repeat('x', g % 50) FROM generate_series(1, 3000) g;
    CREATE SCHEMA sales;
    CREATE TABLE sales.lines (order_id integer, line_no smallint, sku text NOT NULL, PRIMARY KEY (order_id, line_no));
    INSERT INTO sales.lines SELECT g / 4, g % 4, 'sku-' || g FROM generate_series(0, 999) g;
  `);
  await h.startTenant();
});

afterAll(async () => {
  await h?.stop();
});

/** One writer: random single-row updates, inserts and deletes, each its own transaction, until `stop` is set. */
async function writer(seed: number, stop: { done: boolean }): Promise<number> {
  const c = new Client({ connectionString: h.sourceUrl });
  await c.connect();
  let n = 0;
  try {
    while (!stop.done) {
      const id = 1 + ((seed * 7919 + n * 104729) % 3000);
      const step = n % 10;
      if (step < 6) await c.query('UPDATE accounts SET balance = balance + 1, note = $2 WHERE id = $1', [id, `w${seed}-${n}`]);
      else if (step < 9) await c.query('INSERT INTO accounts VALUES ($1, $2, 0, NULL) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner', [10_000 + seed * 100_000 + n, `new ${n}`]);
      else await c.query('DELETE FROM accounts WHERE id = $1', [id]);
      if (n % 25 === 0) await c.query('UPDATE sales.lines SET sku = sku || $2 WHERE order_id = $1', [n % 250, '+']);
      n++;
    }
  } finally {
    await c.end();
  }
  return n;
}

describe('PostgreSQL → PostgreSQL, tracked by logical decoding', () => {
  it('populates, with a slot and publication at the source and no trigger on its tables', async () => {
    const sums = await h.waitConverged(TABLES);
    expect(sums.accounts!.rows).toBe(3000);
    expect(sums['sales.lines']!.rows).toBe(1000);
    const triggers = await query<{ n: string }>(
      h.sourceUrl,
      `SELECT count(*)::text AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relname IN ('accounts', 'lines')`,
    );
    expect(triggers[0]!.n).toBe('0');
    const slots = await query<{ plugin: string }>(h.sourceUrl, `SELECT plugin FROM pg_replication_slots WHERE database = current_database()`);
    expect(slots.map((s) => s.plugin)).toEqual(['pgoutput']);
    const published = await query<{ tablename: string }>(h.sourceUrl, `SELECT tablename FROM pg_publication_tables ORDER BY tablename`);
    expect(published.map((p) => p.tablename)).toEqual(['accounts', 'lines']);
  });

  it('converges while writers keep changing the source, a late-committing transaction included', async () => {
    const late = new Client({ connectionString: h.sourceUrl });
    await late.connect();
    try {
      // Writes first (its xid is older than everything the writers do), commits after several cycles have run.
      await late.query('BEGIN');
      await late.query(`UPDATE accounts SET note = 'late commit' WHERE id = 7`);
      await late.query(`INSERT INTO accounts VALUES (999999, 'late', 1, 'late commit')`);
      const stop = { done: false };
      const writers = [1, 2, 3].map((seed) => writer(seed, stop));
      await new Promise((r) => setTimeout(r, 2_000));
      await late.query('COMMIT');
      await new Promise((r) => setTimeout(r, 2_000));
      stop.done = true;
      const written = await Promise.all(writers);
      expect(written.every((n) => n > 0)).toBe(true);
    } finally {
      await late.end();
    }
    const sums = await h.waitConverged(TABLES, 90_000);
    const source = await query<{ n: string }>(h.sourceUrl, 'SELECT count(*)::text AS n FROM accounts');
    expect(sums.accounts!.rows).toBe(Number(source[0]!.n));
    const lateRows = await query<{ id: string }>(h.mirrorUrl, `SELECT id::text FROM ${h.mirrorSchema}.accounts WHERE note = 'late commit' ORDER BY id`);
    expect(lateRows.map((r) => r.id)).toContain('999999');
    const status = await h.status();
    expect(status.tables.filter((t) => t.state === 'mirroring').map((t) => t.name).sort()).toEqual(['accounts', 'sales.lines']);
  });

  it('status reports the slot and the WAL it keeps at the source', async () => {
    const report = await tenantReport(h.client, h.tenantId, findTenant(loadConfigFile(h.configPath, {}), h.tenantId));
    expect(report.slot).toMatchObject({ slot: expect.stringMatching(/^tenant_mirror_ct_\d+$/), walStatus: 'reserved' });
    expect(report.slot!.retainedBytes).toBeGreaterThanOrEqual(0);
    expect(formatStatus([report])).toMatch(/replication slot tenant_mirror_ct_\d+: reserved, retains [\d.]+ MB of WAL, last ingested \d{4}-/);
  });
});
