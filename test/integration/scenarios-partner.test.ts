/**
 * The partner's side and the operator's, on real servers: the mirror touches only what it created (a partner's own
 * table in the mirror schema survives a forced wipe, and a source table whose name it holds fails alone until the
 * partner renames theirs), two tenants whose ids once mapped to one default schema stay apart, tracking leaves a
 * table no longer mirrored and `tenant-mirror untrack` removes it all, an added column is backfilled even when the
 * session that added it did not live to say so, and no tenant data (not even a population's last key) reaches
 * workflow history.
 */
import '../support/quiet-runtime';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMirrorSchema } from '../../src/config/load';
import { forceWipe, pauseTenant, resumeTenant } from '../../src/client';
import { PgChangeSource } from '../../src/postgres/source';
import { PgMirror } from '../../src/postgres/mirror';
import { startHarness, type Harness } from '../support/tenant-harness';
import { activityRuns, after, historyMark, populations, trackedTables, waitForRun } from '../support/scenario-tools';
import { query } from '../support/checksum';

const exec = promisify(execFile);
let h: Harness;
const customers = { name: 'customers', orderBy: 'id' };
const extra = { name: 'extra', orderBy: 'id' };
const codes = { name: 'codes', orderBy: 'code' };

beforeAll(async () => {
  h = await startHarness('scn-partner', { batchBytes: '4KB' });
  await h.sourceSql(`
    CREATE TABLE customers (id int PRIMARY KEY, name text);
    CREATE TABLE extra (id int PRIMARY KEY, v int);
    CREATE TABLE codes (code text PRIMARY KEY, v int);
    INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 500) g;
    INSERT INTO extra SELECT g, g FROM generate_series(1, 100) g;
    INSERT INTO codes SELECT 'tenant-key-' || lpad(g::text, 6, '0'), g FROM generate_series(1, 30000) g;
  `);
  await h.startTenant();
  await h.waitConverged([customers, extra, codes], 90_000);
});
afterAll(async () => {
  await h?.stop();
});

describe('the mirror touches only what it owns', () => {
  it('a partner’s own table in the mirror schema survives a forced wipe of every table', async () => {
    await h.mirrorSql(`CREATE TABLE mirror.partner_notes (id int PRIMARY KEY, note text); INSERT INTO mirror.partner_notes VALUES (1, 'ours, not yours')`);
    const mark = await historyMark(h.client, h.workflowId);
    await forceWipe(h.client, h.tenantId);
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'wipeTables' && r.outcome === 'completed', 'the wipe');
    await h.waitConverged([customers, extra, codes], 90_000);
    expect(await query(h.mirrorUrl, 'SELECT note FROM mirror.partner_notes')).toEqual([{ note: 'ours, not yours' }]);
    expect(populations(await activityRuns(h.client, h.workflowId), mark).sort()).toEqual(['codes', 'customers', 'extra']);
  });

  it('a source table whose name a partner’s table holds fails alone, and heals once the partner renames theirs', async () => {
    await h.mirrorSql(`CREATE TABLE mirror.invoices (id int PRIMARY KEY, partner_data text); INSERT INTO mirror.invoices VALUES (7, 'the partner''s')`);
    await h.sourceSql(`CREATE TABLE invoices (id int PRIMARY KEY, total numeric); INSERT INTO invoices SELECT g, g FROM generate_series(1, 50) g`);
    const failed = await h.waitStatus((s) => s.tables.find((t) => t.name === 'invoices')?.state === 'failed', 'invoices failed');
    expect(failed.tables.find((t) => t.name === 'invoices')?.failure).toMatchObject({
      type: 'TableFailed',
      message: expect.stringMatching(/a table named "invoices" already exists in the mirror schema and was not created by tenant-mirror/),
    });
    await h.sourceSql(`UPDATE customers SET name = 'meanwhile' WHERE id = 1`);
    await h.waitConverged([customers]);
    expect(await query(h.mirrorUrl, 'SELECT partner_data FROM mirror.invoices')).toEqual([{ partner_data: "the partner's" }]);

    await h.mirrorSql(`ALTER TABLE mirror.invoices RENAME TO partner_invoices`);
    await h.waitConverged([{ name: 'invoices', orderBy: 'id' }], 90_000);
    expect(await query(h.mirrorUrl, 'SELECT partner_data FROM mirror.partner_invoices')).toEqual([{ partner_data: "the partner's" }]);
  });

  it('tenants whose ids once mapped to one default schema (a.b, a-b) get their own: a wipe of one leaves the other', async () => {
    const [ab, aDashB] = [defaultMirrorSchema('a.b'), defaultMirrorSchema('a-b')];
    expect(ab).not.toBe(aDashB);
    const schema = { name: 't', source: { schema: 'public', table: 't' }, columns: [{ name: 'id', type: { kind: 'int32' as const }, nullable: false }], primaryKey: ['id'] };
    const mirrors = [ab, aDashB].map((s) => new PgMirror({ url: h.mirrorUrl, schema: s, tenant: s }));
    try {
      for (const m of mirrors) {
        await m.ensureState();
        await m.applySchema(schema);
      }
      await mirrors[0]!.wipeAll();
      expect(await query(h.mirrorUrl, `SELECT to_regclass($1) IS NOT NULL AS present`, [`"${aDashB}".t`])).toEqual([{ present: true }]);
      expect(await query(h.mirrorUrl, `SELECT to_regclass($1) IS NOT NULL AS present`, [`"${ab}".t`])).toEqual([{ present: false }]);
    } finally {
      await Promise.all(mirrors.map((m) => m.close()));
    }
  });
});

