/**
 * Between polls, an idle session asks the source whether a cycle would find committed changes (`wakeCheck`) and
 * runs one at once when it would. With a poll interval of a minute, a change reaches the mirror within seconds
 * only because of the check; with the check off, the same change waits for the poll.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/tenant-harness';
import { query } from '../support/checksum';
import { capturedLogger, type LogLine } from '../support/log-capture';

let h: Harness;
const items = { name: 'items', orderBy: 'id' };
const { logger, lines } = capturedLogger('debug');
/** The worker's 'cycle' debug lines: one per cycle, with the rows it changed. */
const cycles = (): LogLine[] => lines.filter((l) => l.msg === 'cycle');

beforeAll(async () => {
  h = await startHarness('wake-check', { pollInterval: '60s', wakeCheck: '200ms' }, { logger });
  await h.sourceSql(`CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;`);
  await h.startTenant();
  await h.waitConverged([items]);
});
afterAll(async () => {
  await h?.stop();
});

const mirrored = async (id: number): Promise<boolean> =>
  (await query<{ n: string }>(h.mirrorUrl, `SELECT count(*)::text AS n FROM ${h.mirrorSchema}.items WHERE id = $1`, [id]))[0]?.n === '1';

describe('wake check between polls', () => {
  it('applies a change long before the poll interval is up, again and again', async () => {
    for (const id of [101, 102, 103]) {
      await h.sourceSql(`INSERT INTO items VALUES (${id}, 'new')`);
      // 20 s for what the check brings within a fraction of a second; the next poll is up to a minute away.
      await h.waitConverged([items], 20_000);
      expect(await mirrored(id)).toBe(true);
    }
  });

  it('after a cycle that applied a change, a quiet tenant is asked, not cycled again', async () => {
    const from = cycles().length;
    await h.sourceSql(`INSERT INTO items VALUES (110, 'once')`);
    await h.waitConverged([items], 20_000);
    // Well past the 50 ms after which a busy cycle's follow-up came: the checks found nothing, so no cycle ran.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const since = cycles().slice(from);
    expect(since.filter((c) => Number(c.changes) > 0)).toHaveLength(1);
    expect(since.filter((c) => c.changes === 0)).toEqual([]);
  });

  it('with the check off, a change waits for the poll', async () => {
    h.writeConfig({ pollInterval: '60s', wakeCheck: 'off' });
    // The session reads the configuration at its next cycle: one more change wakes it under the old setting.
    await h.sourceSql(`INSERT INTO items VALUES (104, 'wake')`);
    await h.waitConverged([items], 20_000);
    await h.sourceSql(`INSERT INTO items VALUES (105, 'waits')`);
    // Ten periods of the check that is now off: the row is still only at the source.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await mirrored(105)).toBe(false);
  });
});
