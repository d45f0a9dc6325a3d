/**
 * Scenario 3, the source restored from backup, detected without anyone telling the mirror:
 * - a file-level restore of the source server: its version goes back below the mirror's LSN;
 * - THE KEY CASE: a restore onto a new server at the same address, after which enough new writes have pushed the
 *   version past the mirror's LSN: only the fingerprint (system identifier) can tell;
 * - the policy `onSourceRestore: pause` holds the tenant with a reason until an operator resumes it;
 * - the manual ways: dropping change tracking at the source, a forced wipe from our CLI and from the Temporal CLI.
 */
import '../support/quiet-runtime';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPg } from '../../dev/embedded-postgres';
import { temporalCliPath } from '../../dev/temporal/binaries';
import { startHarness, type Harness } from '../support/tenant-harness';
import {
  activityRuns,
  after,
  burnXids,
  copyDataDir,
  historyMark,
  mirrorLsns,
  pgDump,
  pgRestore,
  populations,
  sourceVersion,
  trackedTables,
  waitForRun,
  type ActivityRun,
} from '../support/scenario-tools';
import { query } from '../support/checksum';
import type { TenantPlan } from '../../contract';

const exec = promisify(execFile);
const DIR = join(process.cwd(), '.data', 'test', 'scn-source-restore');
const TABLES = [
  { name: 'items', orderBy: 'id' },
  { name: 'events', orderBy: 'id' },
];

let h: Harness;
/** The server currently behind the source URL (a restore may replace it). */
let source: EmbeddedPg;
const extraServers: EmbeddedPg[] = [];

beforeAll(async () => {
  h = await startHarness('scn-source-restore');
  source = h.pg.source;
  await h.sourceSql(`
    CREATE TABLE items (id int PRIMARY KEY, val int NOT NULL, note text);
    CREATE TABLE events (id bigint PRIMARY KEY, kind text, at timestamptz DEFAULT now());
    INSERT INTO items SELECT g, g, 'n' || g FROM generate_series(1, 2000) g;
    INSERT INTO events SELECT g, 'k' || (g % 5) FROM generate_series(1, 1000) g;
  `);
  await h.startTenant();
  await h.waitConverged(TABLES);
});
afterAll(async () => {
  await h?.stop();
  await Promise.all(extraServers.map((s) => s.stop()));
});

/** Takes a file-level copy of the (briefly stopped) source server's data directory. */
async function fileBackup(name: string): Promise<{ restore(): Promise<void>; version: bigint }> {
  const copy = join(DIR, `backup-${name}`);
  await source.stop();
  copyDataDir(source.dataDir, copy);
  await source.start();
  const version = await sourceVersion(h.sourceUrl);
  return {
    version,
    async restore() {
      await source.stop();
      copyDataDir(copy, source.dataDir);
      await source.start();
    },
  };
}

async function maxLsn(): Promise<bigint> {
  const lsns = [...(await mirrorLsns(h.mirrorUrl, h.mirrorSchema)).values()];
  return lsns.reduce<bigint>((a, b) => (b !== null && b > a ? b : a), 0n);
}

/**
 * What said the source was restored: a session's SourceRestored failure, or, when the source's restart interrupted
 * the session first, the next bootstrap's plan (a table to repopulate for reason 'source restored', with the
 * evidence).
 */
function restoreEvidence(runs: ActivityRun[]): string[] {
  const failures = runs.flatMap((r) => (r.failure?.type === 'SourceRestored' ? [r.failure.message] : []));
  const plans = runs.flatMap((r) =>
    r.name === 'prepareTenant' && r.outcome === 'completed'
      ? (r.result as TenantPlan).tables.filter((t) => t.reason === 'source restored').map((t) => `${t.detail ?? 'source restored'} [table ${t.name}]`)
      : [],
  );
  return [...failures, ...plans];
}

