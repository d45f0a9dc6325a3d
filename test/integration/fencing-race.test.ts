/**
 * Two sessions of one tenant at once, for real: the running session's attempt is given up on by the server (as a
 * reaper that judged its worker dead would do) while it still runs, and the retry starts a second session in the
 * same worker. Both cycle against the same mirror under steady writes. The older one must not write: its first
 * batch fails as Fenced (the newer session took the fence) and it stops; the mirror ends equal to the source.
 */
import '../support/quiet-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { startHarness, type Harness } from '../support/tenant-harness';
import { waitFor } from '../support/wait';
import { capturedLogger } from '../support/log-capture';

const { logger, lines } = capturedLogger('info');
let h: Harness;

beforeAll(async () => {
  h = await startHarness('fencing-race', { pollInterval: '100ms' }, { logger });
  await h.sourceSql(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL); INSERT INTO items SELECT g, 0 FROM generate_series(1, 200) g`);
  await h.startTenant();
  await h.waitConverged([{ name: 'items', orderBy: 'id' }]);
}, 120_000);
afterAll(async () => {
  await h?.stop();
});

describe('two sessions of one tenant', () => {
  it('the older one cannot write once the newer one has started; the mirror ends equal to the source', async () => {
    const handle = h.client.workflow.getHandle(h.workflowId);
    const session = async () =>
      ((await handle.describe()).raw.pendingActivities ?? []).find(
        (p) => p.activityType?.name === 'syncSession' && p.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      );
    const first = await session();
    expect(first?.attempt).toBe(1);
    const { runId } = await handle.describe();
    // The server gives up on attempt 1 (its session goes on running here) and retries it: attempt 2. A retried
    // type keeps it one activity (a WorkerLost would have the workflow start a new one, with the same race).
    await h.client.activity.fail(
      { workflowId: h.workflowId, runId, activityId: first!.activityId! },
      ApplicationFailure.retryable('given up on while it still runs (test)', 'Unavailable'),
    );
    await waitFor(async () => (await session())?.attempt === 2, { what: 'attempt 2 of the session running' });

    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await h.sourceSql(`UPDATE items SET v = v + 1 WHERE id = ${1 + (i % 200)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await waitFor(() => lines.some((l) => l.type === 'Fenced' && l.attempt === 1), { timeoutMs: 30_000, what: 'attempt 1 fenced' });
    } finally {
      writing = false;
      await writer;
    }
    const fenced = lines.find((l) => l.type === 'Fenced' && l.attempt === 1)!;
    expect(fenced.msg).toBe('a newer session took over: this one stops without writing');
    // The newer one was never refused.
    expect(lines.filter((l) => l.type === 'Fenced' && l.attempt === 2)).toEqual([]);
    await h.waitConverged([{ name: 'items', orderBy: 'id' }]);
  }, 120_000);
});
