import { describe, expect, it } from 'vitest';
import type { TableStatus } from '../../contract';
import { lagSeconds, SILENT_AFTER_MS, staleness, UNSTARTED_AFTER_MS } from '../../src/staleness';

const now = Date.parse('2026-12-02T12:00:00Z');
const table = (over: Partial<TableStatus> = {}): TableStatus => ({
  name: 't',
  state: 'mirroring',
  lsn: '100',
  rows: 1,
  lastSyncAt: new Date(now - 10_000).toISOString(),
  error: null,
  ...over,
});
const started = { started: true, scheduledAt: now - 3_600_000, startedAt: now - 3_600_000 };

describe('stale tenants', () => {
  it('a session no worker starts is stale after 30 s, with the wait in the reason', () => {
    const waiting = { started: false, scheduledAt: now - UNSTARTED_AFTER_MS - 5_000, startedAt: null };
    expect(staleness({ tables: [table()], session: waiting, pollIntervalMs: 1_000, now })).toEqual({ seconds: 35, why: 'no worker has started the sync session for 35 s' });
    expect(staleness({ tables: [table()], session: { ...waiting, scheduledAt: now - 10_000 }, pollIntervalMs: 1_000, now })).toBeNull();
  });

  it("a workflow task (or another activity) no worker starts is stale after 30 s: a lost worker's tenant waits for one to start its session again", () => {
    const unstarted = { what: "the tenant's workflow task", since: now - UNSTARTED_AFTER_MS - 2_000 };
    expect(staleness({ tables: [table()], session: null, unstarted, pollIntervalMs: 1_000, now })).toEqual({ seconds: 32, why: "no worker has started the tenant's workflow task for 32 s" });
    expect(staleness({ tables: [table()], session: null, unstarted: { ...unstarted, since: now - 5_000 }, pollIntervalMs: 1_000, now })).toBeNull();
  });

  it('a retry waiting out its backoff (scheduled in the future) is not taken for a missing worker', () => {
    expect(staleness({ tables: [table()], session: { started: false, scheduledAt: now + 60_000, startedAt: null }, pollIntervalMs: 1_000, now })).toBeNull();
  });

  it('a running session that has synced nothing for 3 minutes is stale; one that just restarted is not yet', () => {
    const silent = table({ lastSyncAt: new Date(now - SILENT_AFTER_MS - 60_000).toISOString() });
    expect(staleness({ tables: [silent], session: started, pollIntervalMs: 1_000, now })?.why).toBe('no table synced for 240 s');
    expect(staleness({ tables: [silent], session: { ...started, startedAt: now - 5_000 }, pollIntervalMs: 1_000, now })).toBeNull();
    // A long poll interval stretches the silence allowed.
    expect(staleness({ tables: [silent], session: started, pollIntervalMs: 120_000, now })).toBeNull();
  });

  it('tables mirrored by refresh, or never synced, do not make a tenant stale', () => {
    const old = new Date(now - 3_600_000).toISOString();
    expect(staleness({ tables: [table({ mode: 'refresh', lastSyncAt: old })], session: started, pollIntervalMs: 1_000, now })).toBeNull();
    expect(staleness({ tables: [table({ lastSyncAt: null })], session: started, pollIntervalMs: 1_000, now })).toBeNull();
  });
});

describe('per-table lag', () => {
  it('is 0 while the source is still at the version the mirror holds, else the time since the table synced', () => {
    expect(lagSeconds(table(), '100', now)).toBe(0);
    expect(lagSeconds(table(), '250', now)).toBe(10);
    expect(lagSeconds(table({ state: 'populating' }), '250', now)).toBeNull();
  });

  it('is 0 for a table the source has nothing for past its LSN, however long ago it was last written', () => {
    expect(lagSeconds(table(), '250', now, true)).toBe(0);
    expect(lagSeconds(table({ state: 'populating' }), '250', now, true)).toBeNull();
  });
});