describe('scenario 3: source restored from backup', () => {
  it('detects a restore that took the source version back below the mirror LSN, and repopulates', async () => {
    const backup = await fileBackup('a');
    await h.sourceSql(`
      INSERT INTO items SELECT g, g, 'after backup' FROM generate_series(2001, 2500) g;
      UPDATE items SET val = -val WHERE id <= 100;
      DELETE FROM events WHERE id > 900;
    `);
    await h.waitConverged(TABLES);
    expect(await maxLsn()).toBeGreaterThan(backup.version);

    const mark = await historyMark(h.client, h.workflowId);
    await backup.restore();
    const sums = await h.waitConverged(TABLES);
    expect(sums.items!.rows).toBe(2000);
    expect(sums.events!.rows).toBe(1000);

    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(restoreEvidence(runs)).toContainEqual(expect.stringMatching(/source version \d+ is below the mirror's LSN \d+/));
    expect(populations(runs).sort()).toEqual(['events', 'items']);
  });

  it('THE KEY CASE: a restore onto a new server whose version is already past the mirror LSN is caught by the fingerprint', async () => {
    const dump = join(DIR, 'app.dump');
    await pgDump(h.sourceUrl, dump);
    await h.sourceSql(`
      INSERT INTO items SELECT g, g, 'lost in the restore' FROM generate_series(3001, 3300) g;
      UPDATE events SET kind = 'changed after the backup' WHERE id % 2 = 0;
    `);
    await h.waitConverged(TABLES);
    const lsn = await maxLsn();

    // The customer's DBA restores last night's dump onto a new server, then the application writes on.
    const restoredDir = join(DIR, 'restored-server');
    const staging = await EmbeddedPg.start({ dir: restoredDir });
    const stagingUrl = await staging.createDatabase('app');
    await pgRestore(stagingUrl, dump);
    const needed = lsn - (await sourceVersion(stagingUrl)) + 50n;
    if (needed > 0n) await burnXids(stagingUrl, Number(needed));
    await query(stagingUrl, `INSERT INTO items VALUES (9001, 1, 'written on the restored server')`);
    // The premise of this case: version comparison alone cannot see the restore.
    expect(await sourceVersion(stagingUrl)).toBeGreaterThan(lsn);
    await staging.stop();

    // The restored server takes over the source's address: the tenant's configuration does not change.
    const mark = await historyMark(h.client, h.workflowId);
    await source.stop();
    source = await EmbeddedPg.start({ dir: restoredDir, persistent: true, port: source.port });
    extraServers.push(source);
    const sums = await h.waitConverged(TABLES);
    expect(sums.items!.rows).toBe(2001);

    const runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(restoreEvidence(runs)).toContainEqual(expect.stringMatching(/fingerprint changed \(systemIdentifier.*table (items|events)/s));
    expect(populations(runs).sort()).toEqual(['events', 'items']);
  });

  it('policy onSourceRestore=pause: holds the tenant with a reason, keeps the mirror as it was, repopulates on resume', async () => {
    h.writeConfig({ onSourceRestore: 'pause' });
    const backup = await fileBackup('c');
    await h.sourceSql(`DELETE FROM items WHERE id > 1500`);
    await h.waitConverged(TABLES);
    const mirrorRowsBefore = await query<{ n: string }>(h.mirrorUrl, 'SELECT count(*)::text AS n FROM mirror.items');

    const mark = await historyMark(h.client, h.workflowId);
    await backup.restore();
    const paused = await h.waitStatus('paused');
    expect(paused.reason).toMatch(/source restored: .*below the mirror's LSN.*resume to repopulate/);
    // Paused means untouched: the mirror still holds what it had.
    expect(await query(h.mirrorUrl, 'SELECT count(*)::text AS n FROM mirror.items')).toEqual(mirrorRowsBefore);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toEqual([]);

    await h.client.workflow.getHandle(h.workflowId).signal('resume');
    const sums = await h.waitConverged(TABLES);
    expect(sums.items!.rows).toBe(2001);
    expect(populations(await activityRuns(h.client, h.workflowId), mark).sort()).toEqual(['events', 'items']);
    h.writeConfig();
  });

  it('dropping change tracking at the source forces a repopulation, and tracking comes back', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await h.sourceSql(`DROP SCHEMA tenant_mirror_ct CASCADE; UPDATE items SET note = 'untracked write' WHERE id <= 10;`);
    await h.waitConverged(TABLES);
    expect(populations(await activityRuns(h.client, h.workflowId), mark).sort()).toEqual(['events', 'items']);
    expect(await trackedTables(h.sourceUrl)).toEqual(['public.events', 'public.items']);
    await h.sourceSql(`UPDATE items SET note = 'tracked again' WHERE id <= 5`);
    await h.waitConverged(TABLES);
  });

  it('a forced wipe works from our CLI (all tables) and from the Temporal CLI (one table)', async () => {
    const env = { ...process.env, TEMPORAL_ADDRESS: h.temporalAddress, TEMPORAL_NAMESPACE: h.namespace, TENANT_MIRROR_CONFIG: h.configPath };
    let mark = await historyMark(h.client, h.workflowId);
    const ours = await exec(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'wipe', h.tenantId], { env });
    expect(ours.stdout).toMatch(/wipe accepted .*all tables/);
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    await h.waitConverged(TABLES);
    let runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.find((r) => r.name === 'wipeTables')?.args[1]).toMatchObject({ tables: 'all' });
    expect(populations(runs).sort()).toEqual(['events', 'items']);

    const cli = temporalCliPath();
    expect(cli).toBeDefined();
    mark = await historyMark(h.client, h.workflowId);
    const temporal = await exec(cli!, [
      'workflow', 'update', 'execute', '--name', 'forceWipe', '--workflow-id', h.workflowId,
      '--input', '{"tables":["events"]}', '--address', h.temporalAddress, '--namespace', h.namespace,
    ]);
    expect(temporal.stdout).toMatch(/accepted/);
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    await h.sourceSql(`INSERT INTO events (id, kind) VALUES (50000, 'after the wipe')`);
    await h.waitConverged(TABLES);
    runs = after(await activityRuns(h.client, h.workflowId), mark);
    expect(runs.find((r) => r.name === 'wipeTables')?.args[1]).toMatchObject({ tables: ['events'] });
    expect(populations(runs)).toEqual(['events']);
  });
});
