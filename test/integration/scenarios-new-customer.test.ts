/**
 * Scenario 1, a new customer: a source never mirrored before gets change tracking table by table, each mirror
 * table is created from its schema and populated; tables created later are picked up, a table dropped at the
 * source is dropped from the mirror, and tables excluded by configuration are never touched.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, historyMark, mirrorLsns, mirrorTables, populations, trackedTables } from '../support/scenario-tools';
import { waitFor } from '../support/wait';
import { query } from '../support/checksum';
import { tenantReport } from '../../src/status';
import { findTenant, loadConfigFile } from '../../src/config/load';

let h: Harness;

const customers = { name: 'customers', orderBy: 'id' };
const orders = { name: 'orders', orderBy: 'id' };
const invoices = { name: 'invoices', orderBy: 'id' };

beforeAll(async () => {
  h = await startHarness('scn-new-customer', { tables: { include: ['*'], exclude: ['audit_*'] } });
  await h.sourceSql(`
    CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, since date);
    CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, total numeric(12,2));
    CREATE TABLE audit_log (id bigserial PRIMARY KEY, entry text);
    INSERT INTO customers SELECT g, 'customer ' || g, date '2020-01-01' + g FROM generate_series(1, 500) g;
    INSERT INTO orders SELECT g, g % 500 + 1, g * 1.25 FROM generate_series(1, 3000) g;
    INSERT INTO audit_log (entry) SELECT 'e' || g FROM generate_series(1, 10) g;
  `);
  await h.startTenant();
});
afterAll(async () => {
  await h?.stop();
});

describe('scenario 1: new customer', () => {
  it('enables tracking per table, creates and populates every included table; never touches the excluded one', async () => {
    const sums = await h.waitConverged([customers, orders]);
    expect(sums.customers!.rows).toBe(500);
    expect(sums.orders!.rows).toBe(3000);
    expect(await trackedTables(h.sourceUrl)).toEqual(['public.customers', 'public.orders']);
    expect(await mirrorTables(h.mirrorUrl, h.mirrorSchema)).toEqual(['_mirror_fence', '_mirror_log', '_mirror_state', 'customers', 'orders']);
    const triggers = await query<{ t: string }>(h.sourceUrl, `SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`);
    expect(new Set(triggers.map((t) => t.t))).toEqual(new Set(['customers', 'orders']));
    const runs = await activityRuns(h.client, h.workflowId);
    expect(populations(runs).sort()).toEqual(['customers', 'orders']);
    const plan = runs.find((r) => r.name === 'prepareTenant')!.result as { tables: { name: string; reason?: string }[] };
    expect(plan.tables).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'customers', reason: 'new table' }), expect.objectContaining({ name: 'orders', reason: 'new table' })]),
    );
  });

  it('picks up a table created at the source later, and keeps mirroring the others', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`
      CREATE TABLE invoices (id int PRIMARY KEY, order_id bigint, amount numeric(12,2), paid boolean DEFAULT false);
      INSERT INTO invoices SELECT g, g, g * 1.25 FROM generate_series(1, 800) g;
      UPDATE customers SET name = name || ' (renamed)' WHERE id <= 50;
      CREATE TABLE audit_more (id int PRIMARY KEY);
    `);
    const sums = await h.waitConverged([customers, orders, invoices]);
    expect(sums.invoices!.rows).toBe(800);
    const runs = await activityRuns(h.client, h.workflowId);
    // The running session noticed the new table and handed back to the workflow, which bootstrapped again.
    const sessions = runs.filter((r) => r.name === 'syncSession' && r.outcome === 'completed').map((r) => r.result);
    expect(sessions).toContainEqual(expect.objectContaining({ reason: 'tablesChanged', detail: expect.stringContaining('invoices') }));
    // Only the new table is populated; the others continue from their LSNs.
    expect(populations(runs, mark)).toEqual(['invoices']);
    expect(await trackedTables(h.sourceUrl)).toEqual(['public.customers', 'public.invoices', 'public.orders']);
  });

  it('drops a table from the mirror when it is dropped at the source', async () => {
    await h.sourceSql(`DROP TABLE orders; INSERT INTO invoices VALUES (801, 801, 1, true);`);
    await waitFor(async () => !(await mirrorTables(h.mirrorUrl, h.mirrorSchema)).includes('orders'), { what: 'orders dropped from the mirror' });
    await h.waitConverged([customers, invoices]);
    expect([...(await mirrorLsns(h.mirrorUrl, h.mirrorSchema)).keys()].sort()).toEqual(['customers', 'invoices']);
    const status = await h.status();
    expect(status.tables.map((t) => t.name).sort()).toEqual(['customers', 'invoices']);
  });

  it('never tracks or mirrors an excluded table, even one created after the start', async () => {
    await h.sourceSql(`INSERT INTO audit_log (entry) VALUES ('later'); INSERT INTO audit_more VALUES (1);`);
    await h.waitConverged([customers, invoices]);
    const tracked = await trackedTables(h.sourceUrl);
    expect(tracked.filter((t) => t.includes('audit'))).toEqual([]);
    const triggers = await query<{ n: string }>(
      h.sourceUrl,
      `SELECT count(*)::text AS n FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ('audit_log'::regclass, 'audit_more'::regclass)`,
    );
    expect(triggers[0]!.n).toBe('0');
    const mirrored = await mirrorTables(h.mirrorUrl, h.mirrorSchema);
    expect(mirrored.filter((t) => t.includes('audit'))).toEqual([]);
  });

  it('leaves a table with nothing to apply unwritten while another table changes, and shows it current', async () => {
    const stateOf = async (table: string): Promise<{ lsn: string; at: string }> =>
      (await query<{ lsn: string; at: string }>(h.mirrorUrl, `SELECT lsn::text AS lsn, last_sync_at::text AS at FROM ${h.mirrorSchema}._mirror_state WHERE table_name = $1`, [table]))[0]!;
    // customers synced just now, so no idle touch (once a minute) is due during the test.
    await h.sourceSql(`UPDATE customers SET since = since + 1 WHERE id = 7`);
    await h.waitConverged([customers, invoices]);
    const quiet = await stateOf('customers');
    for (let i = 0; i < 3; i++) {
      await h.sourceSql(`INSERT INTO invoices VALUES (${900 + i}, 1, 1, false)`);
      await h.waitConverged([invoices]);
    }
    // invoices moved on three times; customers' row was not written at all (no mirror transaction for it).
    expect(BigInt((await stateOf('invoices')).lsn)).toBeGreaterThan(BigInt(quiet.lsn));
    expect(await stateOf('customers')).toEqual(quiet);
    const report = await tenantReport(h.client, h.tenantId, findTenant(loadConfigFile(h.configPath, {}), h.tenantId));
    expect(report.tables.find((t) => t.name === 'customers')).toMatchObject({ lsn: quiet.lsn, lagSeconds: 0 });
    // Its next change is applied from the LSN it kept.
    await h.sourceSql(`DELETE FROM customers WHERE id = 8; UPDATE customers SET name = 'eight' WHERE id = 9`);
    const sums = await h.waitConverged([customers, invoices]);
    expect(sums.customers!.rows).toBe(499);
    expect(BigInt((await stateOf('customers')).lsn)).toBeGreaterThan(BigInt(quiet.lsn));
  });
});
