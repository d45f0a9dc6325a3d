/**
 * Operator actions on a running tenant, on real servers: forceWipe of one table and of all tables (by update, and
 * by signal through the Temporal CLI as operators send it; an unknown signal is reported in status), pause and
 * resume (a paused tenant holds no database connection), one table paused while the others go on, a wipe requested while a population runs, and a
 * signal arriving while a sync session runs (acted on within seconds: the session heartbeats every second).
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forceWipe, pauseTables, pauseTenant, resumeTables, resumeTenant } from '../../src/client';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, after, historyMark, populations, productConnections, waitForRun, type ActivityRun } from '../support/scenario-tools';
import { Client } from 'pg';
import { query, tableChecksum } from '../support/checksum';
import { waitFor } from '../support/wait';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { temporalCliPath } from '../../dev/temporal/binaries';

const exec = promisify(execFile);

let h: Harness;
const customers = { name: 'customers', orderBy: 'id' };
const orders = { name: 'orders', orderBy: 'id' };
const big = { name: 'big', orderBy: 'id' };
const ALL = [customers, orders, big];

beforeAll(async () => {
  h = await startHarness('scn-operations');
  await h.sourceSql(`
    CREATE TABLE customers (id int PRIMARY KEY, name text);
    CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(12,2));
    CREATE TABLE big (id int PRIMARY KEY, payload text, n bigint);
    INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 500) g;
    INSERT INTO orders SELECT g, g % 500, g FROM generate_series(1, 2000) g;
    INSERT INTO big SELECT g, repeat(md5(g::text), 6), g FROM generate_series(1, 100000) g;
  `);
  await h.startTenant();
  await h.waitConverged(ALL, 120_000);
});
afterAll(async () => {
  await h?.stop();
});

describe('operations', () => {
  it('forceWipe of one table wipes and repopulates that table only', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    const ack = await forceWipe(h.client, h.tenantId, ['orders']);
    expect(ack).toEqual({ accepted: true, tables: ['orders'], state: 'mirroring' });
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    await h.sourceSql(`UPDATE orders SET total = total + 1 WHERE id <= 10`);
    await h.waitConverged(ALL);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual(['orders']);
  });

  it('forceWipe of all tables wipes and repopulates every table', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    const ack = await forceWipe(h.client, h.tenantId);
    expect(ack.tables).toBe('all');
    const wipe = await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    expect(wipe.args[1]).toEqual({ tables: 'all', reason: 'forced wipe' });
    await h.waitConverged(ALL, 120_000);
    expect(populations(await activityRuns(h.client, h.workflowId), mark).sort()).toEqual(['big', 'customers', 'orders']);
  });

  it('forceWipe by signal through the Temporal CLI, for one table and for all; an unknown signal shows in status', async () => {
    const cli = temporalCliPath();
    expect(cli).toBeDefined();
    const signal = (name: string, input: string) =>
      exec(cli!, ['workflow', 'signal', '--workflow-id', h.workflowId, '--name', name, '--input', input, '--address', h.temporalAddress, '--namespace', h.namespace]);

    let mark = await historyMark(h.client, h.workflowId);
    await signal('forceWipe', '{"tables":["orders"]}');
    const one = await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe of orders');
    expect(one.args[1]).toEqual({ tables: ['orders'], reason: 'forced wipe' });
    await h.sourceSql(`UPDATE orders SET total = total + 1 WHERE id <= 10`);
    await h.waitConverged(ALL);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual(['orders']);

    mark = await historyMark(h.client, h.workflowId);
    await signal('forceWipe', '{}');
    const all = await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe of all tables');
    expect(all.args[1]).toEqual({ tables: 'all', reason: 'forced wipe' });
    await h.waitConverged(ALL, 120_000);
    expect(populations(await activityRuns(h.client, h.workflowId), mark).sort()).toEqual(['big', 'customers', 'orders']);

    await signal('forceWipeAll', '{}');
    await signal('forceWipe', '{"tables":["ordres"]}');
    const status = await h.waitStatus((st) => st.notices.length >= 2, 'the ignored signals in status');
    expect(status.notices.join('\n')).toMatch(/signal "forceWipeAll" ignored: the workflow has no such signal/);
    expect(status.notices.join('\n')).toMatch(/forceWipe signal ignored: unknown table "ordres"/);
  });

  it('pause is acted on within seconds of arriving during a sync session; a paused tenant holds no connection; resume catches up', async () => {
    expect((await h.status()).state).toBe('mirroring');
    const sent = Date.now();
    await pauseTenant(h.client, h.tenantId, 'partner maintenance');
    const status = await h.waitStatus('paused', 'paused', 15_000);
    expect(status.reason).toBe('partner maintenance');
    await waitFor(async () => (await productConnections(h.sourceUrl)) === 0 && (await productConnections(h.mirrorUrl)) === 0, {
      what: 'no connection on either server',
      timeoutMs: 15_000,
    });
    console.info(`pause acted on, connections closed: ${Date.now() - sent} ms after the signal`);
    await h.sourceSql(`INSERT INTO customers VALUES (9999, 'while paused'); DELETE FROM orders WHERE id <= 100;`);
    // Still nothing happens while paused.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await query(h.mirrorUrl, 'SELECT id FROM mirror.customers WHERE id = 9999')).toEqual([]);
    expect(await productConnections(h.sourceUrl)).toBe(0);
    expect(await productConnections(h.mirrorUrl)).toBe(0);

    const mark = await historyMark(h.client, h.workflowId);
    await resumeTenant(h.client, h.tenantId);
    await h.waitConverged(ALL);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual([]);
  });

  it('pauseTables holds one table while the others go on mirroring; resumeTables catches it up from its LSN', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await pauseTables(h.client, h.tenantId, ['orders'], 'partner migration');
    await h.waitStatus((s) => s.tables.some((t) => t.name === 'orders' && t.state === 'paused' && t.error === 'partner migration'), 'orders paused', 15_000);
    const ordersTable = `${h.mirrorSchema}.orders`;
    const held = await tableChecksum(h.mirrorUrl, ordersTable, 'id');
    await h.sourceSql(`UPDATE orders SET total = total + 5 WHERE id <= 50; INSERT INTO customers VALUES (7777, 'while orders paused');`);
    await waitFor(async () => (await query(h.mirrorUrl, `SELECT id FROM ${h.mirrorSchema}.customers WHERE id = 7777`)).length === 1, {
      what: 'the customers change mirrored while orders is paused',
      timeoutMs: 30_000,
    });
    // Another cycle or two, then orders must still be as it was when paused.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await tableChecksum(h.mirrorUrl, ordersTable, 'id')).toEqual(held);
    expect((await h.status()).state).toBe('mirroring');

    await resumeTables(h.client, h.tenantId, ['orders']);
    await h.waitConverged(ALL);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual([]);
  });

  it('a wipe requested while a population runs: the population stops, the table is wiped and repopulated', async () => {
    // A DDL at the source holds the table, so the population cannot read it (SourceBusy) and is retried until the wipe.
    const blocker = new Client({ connectionString: h.sourceUrl });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      await forceWipe(h.client, h.tenantId, ['big']);
      await h.waitStatus((s) => s.state === 'populating' && s.tables.some((t) => t.name === 'big' && t.state === 'populating'), 'big populating');
      const mark = await historyMark(h.client, h.workflowId);
      const ack = await forceWipe(h.client, h.tenantId, ['big']);
      expect(ack.state).toBe('populating');
      await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the second wipe', 20_000);
      await blocker.query('UPDATE big SET n = -n WHERE id % 1000 = 0');
      await blocker.query('COMMIT');
      await h.waitConverged(ALL, 120_000);
      const runs = after(await activityRuns(h.client, h.workflowId), mark);
      const populates = runs.filter((r) => r.name === 'populateTable');
      const wipe = runs.find((r) => r.name === 'wipeTables')!;
      expect(populates).toHaveLength(2);
      const [stopped, repopulated] = populates as [ActivityRun, ActivityRun];
      // Stopped before the wipe began: cancelled between two attempts, or failed (SourceBusy: the locked table)
      // by the attempt that was running when the cancellation reached it. Either way the wipe follows at once.
      expect(['cancelled:', 'failed:SourceBusy']).toContain(`${stopped.outcome}:${stopped.failure?.type ?? ''}`);
      expect(stopped.closedEventId!).toBeLessThan(wipe.eventId);
      const events = (await h.client.workflow.getHandle(h.workflowId).fetchHistory()).events ?? [];
      const between = events.filter((e) => Number(e.eventId) > stopped.closedEventId! && Number(e.eventId) < wipe.eventId);
      expect(between.filter((e) => e.timerStartedEventAttributes)).toEqual([]);
      expect(repopulated.outcome).toBe('completed');
      expect(repopulated.eventId).toBeGreaterThan(wipe.closedEventId!);
    } finally {
      await blocker.end();
    }
  });
});
