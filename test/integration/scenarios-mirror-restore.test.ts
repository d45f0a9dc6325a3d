/**
 * Scenario 2, the mirror restored from backup: the partner restores an older pg_dump of the mirror database over
 * it while mirroring goes on. The restored `_mirror_state` carries the older LSNs, so every change since then is
 * sent again; no wipe, no repopulation, no manual step.
 */
import '../support/quiet-runtime';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, after, historyMark, mirrorLsns, pgDump, pgRestore } from '../support/scenario-tools';
import { query } from '../support/checksum';

let h: Harness;
const TABLES = [
  { name: 'accounts', orderBy: 'id' },
  { name: 'entries', orderBy: 'account_id, seq' },
];

beforeAll(async () => {
  h = await startHarness('scn-mirror-restore');
  await h.sourceSql(`
    CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(14,2) NOT NULL DEFAULT 0);
    CREATE TABLE entries (account_id int, seq int, amount numeric(12,2), memo text, PRIMARY KEY (account_id, seq));
    INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 1000) g;
    INSERT INTO entries SELECT g % 1000 + 1, g, g * 0.01, 'm' || g FROM generate_series(1, 5000) g;
  `);
  await h.startTenant();
});
afterAll(async () => {
  await h?.stop();
});

describe('scenario 2: mirror restored from backup', () => {
  it('resumes from the restored (older) LSNs and retransmits every later change, without a wipe', async () => {
    await h.waitConverged(TABLES);
    const backup = join(process.cwd(), '.data', 'test', 'scn-mirror-restore', 'mirror.dump');
    await pgDump(h.mirrorUrl, backup);
    const lsnsInBackup = await lsnsOf();

    // Life goes on after the backup: inserts, updates, deletes, all mirrored.
    await h.sourceSql(`
      INSERT INTO accounts SELECT g, 'late ' || g, 1 FROM generate_series(1001, 1200) g;
      UPDATE accounts SET balance = balance + 5 WHERE id % 7 = 0;
      DELETE FROM entries WHERE seq % 10 = 0;
      UPDATE entries SET memo = 'edited' WHERE seq % 3 = 0;
    `);
    await h.waitConverged(TABLES);
    const lsnsBeforeRestore = await lsnsOf();
    for (const [table, lsn] of lsnsBeforeRestore) expect(lsn! > lsnsInBackup.get(table)!).toBe(true);

    // The partner restores the backup over the live mirror database while the tenant keeps running. One
    // transaction: the worker sees either the current mirror or the restored one, never half of it.
    const mark = await historyMark(h.client, h.workflowId);
    await pgRestore(h.mirrorUrl, backup, { clean: true, singleTransaction: true });
    const restoredRows = await query<{ n: string }>(h.mirrorUrl, `SELECT count(*)::text AS n FROM mirror.accounts`);
    // Either still the backup's rows or already caught up: never anything else.
    expect(['1000', '1200']).toContain(restoredRows[0]!.n);

    await h.sourceSql(`
      INSERT INTO entries SELECT 1, g, 1, 'after restore' FROM generate_series(100001, 100050) g;
      DELETE FROM accounts WHERE id BETWEEN 1190 AND 1200;
    `);
    const sums = await h.waitConverged(TABLES);
    expect(sums.accounts!.rows).toBe(1189);

    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.filter((r) => r.name === 'populateTable' || r.name === 'wipeTables')).toEqual([]);
    const lsnsNow = await lsnsOf();
    for (const [table, lsn] of lsnsNow) expect(lsn! >= lsnsBeforeRestore.get(table)!).toBe(true);
  });

  it('also heals when the restore happens while the tenant is paused, and the mirror is dropped and recreated', async () => {
    const backup = join(process.cwd(), '.data', 'test', 'scn-mirror-restore', 'mirror-2.dump');
    await pgDump(h.mirrorUrl, backup);
    await h.sourceSql(`UPDATE accounts SET owner = owner || '*' WHERE id <= 300; DELETE FROM entries WHERE seq < 500;`);
    await h.waitConverged(TABLES);
    const mark = await historyMark(h.client, h.workflowId);
    await h.client.workflow.getHandle(h.workflowId).signal('pause', 'restoring the mirror');
    await h.waitStatus('paused');
    // A full restore: the tenant's schema is dropped, then recreated from the dump.
    await h.mirrorSql(`DROP SCHEMA mirror CASCADE`);
    await pgRestore(h.mirrorUrl, backup);
    await h.sourceSql(`INSERT INTO accounts VALUES (5000, 'while paused', 0)`);
    await h.client.workflow.getHandle(h.workflowId).signal('resume');
    await h.waitConverged(TABLES);
    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.filter((r) => r.name === 'populateTable' || r.name === 'wipeTables')).toEqual([]);
  });
});

async function lsnsOf(): Promise<Map<string, bigint | null>> {
  return mirrorLsns(h.mirrorUrl, h.mirrorSchema);
}
