/**
 * A session lists its source tables every cycle, and the source answers with the last listing while no DDL can
 * have committed since (catalog write counts unchanged). DDL whose counts are not reported yet is exactly what a
 * reused listing misses: a cycle that fails on it lists anew and runs again, instead of failing the session.
 */
import '../support/quiet-runtime';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';
import { capturedLogger, type LogLine } from '../support/log-capture';
import { waitFor } from '../support/wait';

let h: Harness;
const items = { name: 'items', orderBy: 'id' };
const { logger, lines } = capturedLogger('debug');
const cycles = (): LogLine[] => lines.filter((l) => l.msg === 'cycle');
const RELISTED = 'a cycle on the last listing failed, and the tables changed since: the cycle runs again on a new one';

beforeAll(async () => {
  h = await startHarness('listing-reuse', {}, { logger });
  await h.sourceSql(`CREATE TABLE items (id int PRIMARY KEY, v text, w int);
    INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 100) g;`);
  await h.startTenant();
  await h.waitConverged([items]);
});
afterAll(async () => {
  await h?.stop();
});

describe('listing reuse in a session', () => {
  it('cycles on the last listing while the catalog is unchanged', async () => {
    // The set-up's own DDL (side tables, triggers) is reported within seconds of the session's start.
    await waitFor(() => cycles().at(-1)?.listing === 'reused', { timeoutMs: 20_000, what: 'a reused listing' });
    const from = cycles().length;
    await h.sourceSql(`INSERT INTO items VALUES (101, 'x', 101)`);
    await h.waitConverged([items], 20_000);
    await waitFor(() => cycles().length >= from + 5, { timeoutMs: 20_000, what: 'five more cycles' });
    const since = cycles().slice(from);
    // No DDL since: every cycle reuses, the one that applied the insert too.
    expect(since.filter((c) => c.listing !== 'reused')).toEqual([]);
    expect(since.filter((c) => Number(c.changes) > 0)).toHaveLength(1);
  });

  it('a column dropped while its counts are unreported fails the cycle on the old listing, which runs again on a new one', async () => {
    await h.sourceSql(`CREATE PROCEDURE drop_then_wait() LANGUAGE plpgsql AS $$
      BEGIN
        ALTER TABLE items DROP COLUMN v; COMMIT;
        INSERT INTO items VALUES (200, 200); COMMIT;
        PERFORM pg_sleep(30);
      END $$`);
    // A DDL that changes nothing listed moves the counts: the session lists anew, so its listing is young (well
    // within the age after which it is read again anyway).
    const from = cycles().length;
    await h.sourceSql('ALTER TABLE items ALTER COLUMN w SET STATISTICS 200');
    await waitFor(() => cycles().slice(from).some((c) => c.listing === 'new'), { timeoutMs: 20_000, what: 'a new listing' });
    // The procedure's backend stays busy for 30 s after both commits, so it reports no counts until then.
    const busy = new Client({ connectionString: h.sourceUrl });
    await busy.connect();
    const call = busy.query('CALL drop_then_wait()').catch(() => undefined);
    try {
      // Long before the procedure's counts are reported.
      await waitFor(async () => (await query(h.mirrorUrl, 'SELECT 1 FROM mirror.items WHERE id = 200')).length === 1, { timeoutMs: 25_000, what: 'row 200 in the mirror' });
      const column = await query(h.mirrorUrl, `SELECT 1 FROM pg_attribute WHERE attrelid = 'mirror.items'::regclass AND attname = 'v' AND NOT attisdropped`);
      expect(column).toEqual([]);
      expect(lines.filter((l) => l.msg === RELISTED)).toHaveLength(1);
      await h.waitConverged([items], 20_000);
    } finally {
      await h.sourceSql(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'CALL drop_then_wait()'`);
      await call;
      await busy.end();
    }
  });
});
