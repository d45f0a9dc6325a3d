/**
 * A session lists its source tables every cycle, and the source answers with the last listing while no DDL can
 * have committed since: the catalog write counts have not moved, nor the stamp of the listed tables' catalog rows.
 * The counts lag (a backend reports them once idle); the stamp does not, so a change to a listed table is seen at
 * its commit even while its counts are held back.
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
  await h.sourceSql(`CREATE TABLE items (id int PRIMARY KEY, v text, w int, amount numeric(10,2));
    INSERT INTO items SELECT g, 'v' || g, g, g / 4.0 FROM generate_series(1, 100) g;`);
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
    await h.sourceSql(`INSERT INTO items VALUES (101, 'x', 101, 1)`);
    await h.waitConverged([items], 20_000);
    await waitFor(() => cycles().length >= from + 5, { timeoutMs: 20_000, what: 'five more cycles' });
    const since = cycles().slice(from);
    // No DDL since: every cycle reuses, the one that applied the insert too.
    expect(since.filter((c) => c.listing !== 'reused')).toEqual([]);
    expect(since.filter((c) => Number(c.changes) > 0)).toHaveLength(1);
  });

  it('a column widened and one dropped while their counts are held back are seen at once, no value rounded', async () => {
    await h.sourceSql(`CREATE PROCEDURE change_then_wait() LANGUAGE plpgsql AS $$
      BEGIN
        ALTER TABLE items ALTER COLUMN amount TYPE numeric(12,4), DROP COLUMN v; COMMIT;
        INSERT INTO items VALUES (200, 200, 1.2345); COMMIT;
        PERFORM pg_sleep(60);
      END $$`);
    // A DDL that changes nothing listed moves the counts: the session lists anew, so its listing is young.
    const from = cycles().length;
    await h.sourceSql('ALTER TABLE items ALTER COLUMN w SET STATISTICS 200');
    await waitFor(() => cycles().slice(from).some((c) => c.listing === 'new'), { timeoutMs: 20_000, what: 'a new listing' });
    // The procedure's backend stays busy for a minute after both commits, so it reports no counts until then.
    const busy = new Client({ connectionString: h.sourceUrl });
    await busy.connect();
    const call = busy.query('CALL change_then_wait()').catch(() => undefined);
    try {
      // Long before the procedure's counts are reported.
      await waitFor(async () => (await query(h.mirrorUrl, 'SELECT 1 FROM mirror.items WHERE id = 200')).length === 1, { timeoutMs: 30_000, what: 'row 200 in the mirror' });
      // Read at the old numeric(10,2), the value would have been stored as 1.23, and nothing would mend it.
      expect(await query(h.mirrorUrl, 'SELECT amount::text AS amount FROM mirror.items WHERE id = 200')).toEqual([{ amount: '1.2345' }]);
      const columns = await query<{ attname: string }>(
        h.mirrorUrl,
        `SELECT attname FROM pg_attribute WHERE attrelid = 'mirror.items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      );
      expect(columns.map((c) => c.attname)).not.toContain('v');
      await h.waitConverged([items], 20_000);
      expect(lines.filter((l) => l.msg === RELISTED)).toEqual([]);
    } finally {
      await h.sourceSql(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'CALL change_then_wait()'`);
      await call;
      await busy.end();
    }
  });
});
