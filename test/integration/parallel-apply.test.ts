/**
 * A cycle with a backlog in several tables applies them over two lanes, the second reading a sibling of the
 * cycle's snapshot; a small backlog stays in one lane. One table failing in its lane fails alone: the others
 * converge. Real servers, a real worker; the lanes are seen in the worker's debug log.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';
import { capturedLogger, type LogLine } from '../support/log-capture';

const { logger, lines } = capturedLogger('debug');
const TABLES = ['alpha', 'beta', 'gamma'];
const specs = TABLES.map((name) => ({ name, orderBy: 'id' }));
let h: Harness;

const parallelCycles = (): LogLine[] => lines.filter((l) => l.msg === 'tables applied in parallel');

beforeAll(async () => {
  h = await startHarness('parallel-apply', { pollInterval: '100ms', applyStreams: 2, parallelApplyChanges: 500 }, { logger });
  for (const t of TABLES) {
    await h.sourceSql(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL, note text); INSERT INTO ${t} SELECT g, 0, 'n' || g FROM generate_series(1, 3000) g`);
  }
  await h.startTenant();
  await h.waitConverged(specs, 90_000);
}, 150_000);
afterAll(async () => {
  await h?.stop();
});

describe('a cycle applying its tables in parallel', () => {
  it('keeps a small backlog in one lane', async () => {
    const before = parallelCycles().length;
    await h.sourceSql(`UPDATE alpha SET v = v + 1 WHERE id <= 100; UPDATE beta SET v = v + 1 WHERE id <= 100`);
    await h.waitConverged(specs);
    expect(parallelCycles().length).toBe(before);
  });

  it('spreads a large backlog over two lanes, each table landing whole with the same LSN', async () => {
    const before = parallelCycles().length;
    // One transaction: the next cycle finds the whole backlog at once.
    await h.sourceSql(
      `BEGIN;
       UPDATE alpha SET v = v + 1, note = note || '!' WHERE id % 2 = 0;
       DELETE FROM beta WHERE id % 3 = 0;
       INSERT INTO gamma SELECT g, 1, 'new' FROM generate_series(3001, 5000) g;
       UPDATE gamma SET v = v + 2 WHERE id <= 1000;
       COMMIT`,
    );
    await h.waitConverged(specs);
    const parallel = parallelCycles().slice(before);
    expect(parallel.length).toBeGreaterThan(0);
    expect(parallel[0]).toMatchObject({ lanes: 2, tables: 3 });
    // Every table's LSN moved to the version of the one snapshot the lanes shared.
    const lsns = await query<{ lsn: string }>(h.mirrorUrl, `SELECT DISTINCT lsn::text AS lsn FROM mirror._mirror_state WHERE table_name = ANY($1)`, [TABLES]);
    expect(lsns).toHaveLength(1);
  });

  it('one table failing in its lane fails alone; the others converge', async () => {
    // The partner's constraint refuses the next values of gamma: a TableFailed of that table only.
    await h.mirrorSql(`ALTER TABLE mirror.gamma ADD CONSTRAINT partner_rule CHECK (v < 100) NOT VALID`);
    const before = parallelCycles().length;
    await h.sourceSql(
      `BEGIN;
       UPDATE gamma SET v = 500;
       UPDATE alpha SET v = v + 1;
       UPDATE beta SET v = v + 1;
       COMMIT`,
    );
    const failed = await h.waitStatus((s) => s.tables.find((t) => t.name === 'gamma')?.state === 'failed', 'gamma failed');
    expect(failed.tables.find((t) => t.name === 'gamma')?.failure).toMatchObject({ type: 'TableFailed', message: expect.stringMatching(/gamma/) });
    expect(parallelCycles().length).toBeGreaterThan(before);
    await h.waitConverged([{ name: 'alpha', orderBy: 'id' }, { name: 'beta', orderBy: 'id' }]);
    expect(failed.tables.filter((t) => t.state === 'failed').map((t) => t.name)).toEqual(['gamma']);
  });
});
