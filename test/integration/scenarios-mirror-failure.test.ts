/**
 * Scenario 4, writing to the mirror fails: the mirror server stops in the middle of a batch, connections are cut,
 * a value is rejected by the mirror. Each time the batch rolls back, the LSN stays, the session retries with a
 * backoff bounded by the retention, status shows the failure while it lasts, and once the mirror is back every
 * change since the last successful commit arrives: nothing lost, nothing applied twice in a way that shows.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantReport } from '../../src/status';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, cutProductConnections, mirrorLsns, productConnections } from '../support/scenario-tools';
import { query } from '../support/checksum';
import { waitFor } from '../support/wait';

let h: Harness;
const ledger = { name: 'ledger', orderBy: 'id' };
const counters = { name: 'counters', orderBy: 'id' };
const ALL = [ledger, counters];
const RETENTION_MS = 60_000;

beforeAll(async () => {
  // Small batches, so one sync cycle of a large update is many transactions; a short retention bounds the backoff.
  h = await startHarness('scn-mirror-failure', { batchBytes: '16KB', retention: '1m' });
  await h.sourceSql(`
    CREATE TABLE ledger (id int PRIMARY KEY, val int NOT NULL, note text);
    CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);
    INSERT INTO ledger SELECT g, g, 'row ' || g FROM generate_series(1, 20000) g;
    INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g;
  `);
  await h.startTenant();
  await h.waitConverged(ALL);
});
afterAll(async () => {
  await h?.stop();
});

async function activityError(): Promise<string | null> {
  return (await tenantReport(h.client, h.tenantId)).activityError;
}

describe('scenario 4: writing to the mirror fails', () => {
  it('the mirror server stops in the middle of a batch: status shows it, and everything arrives once it is back', async () => {
    // The session must have completed a cycle before the outage (a session that fails in its first cycle is
    // retried as it is, not started over): a change that alters nothing, seen applied in the mirror's log.
    await h.sourceSql(`UPDATE counters SET n = n`);
    await waitFor(
      async () => (await query(h.mirrorUrl, `SELECT 1 FROM ${h.mirrorSchema}._mirror_log WHERE table_name = 'counters' AND event = 'sync'`)).length > 0,
      { what: 'a completed sync cycle' },
    );
    await h.sourceSql(`UPDATE ledger SET val = val + 1, note = repeat('x', 60) || id`);
    // Stop the mirror while the worker is inside the apply (a transaction of the product is open there).
    let caught = false;
    await waitFor(
      async () => {
        const busy = await query<{ n: string }>(
          h.mirrorUrl,
          `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'tenant-mirror' AND state <> 'idle'`,
        );
        caught = busy[0]!.n !== '0';
        return caught || (await mirrorRowsWith(`note LIKE 'xxx%'`)) === 20000;
      },
      { intervalMs: 5, what: 'an apply in progress' },
    );
    await h.pg.mirror.stop();
    try {
      await h.sourceSql(`
        INSERT INTO ledger SELECT g, g, 'while the mirror is down' FROM generate_series(20001, 20500) g;
        UPDATE counters SET n = n + 1;
        DELETE FROM ledger WHERE id <= 100;
      `);
      await waitFor(async () => (await activityError()) !== null, { what: 'status to show the failure' });
      // The session had been syncing: a fresh outage, so the workflow starts over (bootstrap first) with retries
      // backing off from 1 s again, instead of the session's own retries that grow over its life.
      expect(await activityError()).toMatch(/(syncSession|prepareTenant) attempt \d+: .*(ECONNREFUSED|connect|terminat|shut)/i);
      const history = await h.client.workflow.getHandle(h.workflowId).fetchHistory();
      const failures = (history.events ?? []).flatMap((e) => (e.activityTaskFailedEventAttributes?.failure ? [e.activityTaskFailedEventAttributes.failure] : []));
      expect(failures.map((f) => `${f.applicationFailureInfo?.type}: ${f.message}`)).toContainEqual(expect.stringMatching(/^Interrupted: interrupted after \d+ cycles: /));
      // Still mirroring, or already back in bootstrap waiting for the mirror: never blocked, never wiped.
      expect(['mirroring', 'bootstrapping']).toContain((await h.status()).state);
    } finally {
      await h.pg.mirror.start();
    }
    await h.sourceSql(`UPDATE counters SET n = n + 1`);
    const sums = await h.waitConverged(ALL);
    expect(sums.ledger!.rows).toBe(20400);
    expect(await mirrorRowsWith(`note LIKE 'xxx%'`)).toBe(19900);
    const counts = await query<{ n: string }>(h.mirrorUrl, 'SELECT DISTINCT n::text AS n FROM mirror.counters');
    expect(counts).toEqual([{ n: '2' }]);
    // The retried session keeps its attempt's last failure until it ends (here within 10 s: retention/8, at
    // least 10 s); see docs/scenarios.md.
    await waitFor(async () => (await activityError()) === null, { what: 'status to stop showing the healed failure' });
    console.info(`mirror stopped ${caught ? 'inside an apply' : 'after the apply had finished'}`);
  });

  it('cut connections (source and mirror) are retried and nothing is lost', async () => {
    for (let round = 0; round < 3; round++) {
      await h.sourceSql(`UPDATE counters SET n = n + 1; INSERT INTO ledger VALUES (${30000 + round}, ${round}, 'cut ${round}');`);
      await waitFor(async () => (await productConnections(h.mirrorUrl)) > 0, { what: 'the worker connected to the mirror' });
      await cutProductConnections(h.mirrorUrl);
      await cutProductConnections(h.sourceUrl);
    }
    await h.waitConverged(ALL);
    const counts = await query<{ n: string }>(h.mirrorUrl, 'SELECT DISTINCT n::text AS n FROM mirror.counters');
    expect(counts).toEqual([{ n: '5' }]);
  });

  it('a value the mirror rejects fails that table alone, rolled back with its LSN kept; the others go on; it heals once the mirror accepts it', async () => {
    await h.mirrorSql(`ALTER TABLE mirror.ledger ADD CONSTRAINT partner_rule CHECK (val < 1000000)`);
    const rows = await query<{ xid: string }>(
      h.sourceUrl,
      `WITH u AS (UPDATE ledger SET val = 5000000, note = 'rejected by the mirror' WHERE id = 500 RETURNING 1),
            i AS (INSERT INTO ledger VALUES (40000, 1, 'same batch') RETURNING 1)
       SELECT pg_current_xact_id()::text AS xid`,
    );
    const xid = BigInt(rows[0]!.xid);
    const failed = await h.waitStatus((st) => st.tables.find((t) => t.name === 'ledger')?.state === 'failed', 'ledger failed in status');
    const ledgerStatus = failed.tables.find((t) => t.name === 'ledger')!;
    expect(ledgerStatus.failure).toMatchObject({ type: 'TableFailed', attempts: 1 });
    expect(ledgerStatus.failure!.message).toMatch(/partner_rule.*table ledger/);
    expect(ledgerStatus.failure!.message).not.toContain('5000000');
    // The batch rolled back: the LSN has not passed the rejected change, and none of that batch is in the mirror.
    const lsn = (await mirrorLsns(h.mirrorUrl, h.mirrorSchema)).get('ledger')!;
    expect(lsn! <= xid).toBe(true);
    expect(await query(h.mirrorUrl, 'SELECT id FROM mirror.ledger WHERE id = 40000')).toEqual([]);
    // The other table keeps mirroring meanwhile.
    await h.sourceSql(`UPDATE counters SET n = n + 100`);
    await h.waitConverged([counters]);
    // It is tried again after its backoff (and fails the same way) without moving the LSN.
    await h.waitStatus((st) => (st.tables.find((t) => t.name === 'ledger')?.failure?.attempts ?? 0) >= 2, 'another attempt', 90_000);
    expect((await mirrorLsns(h.mirrorUrl, h.mirrorSchema)).get('ledger')).toBe(lsn);

    await h.mirrorSql(`ALTER TABLE mirror.ledger DROP CONSTRAINT partner_rule`);
    await h.waitConverged(ALL, 120_000);
    expect(await query(h.mirrorUrl, 'SELECT val FROM mirror.ledger WHERE id = 500')).toEqual([{ val: 5000000 }]);
    // The session that took it back reports it healthy when it returns: the failure is cleared.
    await h.waitStatus((st) => st.tables.find((t) => t.name === 'ledger')?.failure === null, 'the failure cleared', 60_000);
    expect((await h.status()).tables.find((t) => t.name === 'ledger')).toMatchObject({ state: 'mirroring', error: null });
  });

  it('retries back off within a bound that never outlives the retention', async () => {
    // The first bootstrap of a new tenant runs before its policy is known (and nothing can expire yet); every
    // activity after it retries within the tenant's own retention.
    const all = await activityRuns(h.client, h.workflowId);
    const known = all.find((r) => r.name === 'prepareTenant' && r.outcome === 'completed')!.closedEventId!;
    const runs = all.filter((r) => r.eventId > known);
    expect(runs.length).toBeGreaterThanOrEqual(2); // at least a session and a retry or re-bootstrap to check
    for (const r of runs) {
      expect(r.maximumIntervalMs).toBeLessThanOrEqual(RETENTION_MS);
      expect(r.maximumIntervalMs).toBeLessThan(RETENTION_MS / 4);
    }
  });
});

async function mirrorRowsWith(where: string): Promise<number> {
  const rows = await query<{ n: string }>(h.mirrorUrl, `SELECT count(*)::text AS n FROM mirror.ledger WHERE ${where}`);
  return Number(rows[0]!.n);
}
