/**
 * Scenario 5 on real servers, with a 3-second retention instead of 7 days (the 7-day timer itself is proven on
 * the time-skipping server in test/workflow/retention-timer.test.ts):
 * - the min-valid-version rule: a table left behind longer than the retention loses its tracked changes to the
 *   source's cleanup (which raises its min valid version past the table's LSN): that table alone is repopulated;
 * - the tenant-wide rule: no successful sync for longer than the retention wipes and repopulates everything;
 * - retries back off within a bound shorter than the retention.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, after, historyMark, mirrorLsns, populations, waitForRun } from '../support/scenario-tools';
import { query } from '../support/checksum';
import { waitFor } from '../support/wait';
import type { TenantPlan } from '../../contract';

let h: Harness;
const RETENTION = { retention: '3s' } as const;
const RETENTION_MS = 3_000;
const keep = { name: 'keep', orderBy: 'id' };
const lag = { name: 'lag', orderBy: 'id' };

beforeAll(async () => {
  h = await startHarness('scn-retention', RETENTION);
  await h.sourceSql(`
    CREATE TABLE keep (id int PRIMARY KEY, v int);
    CREATE TABLE lag (id int PRIMARY KEY, v int);
    INSERT INTO keep SELECT g, g FROM generate_series(1, 1000) g;
    INSERT INTO lag SELECT g, g FROM generate_series(1, 1000) g;
  `);
  await h.startTenant();
  await h.waitConverged([keep, lag]);
});
afterAll(async () => {
  await h?.stop();
});

async function minValidVersion(table: string): Promise<bigint> {
  const rows = await query<{ v: string }>(h.sourceUrl, `SELECT min_valid_version::text AS v FROM tenant_mirror_ct.tracked WHERE table_name = $1`, [table]);
  return BigInt(rows[0]!.v);
}

describe('scenario 5: retention', () => {
  it('a table left behind longer than the retention (failed meanwhile) is repopulated alone; the other goes on, nothing is wiped', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    // A partner's rule on its copy of `lag` refuses the next changes: that table fails and waits out its backoff
    // (15 s, far longer than this tenant's 3 s retention), while `keep` goes on.
    await h.mirrorSql(`ALTER TABLE mirror.lag ADD CONSTRAINT partner_rule CHECK (v > 0)`);
    const lagLsn = (await mirrorLsns(h.mirrorUrl, h.mirrorSchema)).get('lag')!;
    await h.sourceSql(`UPDATE lag SET v = -v WHERE id <= 100; DELETE FROM lag WHERE id > 900; UPDATE keep SET v = v + 1 WHERE id <= 10;`);
    await h.waitStatus((s) => s.tables.find((t) => t.name === 'lag')?.state === 'failed', 'lag to fail');
    await h.sourceSql(`UPDATE keep SET v = v + 1 WHERE id > 990`);
    await h.waitConverged([keep]);
    // Its next try finds its changes cleaned up past its LSN (min valid version raised): it is repopulated, and
    // the new copy does not carry the partner's rule.
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'populateTable' && r.args[1] === 'lag' && r.outcome === 'completed', 'lag repopulated', 60_000);
    const sums = await h.waitConverged([keep, lag]);
    expect(sums.lag!.rows).toBe(900);

    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(populations(runs)).toEqual(['lag']);
    // One table's failure never brings the others to the tenant-wide "no sync within retention" wipe.
    expect(runs.filter((r) => r.name === 'wipeTables')).toEqual([]);
    const plans = runs.filter((r) => r.name === 'prepareTenant' && r.outcome === 'completed').map((r) => r.result as TenantPlan);
    const decision = plans.flatMap((p) => p.tables).find((t) => t.name === 'lag' && t.action === 'populate');
    expect(decision).toMatchObject({ reason: 'tracking expired', detail: expect.stringMatching(/below the source's min valid version/) });
    expect(await minValidVersion('lag')).toBeGreaterThan(lagLsn!);
  });

  it('no successful sync for longer than the retention wipes and repopulates the whole mirror', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.client.workflow.getHandle(h.workflowId).signal('pause', 'maintenance');
    await h.waitStatus('paused');
    await h.sourceSql(`INSERT INTO keep VALUES (2000, 1)`);
    const pausedAt = Date.now();
    await waitFor(() => Date.now() - pausedAt > RETENTION_MS + 500, { what: 'the retention to pass', intervalMs: 200 });
    await h.client.workflow.getHandle(h.workflowId).signal('resume');
    const wipe = await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    expect(wipe.args[1]).toEqual({ tables: 'all', reason: 'no sync within retention' });
    await h.waitConverged([keep, lag]);
    expect(populations(after(await activityRuns(h.client, h.workflowId), mark)).sort()).toEqual(['keep', 'lag']);
  });

  it('retries back off within a bound shorter than the retention', async () => {
    const all = await activityRuns(h.client, h.workflowId);
    const known = all.find((r) => r.name === 'prepareTenant' && r.outcome === 'completed')!.closedEventId!;
    const runs = all.filter((r) => r.eventId > known);
    expect(runs.length).toBeGreaterThan(3);
    for (const r of runs) expect(r.maximumIntervalMs).toBeLessThanOrEqual(RETENTION_MS);
  });
});