describe('nothing of ours stays at the source', () => {
  it('taking a table out of include removes its tracking from the source', async () => {
    expect(await trackedTables(h.sourceUrl)).toContain('public.extra');
    h.writeConfig({ tables: { include: ['*'], exclude: ['extra'] } });
    await h.waitStatus((s) => !s.tables.some((t) => t.name === 'extra'), 'extra to leave the tenant');
    await expectEventually(async () => !(await trackedTables(h.sourceUrl)).includes('public.extra'), 'extra untracked');
    const triggers = await query(h.sourceUrl, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'extra'::regclass AND NOT tgisinternal`);
    expect(triggers).toEqual([]);
    await h.sourceSql(`INSERT INTO extra VALUES (1000, 1); TRUNCATE extra`);
    h.writeConfig();
  });

  it('`tenant-mirror untrack` refuses a running tenant, and once it is paused removes every tracking object', async () => {
    const cli = (...args: string[]) =>
      exec('npx', ['tsx', 'src/cli/main.ts', ...args], {
        env: { ...process.env, TENANT_MIRROR_CONFIG: h.configPath, TEMPORAL_ADDRESS: h.temporalAddress, TEMPORAL_NAMESPACE: h.namespace },
      });
    await h.waitConverged([customers, extra], 90_000);
    const refused = await cli('untrack', h.tenantId).then(
      () => null,
      (err: { stderr: string; code: number }) => err,
    );
    expect(refused?.stderr).toMatch(/is mirroring: it would install tracking again at once\. Pause it first/);
    await pauseTenant(h.client, h.tenantId);
    await h.waitStatus('paused');
    const { stdout } = await cli('untrack', h.tenantId);
    expect(stdout).toMatch(/tracking removed from .*customers/);
    expect(await query(h.sourceUrl, `SELECT nspname FROM pg_namespace WHERE nspname = 'tenant_mirror_ct'`)).toEqual([]);
    expect(await query(h.sourceUrl, `SELECT tgname FROM pg_trigger WHERE tgname LIKE 'tenant_mirror%'`)).toEqual([]);
    await h.sourceSql(`UPDATE customers SET name = 'untracked' WHERE id <= 5; TRUNCATE invoices`);
    // Resumed, the tenant installs tracking again; what it missed meanwhile it repopulates.
    await resumeTenant(h.client, h.tenantId);
    await h.waitConverged([customers, extra, codes, { name: 'invoices', orderBy: 'id' }], 120_000);
    expect(await trackedTables(h.sourceUrl)).toContain('public.customers');
  });
});

describe('what a crash cannot lose', () => {
  it('a column added at the source is backfilled even when the session that added it in the mirror did not live to report it', async () => {
    await pauseTenant(h.client, h.tenantId);
    await h.waitStatus('paused');
    await h.sourceSql(`ALTER TABLE customers ADD COLUMN tier int NOT NULL DEFAULT 3; UPDATE customers SET tier = 1 WHERE id <= 10`);
    // What a session does when it meets the new shape, and then dies before returning to the workflow.
    const source = new PgChangeSource({ url: h.sourceUrl, tenant: h.tenantId });
    const mirror = new PgMirror({ url: h.mirrorUrl, schema: h.mirrorSchema, tenant: h.tenantId });
    try {
      const schema = (await source.listTables((n) => n === 'customers')).tables[0]!;
      expect(await mirror.applySchema(schema)).toMatchObject({ outcome: 'altered', needsBackfill: true });
    } finally {
      await Promise.all([source.close(), mirror.close()]);
    }
    const mark = await historyMark(h.client, h.workflowId);
    await resumeTenant(h.client, h.tenantId);
    await h.waitConverged([customers], 90_000);
    expect(populations(await activityRuns(h.client, h.workflowId), mark)).toContain('customers');
    const tiers = await query<{ tier: number; n: string }>(h.mirrorUrl, 'SELECT tier, count(*)::text AS n FROM mirror.customers GROUP BY 1 ORDER BY 1');
    expect(tiers).toEqual([{ tier: 1, n: '10' }, { tier: 3, n: '490' }]);
  });

  it('no tenant data reaches workflow history: a population heartbeats counts and its version, never its last key', async () => {
    const mark = await historyMark(h.client, h.workflowId);
    await forceWipe(h.client, h.tenantId, ['codes']);
    // While it runs, its heartbeat (where the last copied key used to be) says how far, never where.
    const beats: unknown[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && beats.length === 0) {
      const pending = (await h.client.workflow.getHandle(h.workflowId).describe()).raw.pendingActivities ?? [];
      for (const p of pending.filter((a) => a.activityType?.name === 'populateTable')) {
        for (const payload of p.heartbeatDetails?.payloads ?? []) beats.push(h.client.options.loadedDataConverter.payloadConverter.fromPayload(payload));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(beats[0]).toMatchObject({ table: 'codes', version: expect.stringMatching(/^\d+$/), rows: expect.any(Number) });
    expect(JSON.stringify(beats)).not.toContain('tenant-key-');
    await waitForRun(h.client, h.workflowId, mark, (r) => r.name === 'populateTable' && r.args[1] === 'codes' && r.outcome === 'completed', 'codes repopulated');
    await h.waitConverged([codes]);
    expect(after(await activityRuns(h.client, h.workflowId), mark).some((r) => r.name === 'populateTable')).toBe(true);
    expect(JSON.stringify(await h.client.workflow.getHandle(h.workflowId).fetchHistory())).not.toContain('tenant-key-');
  });
});

async function expectEventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}
